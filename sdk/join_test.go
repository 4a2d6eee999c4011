package sdk

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// twoInputs builds the two timestamped, keyed inputs of a join test.
func twoInputs(pl *Pipeline, left, right []event, bound time.Duration) (KeyedStream[string, event], KeyedStream[string, event]) {
	in := func(name string, evs []event) KeyedStream[string, event] {
		src := Generate(pl, int64(len(evs)), func(i int64) event { return evs[i] }, WithUID(name))
		return KeyBy(AssignTimestamps(src, eventTS, BoundedOutOfOrder(bound), WithUID(name+"-ts")), eventKey)
	}
	return in("left", left), in("right", right)
}

func collect[T any](t testing.TB, pl *Pipeline, s Stream[T]) []T {
	var out bag[T]
	out.sinkTo(s)
	if err := runPipeline(t.Context(), pl); err != nil {
		t.Fatal(err)
	}
	return out.items()
}

func pairString(key string, a, b event) string { return fmt.Sprintf("%s %d %d", key, a.TS, b.TS) }

// referenceIntervalJoin is the brute-force interval join.
func referenceIntervalJoin(left, right []event, lower, upper int64) []string {
	var out []string
	for _, a := range left {
		for _, b := range right {
			if a.Key == b.Key && a.TS+lower <= b.TS && b.TS <= a.TS+upper {
				out = append(out, pairString(a.Key, a, b))
			}
		}
	}
	return multiset(out)
}

// referenceWindowJoin is the brute-force window join: every pair of a
// key's records that share a window. Sessions are cut over both inputs.
func referenceWindowJoin(left, right []event, a WindowAssigner) []string {
	var out []string
	inWindow := func(ts int64, w TimeWindow) bool { return w.Start <= ts && ts < w.End }
	switch a.kind {
	case sessionWindows:
		both := append(slices.Clone(left), right...)
		for _, p := range referenceSessions(both, a.gap) {
			for _, x := range left {
				for _, y := range right {
					if x.Key == p.key && y.Key == p.key && inWindow(x.TS, p.w) && inWindow(y.TS, p.w) {
						out = append(out, fmt.Sprintf("%s [%d,%d) %d %d", p.key, p.w.Start, p.w.End, x.TS, y.TS))
					}
				}
			}
		}
	default:
		for _, x := range left {
			for _, y := range right {
				if x.Key != y.Key {
					continue
				}
				for s := floorTo(x.TS, a.slide); s+a.size > x.TS; s -= a.slide {
					if w := (TimeWindow{s, s + a.size}); inWindow(y.TS, w) {
						out = append(out, fmt.Sprintf("%s [%d,%d) %d %d", x.Key, w.Start, w.End, x.TS, y.TS))
					}
				}
			}
		}
	}
	return multiset(out)
}

type keyedWindow struct {
	key string
	w   TimeWindow
}

// referenceSessions cuts each key's events into sessions of gap.
func referenceSessions(evs []event, gap int64) []keyedWindow {
	byKey := map[string][]int64{}
	for _, e := range evs {
		byKey[e.Key] = append(byKey[e.Key], e.TS)
	}
	var out []keyedWindow
	for k, tss := range byKey {
		slices.Sort(tss)
		cur := TimeWindow{tss[0], tss[0] + gap}
		for _, ts := range tss[1:] {
			if ts >= cur.End {
				out = append(out, keyedWindow{k, cur})
				cur = TimeWindow{ts, ts}
			}
			cur.End = ts + gap
		}
		out = append(out, keyedWindow{k, cur})
	}
	return out
}

func runWindowJoin(t testing.TB, left, right []event, p int, a WindowAssigner, bound time.Duration) []string {
	pl := NewPipeline("windowjoin", p)
	l, r := twoInputs(pl, left, right, bound)
	return multiset(collect(t, pl, WindowJoin(l, r, a, func(key string, w TimeWindow, x, y event) string {
		return fmt.Sprintf("%s [%d,%d) %d %d", key, w.Start, w.End, x.TS, y.TS)
	})))
}

func runIntervalJoin(t testing.TB, left, right []event, p int, lower, upper, bound time.Duration) []string {
	pl := NewPipeline("intervaljoin", p)
	l, r := twoInputs(pl, left, right, bound)
	return multiset(collect(t, pl, IntervalJoin(l, r, lower, upper, func(key string, x, y event) string {
		return pairString(key, x, y)
	})))
}

func TestJoinsMatchReference(t *testing.T) {
	left, right := outOfOrder(11, 600, 5, 20, 500), outOfOrder(12, 500, 5, 24, 500)
	for name, a := range map[string]WindowAssigner{
		"tumbling": Tumbling(time.Second),
		"sliding":  Sliding(time.Second, 300*time.Millisecond),
		"session":  Sessions(150 * time.Millisecond),
	} {
		want := referenceWindowJoin(left, right, a)
		if len(want) < 100 {
			t.Fatalf("%s: the reference has %d pairs", name, len(want))
		}
		for _, p := range []int{1, 4} {
			if got := runWindowJoin(t, left, right, p, a, 500*time.Millisecond); !slices.Equal(got, want) {
				t.Errorf("window join %s p=%d: %s", name, p, diffMultisets(got, want))
			}
		}
	}
	want := referenceIntervalJoin(left, right, -200, 300)
	if len(want) < 100 {
		t.Fatalf("interval join: the reference has %d pairs", len(want))
	}
	for _, p := range []int{1, 4} {
		if got := runIntervalJoin(t, left, right, p, -200*time.Millisecond, 300*time.Millisecond, 500*time.Millisecond); !slices.Equal(got, want) {
			t.Errorf("interval join p=%d: %s", p, diffMultisets(got, want))
		}
	}
}

// TestJoinProperty: for random out-of-order inputs, window joins of every
// window type and interval joins equal the brute-force model at p=1 and p=4.
func TestJoinProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		keys := rapid.IntRange(1, 4).Draw(rt, "keys")
		bound := rapid.Int64Range(0, 1000).Draw(rt, "bound")
		left := outOfOrder(seed, rapid.IntRange(0, 120).Draw(rt, "left"), keys, 40, bound)
		right := outOfOrder(seed+1, rapid.IntRange(0, 120).Draw(rt, "right"), keys, 40, bound)
		p := rapid.SampledFrom([]int{1, 4}).Draw(rt, "p")
		ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
		if rapid.Bool().Draw(rt, "interval") {
			lower := rapid.Int64Range(-1000, 1000).Draw(rt, "lower")
			upper := lower + rapid.Int64Range(0, 1000).Draw(rt, "width")
			want := referenceIntervalJoin(left, right, lower, upper)
			if got := runIntervalJoin(t, left, right, p, ms(lower), ms(upper), ms(bound)); !slices.Equal(got, want) {
				rt.Fatalf("interval [%d,%d] p=%d: %s", lower, upper, p, diffMultisets(got, want))
			}
			return
		}
		size := rapid.Int64Range(1, 20).Draw(rt, "size") * 100
		as := []WindowAssigner{Tumbling(ms(size)),
			Sliding(ms(size), ms(rapid.Int64Range(1, 20).Draw(rt, "slide")*100)),
			Sessions(ms(rapid.Int64Range(1, 10).Draw(rt, "gap") * 50))}
		a := as[rapid.IntRange(0, len(as)-1).Draw(rt, "assigner")]
		want := referenceWindowJoin(left, right, a)
		if got := runWindowJoin(t, left, right, p, a, ms(bound)); !slices.Equal(got, want) {
			rt.Fatalf("%+v p=%d: %s", a, p, diffMultisets(got, want))
		}
	})
}

// TestKeyedCoProcess: per key and 500 ms bucket, the counts of both inputs,
// emitted by an event-time timer at the bucket's end from state the two
// inputs share.
func TestKeyedCoProcess(t *testing.T) {
	left, right := outOfOrder(21, 800, 6, 15, 400), outOfOrder(22, 700, 6, 17, 400)
	want := map[string][2]int64{}
	for i, evs := range [][]event{left, right} {
		for _, e := range evs {
			k := fmt.Sprintf("%s %d", e.Key, e.TS-floorMod(e.TS, 500))
			c := want[k]
			c[i]++
			want[k] = c
		}
	}
	var wantLines []string
	for k, c := range want {
		wantLines = append(wantLines, fmt.Sprintf("%s %d %d", k, c[0], c[1]))
	}
	for _, p := range []int{1, 4} {
		pl := NewPipeline("coprocess", p)
		l, r := twoInputs(pl, left, right, 400*time.Millisecond)
		out := KeyedCoProcess(Connect(l, r), func(s *StateStore, tm Timers) (CoProcessFuncs[string, event, event, string], error) {
			counts := NewMapState[int64, [2]int64](s, "counts")
			add := func(side int, e event) error {
				b := e.TS - floorMod(e.TS, 500)
				c, _, err := counts.Get(b)
				if err != nil {
					return err
				}
				c[side]++
				if err := counts.Put(b, c); err != nil {
					return err
				}
				return tm.At(b + 499)
			}
			return CoProcessFuncs[string, event, event, string]{
				First:  func(_ string, e event, _ func(string)) error { return add(0, e) },
				Second: func(_ string, e event, _ func(string)) error { return add(1, e) },
				Timer: func(key string, ts int64, _ TimeDomain, emit func(string)) error {
					c, _, err := counts.Get(ts - 499)
					if err != nil {
						return err
					}
					emit(fmt.Sprintf("%s %d %d %d", key, ts-499, c[0], c[1]))
					return counts.Delete(ts - 499)
				},
			}, nil
		})
		if d := diffMultisets(collect(t, pl, out), wantLines); d != "" {
			t.Errorf("p=%d: %s", p, d)
		}
	}
}

func floorMod(ts, step int64) int64 { return ts - floorTo(ts, step) }

// TestTwoInputPlan: a join's second input reaches the graph as its own
// edge with target input 1.
func TestTwoInputPlan(t *testing.T) {
	pl := NewPipeline("plan", 2)
	left, right := outOfOrder(1, 10, 2, 10, 0), outOfOrder(2, 10, 2, 10, 0)
	l, r := twoInputs(pl, left, right, 0)
	IntervalJoin(l, r, 0, time.Second, func(key string, x, y event) string { return key })
	pln, err := pl.compile()
	if err != nil {
		t.Fatal(err)
	}
	g := pln.JobGraph()
	var inputs []int32
	for _, e := range g.Edges {
		if e.Target == g.Edges[len(g.Edges)-1].Target {
			inputs = append(inputs, e.TargetInput)
		}
	}
	if !slices.Equal(inputs, []int32{0, 1}) {
		t.Fatalf("the join's input edges have target inputs %v, want [0 1]", inputs)
	}
}

func FuzzJoinBufCodec(f *testing.F) {
	c := joinBufCodec[string, int64]{a: StringCodec{}, b: VarintCodec[int64]{}}
	f.Add(c.Append(nil, joinBuf[string, int64]{first: []string{"a", ""}, second: []int64{-3}}))
	f.Add([]byte{5, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := c.Decode(b)
		if err != nil {
			return
		}
		again, err := c.Decode(c.Append(nil, j))
		if err != nil || !slices.Equal(again.first, j.first) || !slices.Equal(again.second, j.second) {
			t.Fatalf("round trip of %+v: %+v, %v", j, again, err)
		}
	})
}

func FuzzDecodeBuffered(f *testing.F) {
	f.Add(appendBuffered(appendBuffered(nil, -5, []byte("ab")), 1<<40, nil))
	f.Add([]byte{3, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var again []byte
		if err := decodeBuffered(b, func(ts int64, rec []byte) error {
			again = appendBuffered(again, ts, rec)
			return nil
		}); err != nil {
			return
		}
		var twice []byte
		if err := decodeBuffered(again, func(ts int64, rec []byte) error {
			twice = appendBuffered(twice, ts, rec)
			return nil
		}); err != nil || string(twice) != string(again) {
			t.Fatalf("re-encoding %x is not stable: %x, %v", again, twice, err)
		}
	})
}
