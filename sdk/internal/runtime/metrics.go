package runtime

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/internal/procstat"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// metricsInterval is how often job processes report metrics to their
// worker, and how often sources are asked for their lag.
const metricsInterval = time.Second

// taskMetrics are one subtask's counters. The subtask goroutine adds to
// them once per batch (never per record), so the atomics cost a few
// nanoseconds per hundreds of records; the reporter reads them.
type taskMetrics struct {
	start          time.Time
	recordsIn      atomic.Int64
	recordsOut     atomic.Int64
	idleNs         atomic.Int64
	backpressureNs atomic.Int64

	lagMu   sync.Mutex
	lag     []SourceLag
	lagNext time.Time // owned by the subtask goroutine
}

// measure turns the per-batch counting on; benchmarks switch it off to
// measure what counting costs.
var measure = true

// in and out count a batch of records received or sent.
func (m *taskMetrics) in(n int) {
	if measure {
		m.recordsIn.Add(int64(n))
	}
}

func (m *taskMetrics) out(n int) {
	if measure {
		m.recordsOut.Add(int64(n))
	}
}

// clock reads the time a wait starts at; zero when not measuring.
func (m *taskMetrics) clock() time.Time {
	if !measure {
		return time.Time{}
	}
	return time.Now()
}

// idleSince and backpressuredSince add the wait that began at start.
func (m *taskMetrics) idleSince(start time.Time) {
	if measure {
		m.idleNs.Add(int64(time.Since(start)))
	}
}

func (m *taskMetrics) backpressuredSince(start time.Time) {
	if measure {
		m.backpressureNs.Add(int64(time.Since(start)))
	}
}

func (m *taskMetrics) init(now time.Time) {
	m.start = now
}

// pollLag asks a source for its lag when the interval has passed. It
// runs on the subtask goroutine, which owns the reader.
func (m *taskMetrics) pollLag(lag func() []SourceLag, now time.Time) {
	if lag == nil || now.Before(m.lagNext) {
		return
	}
	m.lagNext = now.Add(metricsInterval)
	l := lag()
	m.lagMu.Lock()
	m.lag = l
	m.lagMu.Unlock()
}

// snapshot renders the counters and the subtask's watermark for a report:
// absent while unknown, math.MaxInt64 once the input ended.
func (m *taskMetrics) snapshot(vertex, subtask int, wm WatermarkStatus, now time.Time) *weirv1.TaskMetrics {
	tm := &weirv1.TaskMetrics{
		VertexId: int32(vertex), Subtask: int32(subtask),
		RecordsIn: m.recordsIn.Load(), RecordsOut: m.recordsOut.Load(),
		ElapsedNs: int64(now.Sub(m.start)), IdleNs: m.idleNs.Load(), BackpressuredNs: m.backpressureNs.Load(),
	}
	if wm.Known {
		tm.WatermarkUnixMs = &wm.Watermark
	}
	m.lagMu.Lock()
	for _, l := range m.lag {
		tm.Lag = append(tm.Lag, &weirv1.PartitionLag{Topic: l.Topic, Partition: l.Partition,
			Records: l.Records, BehindMs: l.Behind.Milliseconds()})
	}
	m.lagMu.Unlock()
	return tm
}

// ProcessMetrics snapshots every task of the deployment and the process's
// memory.
func (d *Deployment) ProcessMetrics(now time.Time) *weirv1.ProcessMetrics {
	pm := &weirv1.ProcessMetrics{JobId: d.JobID, Attempt: d.Attempt, UnixMs: now.UnixMilli(), Memory: procstat.Memory()}
	d.mu.Lock()
	for ref, t := range d.tasks {
		pm.Tasks = append(pm.Tasks, t.env.metrics.snapshot(ref.Vertex, ref.Subtask, t.watermarkStatus(now), now))
	}
	d.mu.Unlock()
	return pm
}

// reportMetrics sends the deployment's metrics every interval until done
// is closed.
func (d *Deployment) reportMetrics(done <-chan struct{}, send func(*weirv1.ProcessMetrics)) {
	tick := time.NewTicker(metricsInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			send(d.ProcessMetrics(now))
		}
	}
}
