package runtime

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A subtask restores finished when its whole vertex was finished (at any
// parallelism) or its own old subtask was, at the same parallelism; a
// partly finished vertex restored rescaled runs (its live splits are dealt).
func TestRestoreFinished(t *testing.T) {
	snap := func(subtask, parallelism int32, finished bool) *weirv1.SubtaskSnapshot {
		return &weirv1.SubtaskSnapshot{Subtask: subtask, Parallelism: parallelism, Uids: []string{"src"}, Finished: finished}
	}
	for _, tc := range []struct {
		name string
		olds []*weirv1.SubtaskSnapshot
		i, p int
		want bool
	}{
		{"fresh", nil, 0, 2, false},
		{"fully finished, same parallelism", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, true)}, 1, 2, true},
		{"fully finished, rescaled", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, true)}, 2, 3, true},
		{"own finished", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, false)}, 0, 2, true},
		{"another finished", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, false)}, 1, 2, false},
		{"partly finished, rescaled", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, false)}, 0, 3, false},
	} {
		m := &weirv1.CheckpointManifest{CheckpointId: 7, Subtasks: tc.olds}
		r, err := Restore(m, "src", tc.i, tc.p, 128)
		if err != nil {
			t.Fatal(err)
		}
		if r.finished != tc.want {
			t.Errorf("%s: subtask %d of %d restores finished=%v, want %v", tc.name, tc.i, tc.p, r.finished, tc.want)
		}
	}
}

// A trigger that reaches a gate-fed subtask after its input ended but
// before it waits for its final checkpoint (here, while its Finish runs) is
// taken when it starts waiting: no barrier can bring it any more, and
// without it the checkpoint would hang until its timeout, and the job with
// it. Sink 1's Finish is slow, so the checkpoints sink 0's wait asks for
// reach sink 1 there.
func TestTriggerDuringFinishIsTaken(t *testing.T) {
	var total atomic.Int64
	c := &MiniCluster{Dir: t.TempDir(), Interval: 5 * time.Millisecond, CheckpointTimeout: time.Minute,
		Build: func(int) (*Graph, error) {
			g := newGraph(128)
			src := g.vertex(2, counter("src", 100, 10, 0))
			g.edge(src, g.vertex(2, sink("slow", func(env *Env) OpRun {
				var sum int64
				return OpRun{In: func(v int64) { sum += v }, Finish: func() error {
					if env.Subtask() == 1 {
						time.Sleep(200 * time.Millisecond)
					}
					total.Add(sum)
					return nil
				}}
			})), partRebalance)
			return g.Graph, nil
		}}
	runToEnd(t, c, 10*time.Second, ": a checkpoint hung on a trigger the slow sink missed")
	if c.Abandoned != 0 || total.Load() != 99*100/2 {
		t.Fatalf("%d checkpoints abandoned, sum %d", c.Abandoned, total.Load())
	}
}

// A bounded job's stages finish at the end of data, not one checkpoint
// after another: the source's end of data reaches the middle stage, which
// finishes (its Finish emits) and passes it on, and the sink finishes
// before any checkpoint completed. One checkpoint, the final one, then
// ends them all. Without the end of data each stage learned of the end
// only when its producers ended after their final checkpoint: three
// stages, three checkpoints, each a checkpoint interval apart or more.
func TestStagesFinishAtTheEndOfData(t *testing.T) {
	const n = 100
	var (
		completions atomic.Int64 // checkpoint completions the sinks saw
		early       atomic.Int64 // sinks that finished before any completion
		total       atomic.Int64
	)
	c := &MiniCluster{Dir: t.TempDir(), Interval: 20 * time.Millisecond, CheckpointTimeout: time.Minute,
		Requests: make(chan CheckpointRequest), // none: only final checkpoints
		Build: func(int) (*Graph, error) {
			g := newGraph(128)
			src := g.vertex(2, counter("src", n, 10, 0))
			mid := g.vertex(2, &Operator{UID: "last", Name: "Last", Kind: "process", Out: ints,
				NewOp: func(_ *Env, emit any) (OpRun, error) {
					e := emit.(func(int64))
					var sum int64
					// Everything goes out at the end, as an EmitFinal
					// aggregate's result does.
					return OpRun{In: func(v int64) { sum += v }, Finish: func() error { e(sum); return nil }}, nil
				}})
			g.edge(src, mid, partRebalance)
			g.edge(mid, g.vertex(2, sink("sink", func(*Env) OpRun {
				var sum int64
				return OpRun{In: func(v int64) { sum += v },
					Notify: func(int64) error { completions.Add(1); return nil },
					Finish: func() error {
						if completions.Load() == 0 {
							early.Add(1)
						}
						total.Add(sum)
						return nil
					}}
			})), partRebalance)
			return g.Graph, nil
		}}
	runToEnd(t, c, 20*time.Second, "")
	if total.Load() != (n-1)*n/2 {
		t.Fatalf("sum %d, want %d", total.Load(), (n-1)*n/2)
	}
	if early.Load() != 2 || c.nextID != 1 {
		t.Fatalf("%d of 2 sinks finished before a checkpoint completed; %d checkpoints taken, want 1", early.Load(), c.nextID)
	}
}

// A subtask that finished at the end of data runs no processing-time
// callback while it waits for its final checkpoint: its output must carry
// no record after the end of data, whatever wake its operators asked for.
func TestNoCallbackAfterTheEndOfData(t *testing.T) {
	var late atomic.Int64
	c := &MiniCluster{Dir: t.TempDir(), Interval: 20 * time.Millisecond, CheckpointTimeout: time.Minute,
		Requests: make(chan CheckpointRequest),
		Build: func(int) (*Graph, error) {
			g := newGraph(128)
			// A slow source keeps the job going for the wakes to come due.
			src := g.vertex(1, counter("src", 20, 1, 5*time.Millisecond))
			mid := g.vertex(1, &Operator{UID: "ticker", Name: "Ticker", Kind: "process", Out: ints,
				NewOp: func(env *Env, emit any) (OpRun, error) {
					e := emit.(func(int64))
					finished := false
					return OpRun{
						In:     func(v int64) { e(v); env.Wake(time.Now().Add(time.Millisecond)) },
						Finish: func() error { finished = true; env.Wake(time.Now()); return nil },
						OnTime: func(time.Time) {
							if finished {
								late.Add(1)
								e(-1)
							}
						},
					}, nil
				}})
			g.edge(src, mid, partRebalance)
			var total atomic.Int64
			g.edge(mid, g.vertex(1, sumSink("sink", &total)), partRebalance)
			return g.Graph, nil
		}}
	runToEnd(t, c, 20*time.Second, "")
	if n := late.Load(); n != 0 {
		t.Fatalf("%d processing-time callbacks ran after Finish", n)
	}
}

// runToEnd runs c's job once and fails the test unless it finishes within
// d; what says what a hang would mean.
func runToEnd(t *testing.T, c *MiniCluster, d time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	finished, err := c.RunAttempt(ctx, 0)
	if err != nil || !finished || ctx.Err() != nil {
		t.Fatalf("finished %v, err %v%s", finished, err, what)
	}
}
