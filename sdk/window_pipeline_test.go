package sdk

// The pipeline-level property test of the window semantics: a scripted
// source -> KeyBy -> Window -> exactly-once sinks, run by the real runtime
// with checkpoints, kills, restores and savepoints that rescale the window,
// must commit the output of the reference model (windowmodel_test.go).

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// scriptSource replays a script's records and watermarks (parallelism 1).
// It is a WatermarkSource: each watermark step ends a Poll, so the runtime
// sends it downstream before the records after it. At a checkpoint step it
// asks the cluster for a checkpoint (or savepoint) and waits until its own
// snapshot is taken, so every checkpoint is at a known step; at a kill step
// it asks for one and the kill after it, then goes on to the next
// checkpoint, kill or end step and waits there to be killed (the output
// since the checkpoint is lost and replayed).
type scriptSource struct {
	evs     []scriptEv
	req     chan<- runtime.CheckpointRequest
	p       int   // the window's parallelism in this attempt
	pos     int   // the next step
	wm      int64 // the last watermark sent
	waiting bool  // for the snapshot at the step before pos
	doomed  bool  // a kill was asked: stop at the next marker
	blocked bool  // stopped: waiting to be killed
}

func (s *scriptSource) Poll(emit func(mrec)) (Poll, error) {
	if s.waiting || s.blocked {
		return Poll{Wait: time.Millisecond}, nil
	}
	for s.pos < len(s.evs) {
		e := s.evs[s.pos]
		switch e.kind {
		case evCheckpoint, evRestore, evEnd:
			if s.doomed {
				s.blocked = true
				return Poll{Wait: time.Millisecond}, nil
			}
		}
		s.pos++
		switch e.kind {
		case evRecord:
			emit(e.rec)
		case evWatermark:
			if e.t > s.wm {
				s.wm = e.t
				return Poll{}, nil // the runtime reads the watermark now
			}
		case evCheckpoint:
			s.waiting = true
			s.req <- runtime.CheckpointRequest{Savepoint: e.savepoint}
			return Poll{Wait: time.Millisecond}, nil
		case evRestore:
			s.waiting, s.doomed = true, true
			// A savepoint when the job is rescaled.
			s.req <- runtime.CheckpointRequest{Savepoint: e.p != s.p || e.savepoint, Kill: true, Rescale: e.p}
			return Poll{Wait: time.Millisecond}, nil
		case evEnd:
			return Poll{Done: true}, nil
		}
	}
	return Poll{Done: true}, nil
}

func (s *scriptSource) Watermark() (int64, bool) { return s.wm, false }

// SnapshotSplits records the position and the watermark.
func (s *scriptSource) SnapshotSplits() ([][]byte, error) {
	s.waiting = false
	return [][]byte{binary.AppendVarint(binary.AppendVarint(nil, int64(s.pos)), s.wm)}, nil
}

func (s *scriptSource) Close() error { return nil }

// commitLog is what exactly-once sinks committed: transactions by id, so
// that committing one again (after a restore) changes nothing.
type commitLog[T any] struct {
	mu  sync.Mutex
	txs map[string][]T
}

func (l *commitLog[T]) commit(id string, items []T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.txs == nil {
		l.txs = map[string][]T{}
	}
	if _, ok := l.txs[id]; !ok {
		l.txs[id] = items
	}
}

func (l *commitLog[T]) all() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []T
	for _, id := range slices.Sorted(maps.Keys(l.txs)) {
		out = append(out, l.txs[id]...)
	}
	return out
}

// ckTxn is a transaction of a committing sink: what it received before the
// barrier of checkpoint Checkpoint.
type ckTxn[T any] struct {
	ID         string
	Checkpoint int64
	Items      []T
}

// commitSink is an exactly-once sink into log (two-phase commit, like the
// file sink): what a subtask receives becomes a pending transaction at each
// barrier, committed when its checkpoint completes; pending transactions are
// in the checkpoint, and a restored subtask commits the ones it gets.
func commitSink[T any](s Stream[T], log *commitLog[T], opts ...Option) {
	NewSink(s, "Commit", func(ti TaskInfo) (SinkWriter[T], error) {
		if items, ok := ti.Restored(); ok {
			for _, it := range items {
				var tx ckTxn[T]
				if err := json.Unmarshal(it, &tx); err != nil {
					return nil, err
				}
				log.commit(tx.ID, tx.Items)
			}
		}
		return &commitWriter[T]{log: log, subtask: ti.Subtask(), attempt: ti.Attempt(), checkpointing: ti.Checkpointing()}, nil
	}, opts...)
}

type commitWriter[T any] struct {
	log     *commitLog[T]
	subtask int
	attempt int64
	// checkpointing: a final checkpoint follows Finish and commits the
	// rest (see SinkWriter.Finish).
	checkpointing bool
	buf           []T
	pending       []ckTxn[T]
}

func (w *commitWriter[T]) Write(v T) error { w.buf = append(w.buf, v); return nil }

func (w *commitWriter[T]) PreCommit(id int64) ([][]byte, error) {
	if len(w.buf) > 0 {
		w.pending = append(w.pending, ckTxn[T]{ID: fmt.Sprintf("ck%d-s%d", id, w.subtask), Checkpoint: id, Items: w.buf})
		w.buf = nil
	}
	var items [][]byte
	for _, tx := range w.pending {
		b, err := json.Marshal(tx)
		if err != nil {
			return nil, err
		}
		items = append(items, b)
	}
	return items, nil
}

func (w *commitWriter[T]) Commit(id int64) error {
	keep := w.pending[:0]
	for _, tx := range w.pending {
		if tx.Checkpoint <= id {
			w.log.commit(tx.ID, tx.Items)
		} else {
			keep = append(keep, tx)
		}
	}
	w.pending = keep
	return nil
}

// Finish commits everything only without checkpoints. With them, the final
// checkpoint commits the rest: committing here would make final what a
// restore from a checkpoint completed after the end of input (one whose
// snapshot came before it: aligned elsewhere, or unaligned here) writes
// again, as duplicates.
func (w *commitWriter[T]) Finish() error {
	if w.checkpointing {
		return nil
	}
	w.Commit(math.MaxInt64)
	if len(w.buf) > 0 {
		w.log.commit(fmt.Sprintf("end-a%d-s%d", w.attempt, w.subtask), w.buf)
		w.buf = nil
	}
	return nil
}

func (w *commitWriter[T]) Close() error { return nil }

// scriptJob is the job of the pipeline test: the script's source at
// parallelism 1, keyed by the records' key into the window at the
// pipeline's parallelism, its panes and late records into exactly-once
// sinks.
func scriptJob(s script, req chan runtime.CheckpointRequest, panes *commitLog[Pane[string, mAgg]], late *commitLog[mrec]) func(p *Pipeline) {
	return func(p *Pipeline) {
		p.SetMaxParallelism(s.maxP)
		src := WithTimestamps(NewSource(p, "Script", func(ti TaskInfo) (SourceReader[mrec], error) {
			r := &scriptSource{evs: s.evs, req: req, p: p.Parallelism(), wm: math.MinInt64}
			if items, ok := ti.Restored(); ok && len(items) > 0 {
				pos, n := binary.Varint(items[0])
				wm, m := binary.Varint(items[0][max(n, 0):])
				if n <= 0 || m <= 0 {
					return nil, fmt.Errorf("corrupt script position")
				}
				r.pos, r.wm = int(pos), wm
			}
			return r, nil
		}, WithUID("script"), WithParallelism(1)), func(r mrec) int64 { return r.TS })
		a, opts := s.spec.api()
		w := WindowAggregate(Window(KeyBy(src, func(r mrec) string { return r.Key }), a, opts...), mAggFunc(), WithUID("window"))
		commitSink(w.Results(), panes, WithUID("panes"))
		commitSink(w.Late(), late, WithUID("late"))
	}
}

// netPanes applies the retractions: each cancels one equal pane emitted
// before it. What remains is, for Retracting, the last pane of every window
// that fired.
func netPanes(ps []mPane) []string {
	n := map[mPane]int{}
	for _, p := range ps {
		if p.Retraction {
			p.Retraction = false
			n[p]--
		} else {
			n[p]++
		}
	}
	var out []string
	for p, c := range n {
		for range c {
			out = append(out, p.String())
		}
		for range -c {
			out = append(out, "RETRACTION WITHOUT ITS PANE "+p.String())
		}
	}
	slices.Sort(out)
	return out
}

// runScriptJob runs s as a job in an in-process cluster, killing, restoring
// and rescaling it where the script says, and returns what it committed.
func runScriptJob(t *rapid.T, dir string, s script) (panes []mPane, late []mrec, attempts int) {
	req := make(chan runtime.CheckpointRequest, 16)
	var pl commitLog[Pane[string, mAgg]]
	var ll commitLog[mrec]
	c := newCkCluster(dir, 2*time.Millisecond, scriptJob(s, req, &pl, &ll))
	c.Parallelism, c.Requests = s.p, req
	for {
		attempts++
		if attempts > 4*len(s.evs)+2 {
			t.Fatalf("the job did not finish after %d attempts\nscript:\n%v", attempts, s)
		}
		for len(req) > 0 {
			<-req
		}
		finished, err := c.RunAttempt(t.Context(), 0)
		if err != nil {
			t.Fatalf("attempt %d: %v\nscript:\n%v", attempts, err, s)
		}
		if finished {
			break
		}
	}
	for _, p := range pl.all() {
		panes = append(panes, paneOf(p))
	}
	return panes, ll.all(), attempts
}

// TestWindowPipelineModel: the window operator in a running job (source at
// parallelism 1, keyed into the window at parallelism 1, 2 or 4, with
// exactly-once sinks), killed and restored from checkpoints and rescaled up
// and down through savepoints at random steps of random scripts, commits
// the panes (net of retractions) and late records of the reference model.
// Deterministic triggers only (no EarlyAfter: processing time is not
// replayed). A case runs a job (about 0.1s); WEIR_RAPID_CHECKS sets the
// number of cases here too.
func TestWindowPipelineModel(t *testing.T) {
	rapidChecks(t, 60)
	rapidShrinkTime(t, 20*time.Second) // a case runs a job: shrinking is slow
	var cases, restarts, panes int
	defer func() { t.Logf("%d cases, %d restores, %d panes", cases, restarts, panes) }()
	rapid.Check(t, func(rt *rapid.T) {
		sessions := rapid.Bool().Draw(rt, "sessions focus")
		// Else half the cases run windows behind a combiner (combine.go).
		combiner := !sessions && rapid.Bool().Draw(rt, "combiner focus")
		s := drawScript(rt, scriptOpts{restore: true, ps: []int{1, 2, 4}, steps: 25, sessions: sessions, combiner: combiner})
		if n := len(s.evs); n == 0 || s.evs[n-1].kind != evEnd {
			s.evs = append(s.evs, scriptEv{kind: evEnd})
		}
		m := runModel(s)
		var want []mPane
		for _, o := range m.out {
			want = append(want, o.pane)
		}
		var wantLate []mrec
		for _, l := range m.late {
			wantLate = append(wantLate, l.rec)
		}
		got, gotLate, attempts := runScriptJob(rt, t.TempDir(), s)
		cases, restarts, panes = cases+1, restarts+attempts-1, panes+len(got)
		var b strings.Builder
		if d := diffMultisets(netPanes(got), netPanes(want)); d != "" {
			fmt.Fprintf(&b, "panes net of retractions: %s\n", d)
		}
		if d := diffMultisets(gotLate, wantLate); d != "" {
			fmt.Fprintf(&b, "late records: %s\n", d)
		}
		if b.Len() > 0 {
			rt.Fatalf("the job (%d attempts) disagrees with the model\nscript:\n%v\n%s", attempts, s, b.String())
		}
	})
}
