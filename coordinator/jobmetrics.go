package coordinator

import (
	"math"
	"time"

	"github.com/weir-run/weir/coordinator/jobgraph"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// historyLen is how many one-second throughput samples a job keeps for
// its sparkline.
const historyLen = 90

// maxExceptions bounds the failures a job remembers for its page.
const maxExceptions = 20

// taskSample is a subtask's last two metric reports, for rates.
type taskSample struct {
	cur, prev     *weirv1.TaskMetrics
	curAt, prevAt time.Time
}

// jobMetrics is what the leader knows of a job's runtime numbers. Only the
// leader loop touches it.
type jobMetrics struct {
	tasks map[jobgraph.Subtask]*taskSample // the current attempt's
	// base holds the records of earlier attempts by vertex, so counters
	// stay monotone across restarts.
	base       map[int32][2]int64
	memory     map[string]*weirv1.MemoryStats // job process memory by worker
	history    []float64                      // records out of sources per second, oldest first
	exceptions []exception                    // newest last
}

type exception struct {
	at      time.Time
	attempt int64
	text    string
}

func newJobMetrics() jobMetrics {
	return jobMetrics{tasks: map[jobgraph.Subtask]*taskSample{}, base: map[int32][2]int64{}, memory: map[string]*weirv1.MemoryStats{}}
}

// onReport takes a job process's report.
func (m *jobMetrics) onReport(worker string, pm *weirv1.ProcessMetrics, now time.Time) {
	m.memory[worker] = pm.Memory
	for _, t := range pm.Tasks {
		k := jobgraph.Subtask{VertexID: t.VertexId, Index: t.Subtask}
		s := m.tasks[k]
		if s == nil {
			s = &taskSample{}
			m.tasks[k] = s
		}
		s.prev, s.prevAt = s.cur, s.curAt
		s.cur, s.curAt = t, now
	}
}

// newAttempt folds the ending attempt's counters into the base.
func (m *jobMetrics) newAttempt() {
	for k, s := range m.tasks {
		b := m.base[k.VertexID]
		m.base[k.VertexID] = [2]int64{b[0] + s.cur.RecordsIn, b[1] + s.cur.RecordsOut}
	}
	m.tasks = map[jobgraph.Subtask]*taskSample{}
	m.memory = map[string]*weirv1.MemoryStats{}
}

// records are a vertex's records in and out over all attempts.
func (m *jobMetrics) records(vertex int32) (in, out int64) {
	b := m.base[vertex]
	in, out = b[0], b[1]
	for k, s := range m.tasks {
		if k.VertexID == vertex {
			in += s.cur.RecordsIn
			out += s.cur.RecordsOut
		}
	}
	return in, out
}

// vertexRates are a vertex's live numbers, summed or combined over its
// subtasks from their last two reports.
type vertexRates struct {
	inRate, outRate     float64
	busy, backpressured float64 // shares of wall time, 0..1
	lag                 []*weirv1.PartitionLag
	reporting           int // subtasks with two reports
}

func (m *jobMetrics) rates(vertex int32) vertexRates {
	var r vertexRates
	for k, s := range m.tasks {
		if k.VertexID != vertex {
			continue
		}
		r.lag = append(r.lag, s.cur.Lag...)
		if s.prev == nil {
			continue
		}
		dt := s.curAt.Sub(s.prevAt).Seconds()
		el := float64(s.cur.ElapsedNs - s.prev.ElapsedNs)
		if dt <= 0 || el <= 0 {
			continue
		}
		r.reporting++
		r.inRate += float64(s.cur.RecordsIn-s.prev.RecordsIn) / dt
		r.outRate += float64(s.cur.RecordsOut-s.prev.RecordsOut) / dt
		idle := float64(s.cur.IdleNs-s.prev.IdleNs) / el
		bp := float64(s.cur.BackpressuredNs-s.prev.BackpressuredNs) / el
		r.backpressured += clamp01(bp)
		r.busy += clamp01(1 - idle - bp)
	}
	if r.reporting > 0 {
		r.busy /= float64(r.reporting)
		r.backpressured /= float64(r.reporting)
	}
	return r
}

func clamp01(f float64) float64 { return min(max(f, 0), 1) }

// watermarkEnded is the watermark a subtask reports once its input ended.
const watermarkEnded = math.MaxInt64

// watermark is a vertex's event-time watermark: the minimum over all its
// parallelism subtasks of the current attempt, each one's last reported
// watermark, or watermarkEnded for a subtask that finished (finished
// says which did). It is unknown (ok false) while any subtask has not
// reported one (not started yet, no watermark restored and none arrived):
// a minimum over the others alone would show the vertex ahead of where
// its event time is. wm is watermarkEnded when every subtask's input ended.
func (m *jobMetrics) watermark(vertex, parallelism int32, finished func(subtask int32) bool) (wm int64, ok bool) {
	wm = watermarkEnded
	for i := range parallelism {
		if finished != nil && finished(i) {
			continue
		}
		s := m.tasks[jobgraph.Subtask{VertexID: vertex, Index: i}]
		if s == nil || s.cur.WatermarkUnixMs == nil {
			return 0, false
		}
		wm = min(wm, *s.cur.WatermarkUnixMs)
	}
	return wm, parallelism > 0
}

// sample appends the job's current source throughput to its history.
func (m *jobMetrics) sample(sources []int32) {
	total := 0.0
	for _, v := range sources {
		total += m.rates(v).outRate
	}
	m.history = append(m.history, total)
	if len(m.history) > historyLen {
		m.history = m.history[len(m.history)-historyLen:]
	}
}

// failed remembers a failure's text for the job's page.
func (m *jobMetrics) failed(at time.Time, attempt int64, text string) {
	m.exceptions = append(m.exceptions, exception{at: at, attempt: attempt, text: text})
	if len(m.exceptions) > maxExceptions {
		m.exceptions = m.exceptions[len(m.exceptions)-maxExceptions:]
	}
}

// sources lists the job's source vertices.
func (j *jobDriver) sources() []int32 {
	var out []int32
	for _, v := range j.rec.Spec.GetGraph().GetVertices() {
		if v.IsSource {
			out = append(out, v.Id)
		}
	}
	return out
}
