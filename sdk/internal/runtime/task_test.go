package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector is a sink's record of what reached it, from every subtask.
type collector struct {
	mu     sync.Mutex
	vals   []int64
	events []string // per subtask: "wm-max", "finish", "close", in call order
}

func (c *collector) add(v int64) {
	c.mu.Lock()
	c.vals = append(c.vals, v)
	c.mu.Unlock()
}

func (c *collector) event(e string) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

// collect is a sink into c that logs the end-of-input calls.
func collect(uid string, c *collector) *Operator {
	return sink(uid, func(env *Env) OpRun {
		return OpRun{
			In: func(v int64) { c.add(v) },
			Watermark: func(ts int64) {
				if ts == math.MaxInt64 {
					c.event("wm-max")
				}
			},
			Finish: func() error { c.event("finish"); return nil },
			Close:  func() error { c.event("close"); return nil },
		}
	})
}

// A source chained with a map feeds a sink over a rebalancing exchange:
// every record arrives once, and at the end of input each sink subtask
// sees the final watermark, then Finish, then Close.
func TestTaskLoopRunsAGraph(t *testing.T) {
	const n = 1000
	var got collector
	g := newGraph(128)
	src := g.vertex(2, counter("src", n, 100, 0), mapper("double", func(v int64) int64 { return 2 * v }))
	out := g.vertex(3, collect("sink", &got))
	g.edge(src, out, partRebalance)
	if err := g.RunLocal(t.Context(), quiet(), nil); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.vals)
	for i, v := range got.vals {
		if v != int64(2*i) {
			t.Fatalf("record %d is %d, want %d (%d records)", i, v, 2*i, len(got.vals))
		}
	}
	if len(got.vals) != n {
		t.Fatalf("%d records, want %d", len(got.vals), n)
	}
	want := slices.Repeat([]string{"wm-max", "finish", "close"}, 3)
	slices.Sort(want)
	events := slices.Clone(got.events)
	slices.Sort(events)
	if !slices.Equal(events, want) {
		t.Fatalf("end-of-input calls %v, want each of wm-max, finish, close per subtask", got.events)
	}
	if jg := g.JobGraph(); len(jg.Vertices) != 2 || jg.Vertices[0].Name != "Source: Counter -> Map" || !jg.Vertices[0].IsSource {
		t.Fatalf("job graph %v", jg)
	}
}

// An operator that fails its subtask fails the run, named by vertex and
// subtask, and every operator of the graph is still closed.
func TestFailedOperatorFailsTheRun(t *testing.T) {
	boom := errors.New("boom")
	var got collector
	g := newGraph(128)
	failing := &Operator{UID: "bad", Name: "Bad", Kind: "map", Out: ints,
		NewOp: func(env *Env, _ any) (OpRun, error) {
			return OpRun{In: func(v int64) {
				if v == 500 {
					env.Fail(boom)
				}
			}, Close: func() error { got.event("bad-close"); return nil }}, nil
		}}
	src := g.vertex(1, counter("src", 1000, 10, 0), failing)
	g.edge(src, g.vertex(1, collect("sink", &got)), partForward)
	err := g.RunLocal(t.Context(), quiet(), nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "Source: Counter -> Bad (subtask 1/1)") {
		t.Fatalf("run error %v", err)
	}
	for _, e := range []string{"bad-close", "close"} {
		if !slices.Contains(got.events, e) {
			t.Errorf("no %s in %v", e, got.events)
		}
	}
	if slices.Contains(got.events, "finish") {
		t.Errorf("a failed run finished its sink: %v", got.events)
	}
}

// committer is a two-phase-commit sink, at parallelism 1: records go
// pending at each barrier and become visible (committed) when that
// checkpoint completes, or, after a restore, from the restored state. Its
// state is the checkpoint id followed by the pending records.
type committer struct {
	mu        sync.Mutex
	committed map[int64]bool // checkpoint ids whose records are visible
	visible   []int64
}

func (c *committer) commit(id int64, recs []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.committed[id] {
		c.committed[id] = true
		c.visible = append(c.visible, recs...)
	}
}

func (c *committer) operator() *Operator {
	return sink("commit", func(env *Env) OpRun {
		var buf []int64
		pending := map[int64][]int64{}
		if items, ok := env.Restored(); ok && len(items) > 0 {
			id, _ := binary.Varint(items[0])
			var recs []int64
			for _, it := range items[1:] {
				v, _ := binary.Varint(it)
				recs = append(recs, v)
			}
			c.commit(id, recs)
		}
		return OpRun{
			In: func(v int64) { buf = append(buf, v) },
			Snapshot: func(id int64) ([][]byte, error) {
				pending[id], buf = buf, nil
				items := [][]byte{binary.AppendVarint(nil, id)}
				for _, v := range pending[id] {
					items = append(items, binary.AppendVarint(nil, v))
				}
				return items, nil
			},
			Notify: func(id int64) error {
				for p, recs := range pending {
					if p <= id {
						c.commit(p, recs)
						delete(pending, p)
					}
				}
				return nil
			},
			Finish: func() error {
				if env.checkpointing {
					// The final checkpoint commits the rest (SinkWriter's
					// contract): its barrier may well come after this.
					return nil
				}
				// Records of checkpoints not yet notified commit too: the
				// input ended, so nothing will replay them.
				for _, id := range slices.Sorted(maps.Keys(pending)) {
					c.commit(id, pending[id])
				}
				c.commit(math.MaxInt64, buf)
				return nil
			},
		}
	})
}

// A checkpoint round trip: the job is killed after its first completed
// checkpoint and restored from it; the source resumes at its checkpointed
// position and the two-phase-commit sink makes every record visible
// exactly once.
func TestCheckpointRoundTrip(t *testing.T) {
	const n = 400
	sink := &committer{committed: map[int64]bool{}}
	c := &MiniCluster{Dir: t.TempDir(), Interval: 20 * time.Millisecond, Parallelism: 1,
		Build: func(int) (*Graph, error) {
			g := newGraph(128)
			// One record per millisecond: the job outlives a checkpoint.
			src := g.vertex(1, counter("src", n, 1, time.Millisecond), mapper("double", func(v int64) int64 { return 2 * v }))
			g.edge(src, g.vertex(1, sink.operator()), partRebalance)
			return g.Graph, nil
		}}
	finished, err := c.RunAttempt(t.Context(), 1)
	if err != nil || finished {
		t.Fatalf("first attempt: finished %v, err %v; want killed after a checkpoint", finished, err)
	}
	if c.last == nil {
		t.Fatal("no checkpoint completed")
	}
	if finished, err := c.RunAttempt(t.Context(), 0); err != nil || !finished {
		t.Fatalf("restored attempt: finished %v, err %v", finished, err)
	}
	slices.Sort(sink.visible)
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(2 * i)
	}
	if !slices.Equal(sink.visible, want) {
		t.Fatalf("visible records %s, want 0, 2, ... %d once each", summary(sink.visible), 2*(n-1))
	}
}

// summary shows a long list of records briefly.
func summary(vs []int64) string {
	if len(vs) <= 10 {
		return fmt.Sprint(vs)
	}
	return fmt.Sprintf("%v ... %v (%d)", vs[:5], vs[len(vs)-5:], len(vs))
}
