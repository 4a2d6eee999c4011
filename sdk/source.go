package sdk

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// SourceReader reads one subtask's share of a source.
type SourceReader[T any] interface {
	// Poll emits the records available now, a bounded number per call so the
	// runtime stays responsive, and says whether the source is exhausted or
	// how long to wait before polling again.
	Poll(emit func(T)) (Poll, error)
	Close() error
}

// Poll is what a SourceReader reports after emitting: Done (no more
// records, ever: a bounded source) or Wait (nothing available now; poll
// again after this).
type Poll = runtime.Poll

// SplitSnapshotter is implemented by replayable SourceReaders: their splits
// and positions go into every checkpoint. A restored subtask's open function
// gets them back from TaskInfo.Restored (at another parallelism, splits are
// dealt round robin over the new subtasks).
type SplitSnapshotter interface {
	SnapshotSplits() ([][]byte, error)
}

// SourceLag is how far one split of a source is behind its head: Records
// between the last record read and the head (-1 while unknown), and Behind,
// now minus the event time of the last record read (zero while unknown).
type SourceLag = runtime.SourceLag

// LagReporter is implemented by a SourceReader that knows its lag (a Kafka
// reader). The runtime calls it from the subtask's goroutine, between
// polls, about once per metrics interval.
type LagReporter interface {
	Lag() []SourceLag
}

// TaskInfo tells a source or sink which subtask it runs as.
type TaskInfo interface {
	Subtask() int
	Parallelism() int
	Attempt() int64
	JobID() string
	// UID is the operator's stable uid.
	UID() string
	// Restored returns the state items the operator had in the checkpoint
	// this subtask restored (split positions, pending files), if any.
	Restored() ([][]byte, bool)
	// RestoredAll returns the items of every subtask of the operator in
	// that checkpoint (Flink's union list state). Connectors that assign
	// their own splits, such as Kafka partitions, pick theirs from it.
	RestoredAll() ([][]byte, bool)
	// RestoredParallelism is the operator's parallelism in that
	// checkpoint (0: none restored); it differs from Parallelism when the
	// job was rescaled.
	RestoredParallelism() int
	// Checkpointing says whether the job takes checkpoints, so a sink
	// can choose its delivery guarantee.
	Checkpointing() bool
	// Logger carries the job, vertex and subtask.
	Logger() *slog.Logger
}

// NewSource adds a source whose subtasks each read through the SourceReader
// that open returns.
func NewSource[T any](p *Pipeline, name string, open func(TaskInfo) (SourceReader[T], error), opts ...Option) Stream[T] {
	cfg := config(opts)
	n, codec := addNode[T](p, "source", name, cfg, true)
	n.NewSource = func(env *runtime.Env, emit any) (runtime.SourceRun, error) {
		r, err := open(env)
		if err != nil {
			return runtime.SourceRun{}, fmt.Errorf("open source %q: %w", n.Name, err)
		}
		e := emit.(func(T))
		run := runtime.SourceRun{Poll: func() (Poll, error) { return r.Poll(e) }, Close: r.Close}
		if s, ok := r.(SplitSnapshotter); ok {
			run.Snapshot = s.SnapshotSplits
		}
		if w, ok := r.(WatermarkSource); ok {
			run.Watermark = w.Watermark
		}
		if l, ok := r.(LagReporter); ok {
			run.Lag = l.Lag
		}
		return run, nil
	}
	return newStream(p, n, codec)
}

// pollBatch bounds the records a built-in source emits per Poll.
const pollBatch = 1024

// Generate is a deterministic source of n records (n < 0: unbounded), record
// i being f(i). Subtask s of p produces i = s, s+p, s+2p, ... With WithRate
// the whole source emits at most that many records per second. Its position
// is checkpointed: a restored job continues where its checkpoint left off,
// at any parallelism.
func Generate[T any](p *Pipeline, n int64, f func(i int64) T, opts ...Option) Stream[T] {
	rate := config(opts).rate
	return NewSource(p, "Generate", func(t TaskInfo) (SourceReader[T], error) {
		g := &generator[T]{f: f, n: n}
		splits, restored, err := RestoredSplits(t, decodeGenSplit, dealGenSplits)
		switch {
		case err != nil:
			return nil, err
		case restored:
			g.splits = splits
		default:
			g.splits = []genSplit{{next: int64(t.Subtask()), step: int64(t.Parallelism())}}
		}
		if rate > 0 {
			g.perSec = rate / float64(t.Parallelism())
			g.start = time.Now()
		}
		return g, nil
	}, append([]Option{WithName("Generate")}, opts...)...)
}

// RestoredSplits returns what a restored source subtask t reads on with,
// for a source that checkpoints its unread splits as items (one per split,
// decoded by decode); restored is false on a fresh start. At the
// parallelism of the checkpoint a subtask keeps its own old subtask's
// splits: one that had finished stored none and starts finished (FLIP-147)
// and never reads, so splits dealt to it anew would be lost. Only a rescale
// deals every old subtask's splits out, with deal(olds, subtask,
// parallelism).
func RestoredSplits[S any](t TaskInfo, decode func([]byte) (S, error), deal func(olds []S, subtask, parallelism int) []S) (splits []S, restored bool, err error) {
	items, ok := t.RestoredAll()
	if !ok {
		return nil, false, nil
	}
	rescaled := true
	if t.RestoredParallelism() == t.Parallelism() {
		// Missing items mean this subtask's old one stored none: nothing
		// left to read, never a fresh start.
		items, _ = t.Restored()
		rescaled = false
	}
	for _, it := range items {
		sp, err := decode(it)
		if err != nil {
			return nil, true, err
		}
		splits = append(splits, sp)
	}
	if rescaled {
		splits = deal(splits, t.Subtask(), t.Parallelism())
	}
	return splits, true, nil
}

// genSplit is the arithmetic sequence next, next+step, ... below n.
type genSplit struct{ next, step int64 }

// dealGenSplits gives subtask i of p its share of the restored splits of
// every old subtask. With fewer splits than subtasks each is cut into k
// interleaved ones (next+j*step, step*k, for j < k), so that every subtask
// has work after a rescale up; a subtask with none would finish at once,
// and the job could not checkpoint again. Every subtask computes the same
// list from the same items, so the shares are disjoint and cover them all.
func dealGenSplits(olds []genSplit, i, p int) []genSplit {
	k := int64(1)
	if m := len(olds); m > 0 && m < p {
		k = int64((p + m - 1) / m)
	}
	var mine []genSplit
	idx := 0
	for _, sp := range olds {
		for j := range k {
			if idx%p == i {
				mine = append(mine, genSplit{next: sp.next + j*sp.step, step: sp.step * k})
			}
			idx++
		}
	}
	return mine
}

// encode is the split's checkpointed form, which decodeGenSplit reads.
func (sp genSplit) encode() []byte { return uvarintframe.AppendVarints(nil, sp.next, sp.step) }

func decodeGenSplit(b []byte) (genSplit, error) {
	r := uvarintframe.NewReader(b)
	next := r.Varint()
	step := r.Varint()
	if err := r.Done(); err != nil {
		return genSplit{}, fmt.Errorf("sdk: corrupt generator split state: %w", err)
	}
	if step <= 0 {
		return genSplit{}, fmt.Errorf("sdk: corrupt generator split state: step %d", step)
	}
	return genSplit{next, step}, nil
}

type generator[T any] struct {
	f       func(int64) T
	n       int64
	splits  []genSplit
	emitted int64
	perSec  float64
	start   time.Time
}

func (g *generator[T]) exhausted(sp genSplit) bool { return g.n >= 0 && sp.next >= g.n }

func (g *generator[T]) Poll(emit func(T)) (Poll, error) {
	for len(g.splits) > 0 && g.exhausted(g.splits[0]) {
		g.splits = g.splits[1:]
	}
	if len(g.splits) == 0 {
		// Before pacing: the last record must not wait for a slot.
		return Poll{Done: true}, nil
	}
	budget := int64(pollBatch)
	if g.perSec > 0 {
		// Pace against the start time, not per record, so sleeps don't drift.
		allowed := int64(time.Since(g.start).Seconds()*g.perSec) + 1 - g.emitted
		if allowed <= 0 {
			due := g.start.Add(time.Duration(float64(g.emitted) / g.perSec * float64(time.Second)))
			return Poll{Wait: max(time.Until(due), 100*time.Microsecond)}, nil
		}
		budget = min(budget, allowed)
	}
	sp := &g.splits[0]
	for ; budget > 0 && !g.exhausted(*sp); budget-- {
		emit(g.f(sp.next))
		sp.next += sp.step
		g.emitted++
	}
	return Poll{}, nil
}

// SnapshotSplits records each unfinished split's next index.
func (g *generator[T]) SnapshotSplits() ([][]byte, error) {
	var items [][]byte
	for _, sp := range g.splits {
		if !g.exhausted(sp) {
			items = append(items, sp.encode())
		}
	}
	return items, nil
}

func (g *generator[T]) Close() error { return nil }
