package sdk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

var parallelisms = []int{1, 2, 4}

func genSeq(p *Pipeline, n int64, opts ...Option) Stream[int64] {
	return Generate(p, n, func(i int64) int64 { return i }, opts...)
}

// seqUpTo returns 0..n-1, the records of genSeq(p, n).
func seqUpTo(n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}

func checkOutput[T any](t *testing.T, got, want []T) {
	t.Helper()
	if d := diffMultisets(got, want); d != "" {
		t.Fatal(d)
	}
}

func TestLocalStatelessPipelines(t *testing.T) {
	const n = 3000
	for _, par := range parallelisms {
		t.Run(fmt.Sprintf("p%d", par), func(t *testing.T) {
			t.Run("map filter flatmap", func(t *testing.T) {
				p := NewPipeline("stateless", par)
				s := Map(genSeq(p, n), func(v int64) int64 { return v * 3 })
				s = Filter(s, func(v int64) bool { return v%2 == 0 })
				s = FlatMap(s, func(v int64, emit func(int64)) {
					emit(v)
					if v%4 == 0 {
						emit(-v)
					}
				})
				var b bag[int64]
				b.sinkTo(s)
				mustRun(t, p)
				var want []int64
				for i := range int64(n) {
					if v := i * 3; v%2 == 0 {
						want = append(want, v)
						if v%4 == 0 {
							want = append(want, -v)
						}
					}
				}
				checkOutput(t, b.items(), want)
				if fin, closed := b.counts(); fin != par || closed != par {
					t.Errorf("sink writers: %d finished, %d closed, want %d each", fin, closed, par)
				}
			})
			t.Run("type changes", func(t *testing.T) {
				p := NewPipeline("types", par)
				s := Map(genSeq(p, n), func(v int64) string { return fmt.Sprintf("r%d", v) })
				lens := Map(s, func(s string) float64 { return float64(len(s)) / 2 })
				var b bag[float64]
				b.sinkTo(lens)
				mustRun(t, p)
				var want []float64
				for i := range int64(n) {
					want = append(want, float64(len(fmt.Sprintf("r%d", i)))/2)
				}
				checkOutput(t, b.items(), want)
			})
			t.Run("parallelism changes between operators", func(t *testing.T) {
				p := NewPipeline("reshape", par)
				s := Map(genSeq(p, n), sameInt64, WithParallelism(3))
				s = Filter(s, func(v int64) bool { return v%5 != 0 }, WithParallelism(1))
				var b bag[int64]
				b.sinkTo(Map(s, func(v int64) int64 { return v + 1 }), WithParallelism(2))
				mustRun(t, p)
				var want []int64
				for i := range int64(n) {
					if i%5 != 0 {
						want = append(want, i+1)
					}
				}
				checkOutput(t, b.items(), want)
			})
			t.Run("rebalance", func(t *testing.T) {
				p := NewPipeline("rebalance", par)
				var b bag[int64]
				b.sinkTo(Map(Rebalance(genSeq(p, n)), sameInt64))
				mustRun(t, p)
				checkOutput(t, b.items(), seqUpTo(n))
			})
			t.Run("broadcast", func(t *testing.T) {
				p := NewPipeline("broadcast", par)
				var b bag[int64]
				b.sinkTo(Broadcast(genSeq(p, n)), WithParallelism(3))
				mustRun(t, p)
				var want []int64
				for range 3 {
					want = append(want, seqUpTo(n)...)
				}
				checkOutput(t, b.items(), want)
				// Every sink subtask got every record.
				for _, got := range b.bySubtask() {
					checkOutput(t, got, seqUpTo(n))
				}
				if len(b.bySubtask()) != 3 {
					t.Errorf("records reached %d sink subtasks, want 3", len(b.bySubtask()))
				}
			})
			t.Run("fan out", func(t *testing.T) {
				p := NewPipeline("fanout", par)
				s := genSeq(p, n)
				var a, b bag[int64]
				a.sinkTo(s)
				b.sinkTo(Map(s, func(v int64) int64 { return -v }, StartNewChain()))
				mustRun(t, p)
				checkOutput(t, a.items(), seqUpTo(n))
				var neg []int64
				for _, v := range seqUpTo(n) {
					neg = append(neg, -v)
				}
				checkOutput(t, b.items(), neg)
			})
			t.Run("fewer records than subtasks", func(t *testing.T) {
				p := NewPipeline("tiny", par)
				var b bag[int64]
				b.sinkTo(Map(genSeq(p, 1), sameInt64, StartNewChain()))
				mustRun(t, p)
				checkOutput(t, b.items(), []int64{0})
			})
			t.Run("empty source", func(t *testing.T) {
				p := NewPipeline("empty", par)
				var b bag[KV[int64, int64]]
				b.sinkTo(Aggregate(KeyBy(genSeq(p, 0), sameInt64), Count[int64](), EmitFinal()))
				mustRun(t, p)
				checkOutput(t, b.items(), nil)
				if fin, _ := b.counts(); fin != par {
					t.Errorf("%d sink writers finished, want %d", fin, par)
				}
			})
		})
	}
}

type avgAcc struct{ Sum, N int64 }

func TestLocalKeyedPipelines(t *testing.T) {
	const n, keys = 5000, 37
	key := func(v int64) string { return fmt.Sprintf("k%02d", v%keys) }
	for _, par := range parallelisms {
		t.Run(fmt.Sprintf("p%d", par), func(t *testing.T) {
			t.Run("count final", func(t *testing.T) {
				p := NewPipeline("count", par)
				var b bag[KV[string, int64]]
				b.sinkTo(Aggregate(KeyBy(genSeq(p, n), key), Count[int64](), EmitFinal()))
				mustRun(t, p)
				counts := make(map[string]int64)
				for i := range int64(n) {
					counts[key(i)]++
				}
				var want []KV[string, int64]
				for k, c := range counts {
					want = append(want, KV[string, int64]{k, c})
				}
				checkOutput(t, b.items(), want)
			})
			t.Run("count changelog", func(t *testing.T) {
				p := NewPipeline("changelog", par)
				var b bag[KV[string, int64]]
				b.sinkTo(Aggregate(KeyBy(genSeq(p, n), key), Count[int64]()))
				mustRun(t, p)
				// One update per record: for a key seen c times, 1..c.
				counts := make(map[string]int64)
				var want []KV[string, int64]
				for i := range int64(n) {
					counts[key(i)]++
					want = append(want, KV[string, int64]{key(i), counts[key(i)]})
				}
				checkOutput(t, b.items(), want)
			})
			t.Run("reduce final", func(t *testing.T) {
				p := NewPipeline("sum", par)
				var b bag[int64]
				sums := Map(genSeq(p, n), func(v int64) int64 { return v*keys + v%keys })
				b.sinkTo(Reduce(KeyBy(sums, func(v int64) int64 { return v % keys }),
					func(acc, v int64) int64 { return acc + v - v%keys }, EmitFinal()))
				mustRun(t, p)
				// The reduced value keeps its key in v%keys: acc adds only the
				// multiple of keys.
				total := make(map[int64]int64)
				for i := range int64(n) {
					v := i*keys + i%keys
					if _, ok := total[v%keys]; !ok {
						total[v%keys] = v
					} else {
						total[v%keys] += v - v%keys
					}
				}
				var want []int64
				for _, s := range total {
					want = append(want, s)
				}
				checkOutput(t, b.items(), want)
			})
			t.Run("aggregate with a struct accumulator", func(t *testing.T) {
				p := NewPipeline("avg", par)
				avg := AggregateFunc[int64, avgAcc, float64]{
					Init:   func() avgAcc { return avgAcc{} },
					Add:    func(a avgAcc, v int64) avgAcc { return avgAcc{a.Sum + v, a.N + 1} },
					Result: func(a avgAcc) float64 { return float64(a.Sum) / float64(a.N) },
				}
				var b bag[KV[int64, float64]]
				b.sinkTo(Aggregate(KeyBy(genSeq(p, n), func(v int64) int64 { return v % 7 }), avg, EmitFinal()))
				mustRun(t, p)
				accs := make(map[int64]avgAcc)
				for i := range int64(n) {
					a := accs[i%7]
					accs[i%7] = avgAcc{a.Sum + i, a.N + 1}
				}
				var want []KV[int64, float64]
				for k, a := range accs {
					want = append(want, KV[int64, float64]{k, float64(a.Sum) / float64(a.N)})
				}
				checkOutput(t, b.items(), want)
			})
			t.Run("two keyed stages", func(t *testing.T) {
				// Count per key, then count the keys per count.
				p := NewPipeline("twice", par)
				counts := Aggregate(KeyBy(genSeq(p, n), func(v int64) int64 { return v % 100 / 3 }), Count[int64](), EmitFinal())
				hist := Aggregate(KeyBy(counts, func(kv KV[int64, int64]) int64 { return kv.Value }),
					Count[KV[int64, int64]](), EmitFinal(), WithParallelism(max(1, par-1)))
				var b bag[KV[int64, int64]]
				b.sinkTo(hist)
				mustRun(t, p)
				perKey := make(map[int64]int64)
				for i := range int64(n) {
					perKey[i%100/3]++
				}
				perCount := make(map[int64]int64)
				for _, c := range perKey {
					perCount[c]++
				}
				var want []KV[int64, int64]
				for c, k := range perCount {
					want = append(want, KV[int64, int64]{c, k})
				}
				checkOutput(t, b.items(), want)
			})
		})
	}
}

type keyedVal struct {
	K int64
	V int64
}

// Reduce without EmitFinal is a changelog: one running result per record,
// per key in the order the key's records arrived.
func TestReduceChangelog(t *testing.T) {
	const n, keys = 2000, 13
	for _, par := range parallelisms {
		t.Run(fmt.Sprintf("p%d", par), func(t *testing.T) {
			p := NewPipeline("reduce", par)
			s := Map(genSeq(p, n), func(i int64) keyedVal { return keyedVal{K: i % keys, V: i + 1} })
			sums := Reduce(KeyBy(s, func(r keyedVal) int64 { return r.K }), func(acc, r keyedVal) keyedVal {
				return keyedVal{K: acc.K, V: acc.V + r.V}
			})
			var b bag[keyedVal]
			b.sinkTo(sums)
			mustRun(t, p)
			got := b.items()
			if len(got) != n {
				t.Fatalf("%d results, want one per record (%d)", len(got), n)
			}
			total := make(map[int64]int64)
			for i := range int64(n) {
				total[i%keys] += i + 1
			}
			last := make(map[int64]int64)
			for _, r := range got {
				// Values are positive, so each key's running sum grows.
				if r.V <= last[r.K] {
					t.Fatalf("key %d: running result %d after %d", r.K, r.V, last[r.K])
				}
				last[r.K] = r.V
			}
			for k, want := range total {
				if last[k] != want {
					t.Errorf("key %d: last result %d, want total %d", k, last[k], want)
				}
			}
		})
	}
}

// Every key reaches one subtask of the keyed operator: the one its key
// group maps to.
func TestKeyedRouting(t *testing.T) {
	const n, keys = 4000, 200
	for _, par := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("p%d", par), func(t *testing.T) {
			p := NewPipeline("route", par)
			p.SetMaxParallelism(64)
			counts := Aggregate(KeyBy(genSeq(p, n), func(v int64) string { return fmt.Sprint(v % keys) }), Count[int64](), EmitFinal())
			var b bag[KV[string, int64]]
			b.sinkTo(counts)
			mustRun(t, p)
			seen := make(map[string]bool)
			for sub, kvs := range b.bySubtask() {
				for _, kv := range kvs {
					if seen[kv.Key] {
						t.Fatalf("key %q counted in two subtasks", kv.Key)
					}
					seen[kv.Key] = true
					g := keygroup.Of(keygroup.Hash([]byte(kv.Key)), 64)
					if want := keygroup.Subtask(g, 64, par); sub != want {
						t.Errorf("key %q (group %d) in subtask %d, want %d", kv.Key, g, sub, want)
					}
					if kv.Value != n/keys {
						t.Errorf("key %q counted %d, want %d", kv.Key, kv.Value, n/keys)
					}
				}
			}
			if len(seen) != keys {
				t.Errorf("%d keys, want %d", len(seen), keys)
			}
		})
	}
}

// One producer spreads records round robin: consumer loads differ by at
// most one record.
func TestRebalanceIsRoundRobin(t *testing.T) {
	const n = 1001
	p := NewPipeline("rr", 4)
	var b bag[int64]
	b.sinkTo(Rebalance(genSeq(p, n, WithParallelism(1))))
	mustRun(t, p)
	checkOutput(t, b.items(), seqUpTo(n))
	by := b.bySubtask()
	if len(by) != 4 {
		t.Fatalf("records reached %d subtasks, want 4", len(by))
	}
	for sub, got := range by {
		if len(got) != n/4 && len(got) != n/4+1 {
			t.Errorf("subtask %d got %d records, want %d or %d", sub, len(got), n/4, n/4+1)
		}
		// Round robin: each subtask sees every 4th record, in order.
		for i := 1; i < len(got); i++ {
			if got[i]-got[i-1] != 4 {
				t.Fatalf("subtask %d: %d after %d", sub, got[i], got[i-1])
			}
		}
	}
}

// chainStep is one random stateless transformation for the property test.
type chainStep struct {
	Kind        string // add, mul, filter, dup
	C           int64
	Parallelism int // 0: the pipeline's
	NewChain    bool
	Rebalance   bool
}

func (s chainStep) apply(in Stream[int64]) Stream[int64] {
	var opts []Option
	if s.Parallelism > 0 {
		opts = append(opts, WithParallelism(s.Parallelism))
	}
	if s.NewChain {
		opts = append(opts, StartNewChain())
	}
	if s.Rebalance {
		in = Rebalance(in)
	}
	switch s.Kind {
	case "add":
		return Map(in, func(v int64) int64 { return v + s.C }, opts...)
	case "mul":
		return Map(in, func(v int64) int64 { return v * s.C }, opts...)
	case "filter":
		return Filter(in, func(v int64) bool { return v%(absInt64(s.C)+2) != 0 }, opts...)
	default:
		return FlatMap(in, func(v int64, emit func(int64)) {
			emit(v)
			if v%2 == 0 {
				emit(v + s.C)
			}
		}, opts...)
	}
}

// model applies the step to a slice.
func (s chainStep) model(in []int64) []int64 {
	var out []int64
	for _, v := range in {
		switch s.Kind {
		case "add":
			out = append(out, v+s.C)
		case "mul":
			out = append(out, v*s.C)
		case "filter":
			if v%(absInt64(s.C)+2) != 0 {
				out = append(out, v)
			}
		default:
			out = append(out, v)
			if v%2 == 0 {
				out = append(out, v+s.C)
			}
		}
	}
	return out
}

func absInt64(v int64) int64 { return max(v, -v) }

var genChainStep = rapid.Custom(func(t *rapid.T) chainStep {
	return chainStep{
		Kind:        rapid.SampledFrom([]string{"add", "mul", "filter", "dup"}).Draw(t, "kind"),
		C:           rapid.Int64Range(-3, 3).Draw(t, "c"),
		Parallelism: rapid.IntRange(0, 4).Draw(t, "stepParallelism"),
		NewChain:    rapid.Bool().Draw(t, "newChain"),
		Rebalance:   rapid.Bool().Draw(t, "rebalance"),
	}
})

// TestKeyedCountProperty runs random chains of stateless steps into a keyed
// count and compares with a brute-force count.
func TestKeyedCountProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.Int64Range(0, 3000).Draw(rt, "events")
		keys := rapid.Int64Range(1, 60).Draw(rt, "keys")
		par := rapid.IntRange(1, 4).Draw(rt, "parallelism")
		steps := rapid.SliceOfN(genChainStep, 0, 4).Draw(rt, "steps")
		countPar := rapid.IntRange(1, 4).Draw(rt, "countParallelism")
		final := rapid.Bool().Draw(rt, "emitFinal")

		p := NewPipeline("prop", par)
		s := genSeq(p, n)
		vals := seqUpTo(n)
		for _, st := range steps {
			s = st.apply(s)
			vals = st.model(vals)
		}
		keyOf := func(v int64) int64 { return (v%keys + keys) % keys }
		opts := []Option{WithParallelism(countPar)}
		if final {
			opts = append(opts, EmitFinal())
		}
		var b bag[KV[int64, int64]]
		b.sinkTo(Aggregate(KeyBy(s, keyOf), Count[int64](), opts...))
		if err := runPipeline(t.Context(), p); err != nil {
			rt.Fatalf("job failed: %v", err)
		}

		counts := make(map[int64]int64)
		var want []KV[int64, int64]
		for _, v := range vals {
			k := keyOf(v)
			counts[k]++
			if !final {
				want = append(want, KV[int64, int64]{k, counts[k]})
			}
		}
		if final {
			for k, c := range counts {
				want = append(want, KV[int64, int64]{k, c})
			}
		}
		if d := diffMultisets(b.items(), want); d != "" {
			rt.Fatal(d)
		}
	})
}

func TestUserPanicFailsJob(t *testing.T) {
	explode := func(v int64) int64 {
		if v == 77 {
			panic("boom at 77")
		}
		return v
	}
	for _, tc := range []struct {
		name  string
		build func(p *Pipeline) Stream[int64]
		op    string
	}{
		{"chained map", func(p *Pipeline) Stream[int64] {
			return Map(genSeq(p, 1000), explode, WithName("Explode"))
		}, "Explode"},
		{"map heading its chain", func(p *Pipeline) Stream[int64] {
			return Map(genSeq(p, 1000), explode, WithName("Explode"), StartNewChain())
		}, "Explode"},
		{"reduce", func(p *Pipeline) Stream[int64] {
			return Reduce(KeyBy(genSeq(p, 1000), func(v int64) int64 { return v % 10 }),
				func(a, v int64) int64 { return a + explode(v) }, WithName("Sum"))
		}, "Sum"},
		{"generator function", func(p *Pipeline) Stream[int64] {
			return Generate(p, 1000, explode, WithName("Numbers"))
		}, "Numbers"},
	} {
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s p%d", tc.name, par), func(t *testing.T) {
				p := NewPipeline("panic", par)
				var b bag[int64]
				b.sinkTo(tc.build(p))
				err := runPipeline(t.Context(), p)
				if err == nil {
					t.Fatal("job succeeded")
				}
				msg := err.Error()
				for _, want := range []string{"panic", "boom at 77", tc.op} {
					if !strings.Contains(msg, want) {
						t.Errorf("error does not mention %q: %.300s", want, msg)
					}
				}
				if fin, closed := b.counts(); closed != par || fin == par {
					t.Errorf("sink writers: %d finished, %d closed; want all %d closed, not all finished", fin, closed, par)
				}
			})
		}
	}
}

var errSinkFull = errors.New("disk full")

type failingWriter struct {
	writes, failAt int
	finished       *int
	closed         *int
}

func (w *failingWriter) Write(int64) error {
	w.writes++
	if w.writes == w.failAt {
		return errSinkFull
	}
	return nil
}

func (w *failingWriter) Finish() error { *w.finished++; return nil }
func (w *failingWriter) Close() error  { *w.closed++; return nil }

func TestSinkErrorsFailJob(t *testing.T) {
	t.Run("write", func(t *testing.T) {
		for _, par := range parallelisms {
			p := NewPipeline("sinkfail", par)
			finished, closed := make([]int, par), make([]int, par)
			NewSink(Map(genSeq(p, 5000), sameInt64, StartNewChain()), "Store", func(ti TaskInfo) (SinkWriter[int64], error) {
				fail := 0
				if ti.Subtask() == par-1 {
					fail = 3
				}
				return &failingWriter{failAt: fail, finished: &finished[ti.Subtask()], closed: &closed[ti.Subtask()]}, nil
			})
			err := runPipeline(t.Context(), p)
			if !errors.Is(err, errSinkFull) || !strings.Contains(err.Error(), `sink "Store"`) {
				t.Fatalf("p%d: job error %v, want the sink's", par, err)
			}
			if finished[par-1] != 0 {
				t.Errorf("p%d: the failed sink writer was finished", par)
			}
			for i, c := range closed {
				if c != 1 {
					t.Errorf("p%d: sink writer %d closed %d times", par, i, c)
				}
			}
		}
	})
	t.Run("open", func(t *testing.T) {
		p := NewPipeline("sinkopen", 2)
		NewSink(genSeq(p, 10), "Store", func(TaskInfo) (SinkWriter[int64], error) { return nil, errSinkFull })
		if err := runPipeline(t.Context(), p); !errors.Is(err, errSinkFull) || !strings.Contains(err.Error(), `open sink "Store"`) {
			t.Fatalf("job error %v", err)
		}
	})
	t.Run("finish", func(t *testing.T) {
		p := NewPipeline("sinkfinish", 2)
		NewSink(genSeq(p, 10), "Store", func(TaskInfo) (SinkWriter[int64], error) { return finishFails{}, nil })
		if err := runPipeline(t.Context(), p); !errors.Is(err, errSinkFull) {
			t.Fatalf("job error %v", err)
		}
	})
	t.Run("source open", func(t *testing.T) {
		p := NewPipeline("srcopen", 2)
		s := NewSource(p, "Feed", func(TaskInfo) (SourceReader[int64], error) { return nil, errSinkFull })
		var b bag[int64]
		b.sinkTo(s)
		if err := runPipeline(t.Context(), p); !errors.Is(err, errSinkFull) || !strings.Contains(err.Error(), `open source "Feed"`) {
			t.Fatalf("job error %v", err)
		}
	})
	t.Run("source poll", func(t *testing.T) {
		p := NewPipeline("srcpoll", 2)
		s := NewSource(p, "Feed", func(TaskInfo) (SourceReader[int64], error) { return pollFails{}, nil })
		var b bag[int64]
		b.sinkTo(Map(s, sameInt64, StartNewChain()))
		if err := runPipeline(t.Context(), p); !errors.Is(err, errSinkFull) || !strings.Contains(err.Error(), "Feed") {
			t.Fatalf("job error %v", err)
		}
	})
}

type finishFails struct{}

func (finishFails) Write(int64) error { return nil }
func (finishFails) Finish() error     { return errSinkFull }
func (finishFails) Close() error      { return nil }

type pollFails struct{}

func (pollFails) Poll(emit func(int64)) (Poll, error) { emit(1); return Poll{}, errSinkFull }
func (pollFails) Close() error                        { return nil }

// A source that waits between polls (Poll.Wait) must still deliver all its
// records, flushed by the runtime when it waits.
type slowSource struct{ next, n int64 }

func (s *slowSource) Poll(emit func(int64)) (Poll, error) {
	if s.next >= s.n {
		return Poll{Done: true}, nil
	}
	emit(s.next)
	s.next++
	return Poll{Wait: time.Millisecond}, nil
}

func (s *slowSource) Close() error { return nil }

func TestNewSourceWithWaits(t *testing.T) {
	p := NewPipeline("slow", 2)
	s := NewSource(p, "Slow", func(ti TaskInfo) (SourceReader[int64], error) {
		return &slowSource{n: 20}, nil
	})
	var b bag[KV[int64, int64]]
	b.sinkTo(Aggregate(KeyBy(s, sameInt64), Count[int64](), EmitFinal()))
	mustRun(t, p)
	var want []KV[int64, int64]
	for i := range int64(20) {
		want = append(want, KV[int64, int64]{i, 2})
	}
	checkOutput(t, b.items(), want)
}

func TestTaskInfo(t *testing.T) {
	p := NewPipeline("info", 3)
	type info struct {
		Subtask, Parallelism int
		UID                  string
	}
	var b bag[info]
	s := NewSource(p, "Info", func(ti TaskInfo) (SourceReader[info], error) {
		if ti.JobID() == "" || ti.Attempt() < 1 {
			return nil, fmt.Errorf("bad task info %q %d", ti.JobID(), ti.Attempt())
		}
		return &oneShot[info]{v: info{ti.Subtask(), ti.Parallelism(), ti.UID()}}, nil
	}, WithUID("info-src"))
	b.sinkTo(s)
	mustRun(t, p)
	want := []info{{0, 3, "info-src"}, {1, 3, "info-src"}, {2, 3, "info-src"}}
	checkOutput(t, b.items(), want)
}

type oneShot[T any] struct {
	v    T
	done bool
}

func (o *oneShot[T]) Poll(emit func(T)) (Poll, error) {
	if o.done {
		return Poll{Done: true}, nil
	}
	emit(o.v)
	o.done = true
	return Poll{}, nil
}

func (o *oneShot[T]) Close() error { return nil }

func TestGenerateSplitsAcrossSubtasks(t *testing.T) {
	for _, tc := range []struct {
		n             int64
		subtask, para int
	}{{10, 0, 1}, {10, 0, 3}, {10, 2, 3}, {2, 2, 3}, {0, 0, 2}, {5000, 1, 2}} {
		p := NewPipeline("g", tc.para)
		s := Generate(p, tc.n, func(i int64) string { return fmt.Sprint(i) })
		var got []string
		env := runtime.NewEnv(runtime.EnvOptions{Subtask: tc.subtask, Parallelism: tc.para})
		src, err := s.n.NewSource(env, func(v string) { got = append(got, v) })
		if err != nil {
			t.Fatal(err)
		}
		polls := 0
		for {
			before := len(got)
			res, err := src.Poll()
			if err != nil {
				t.Fatal(err)
			}
			if len(got)-before > pollBatch {
				t.Fatalf("one poll emitted %d records, more than %d", len(got)-before, pollBatch)
			}
			if res.Done {
				break
			}
			if polls++; polls > 100 {
				t.Fatal("generator never done")
			}
		}
		var want []string
		for i := int64(tc.subtask); i < tc.n; i += int64(tc.para) {
			want = append(want, fmt.Sprint(i))
		}
		if !slices.Equal(got, want) {
			t.Errorf("n %d subtask %d/%d: got %v, want %v", tc.n, tc.subtask, tc.para, got, want)
		}
	}
}

// A rate-limited generator reports Done as soon as its last record is out,
// not one record interval later.
func TestGenerateWithRateEndsWithItsLastRecord(t *testing.T) {
	g := &generator[int64]{f: func(i int64) int64 { return i }, n: 2, splits: []genSplit{{next: 0, step: 1}}, perSec: 0.1, start: time.Now().Add(-10 * time.Second)}
	var got []int64
	emit := func(v int64) { got = append(got, v) }
	for range 3 {
		res, err := g.Poll(emit)
		if err != nil {
			t.Fatal(err)
		}
		if res.Done {
			if !slices.Equal(got, []int64{0, 1}) {
				t.Fatalf("done after %v", got)
			}
			return
		}
		if res.Wait > time.Second {
			t.Fatalf("generator waits %v after emitting %v of 2 records", res.Wait, got)
		}
	}
	t.Fatalf("not done after three polls, emitted %v", got)
}

func TestGenerateWithRate(t *testing.T) {
	const rate, n = 400, 100 // a quarter second's worth
	p := NewPipeline("rate", 2)
	var b bag[int64]
	b.sinkTo(genSeq(p, n, WithRate(rate)))
	start := time.Now()
	mustRun(t, p)
	// Subtasks share the rate: each sends n/2 at rate/2 per second.
	if elapsed := time.Since(start); elapsed < 200*time.Millisecond {
		t.Errorf("%d records at %d/s took %v", n, rate, elapsed)
	}
	checkOutput(t, b.items(), seqUpTo(n))
}

func TestCancelStopsUnboundedJob(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(p *Pipeline)
	}{
		{"chained", func(p *Pipeline) {
			var b bag[int64]
			b.sinkTo(Filter(genSeq(p, -1), func(v int64) bool { return v < 0 }))
		}},
		{"keyed", func(p *Pipeline) {
			var b bag[KV[int64, int64]]
			b.sinkTo(Aggregate(KeyBy(genSeq(p, -1), func(v int64) int64 { return v % 10 }), Count[int64](), EmitFinal()))
		}},
		{"rate limited", func(p *Pipeline) {
			var b bag[int64]
			b.sinkTo(Map(genSeq(p, -1, WithRate(1)), sameInt64, StartNewChain()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPipeline("forever", 2)
			tc.build(p)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- runPipeline(ctx, p) }()
			time.Sleep(50 * time.Millisecond)
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled job returned %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("cancelled job still running after 10 s")
			}
		})
	}
}

func TestPrint(t *testing.T) {
	var buf strings.Builder
	stdout.Lock()
	saved := stdout.w
	stdout.w = bufio.NewWriter(&buf)
	stdout.Unlock()
	defer func() {
		stdout.Lock()
		stdout.w = saved
		stdout.Unlock()
	}()
	p := NewPipeline("print", 2)
	Print(Map(genSeq(p, 5000), func(v int64) KV[string, int64] { return KV[string, int64]{"n", v} }))
	mustRun(t, p)
	var want []string
	for i := range 5000 {
		want = append(want, fmt.Sprintf("{n %d}", i))
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	checkOutput(t, got, want)
}

// dealGenSplits cuts and deals restored generator splits so that the new
// subtasks' sequences are disjoint, cover exactly what the old ones had
// left, and leave no subtask without work when there is enough of it.
func TestDealGenSplits(t *testing.T) {
	const n = 1000
	for _, tc := range []struct{ oldP, done, newP int }{
		{2, 100, 4}, {2, 100, 6}, {4, 37, 2}, {3, 5, 8}, {1, 0, 7}, {5, 200, 5}, {2, 499, 4},
	} {
		// The old subtasks' splits after each emitted tc.done records.
		var olds []genSplit
		for s := range tc.oldP {
			olds = append(olds, genSplit{next: int64(s + tc.done*tc.oldP), step: int64(tc.oldP)})
		}
		seen := map[int64]int{}
		for i := range tc.newP {
			count := 0
			for _, sp := range dealGenSplits(olds, i, tc.newP) {
				for v := sp.next; v < n; v += sp.step {
					seen[v]++
					count++
				}
			}
			if left := n - tc.done*tc.oldP; count == 0 && left >= tc.newP*tc.newP {
				t.Errorf("%+v: subtask %d has nothing left of %d records", tc, i, left)
			}
		}
		for v := int64(tc.done * tc.oldP); v < n; v++ {
			if seen[v] != 1 {
				t.Fatalf("%+v: record %d generated %d times", tc, v, seen[v])
			}
		}
		if len(seen) != n-tc.done*tc.oldP {
			t.Fatalf("%+v: %d records generated, want %d", tc, len(seen), n-tc.done*tc.oldP)
		}
	}
}

// genTaskInfo is the TaskInfo of a restored generator subtask.
type genTaskInfo struct {
	TaskInfo
	subtask, p, restoredP int
	own, all              [][]byte
}

func (t genTaskInfo) Subtask() int                  { return t.subtask }
func (t genTaskInfo) Parallelism() int              { return t.p }
func (t genTaskInfo) RestoredParallelism() int      { return t.restoredP }
func (t genTaskInfo) Restored() ([][]byte, bool)    { return t.own, t.own != nil } // as Env: none stored, none listed
func (t genTaskInfo) RestoredAll() ([][]byte, bool) { return t.all, true }

// A restore at the same parallelism from a checkpoint in which one
// generator subtask had finished (and stored no split) keeps each split
// with its own subtask: the finished subtask is restored finished and
// never reads, so a split dealt to it would be lost. (It was:
// TestUnalignedCheckpointsUnderBackpressure then missed every other
// record of the unfinished subtask past the checkpoint.)
func TestGeneratorRestoreWithAFinishedSubtask(t *testing.T) {
	const n = 1000
	// Old subtask 0 emitted up to 600; old subtask 1 finished.
	split := uvarintframe.AppendVarints(nil, 600, 2)
	// Subtask 0 alone reads: subtask 1 is restored finished.
	splits, restored, err := RestoredSplits(genTaskInfo{subtask: 0, p: 2, restoredP: 2, own: [][]byte{split}, all: [][]byte{split}}, decodeGenSplit, dealGenSplits)
	if err != nil || !restored {
		t.Fatalf("RestoredSplits: restored %v, %v", restored, err)
	}
	seen := map[int64]int{}
	for _, sp := range splits {
		for v := sp.next; v < n; v += sp.step {
			seen[v]++
		}
	}
	for v := int64(600); v < n; v += 2 {
		if seen[v] != 1 {
			t.Fatalf("record %d generated %d times after the restore, want once", v, seen[v])
		}
	}
}

// A subtask restored at the same parallelism whose old subtask stored no
// split has nothing left to read: it must not start the sequence afresh
// (every record again) nor take another subtask's split.
func TestGeneratorRestoreWithoutOwnSplits(t *testing.T) {
	other := uvarintframe.AppendVarints(nil, 601, 2)
	splits, restored, err := RestoredSplits(genTaskInfo{subtask: 0, p: 2, restoredP: 2, all: [][]byte{other}}, decodeGenSplit, dealGenSplits)
	if err != nil || !restored || len(splits) != 0 {
		t.Fatalf("RestoredSplits = %v, restored %v, %v; want no splits, restored", splits, restored, err)
	}
}
