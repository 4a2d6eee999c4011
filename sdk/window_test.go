package sdk

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/sdk/internal/runtime"
)

// event is a test record: a key and an event time in ms.
type event struct {
	Key string
	TS  int64
}

func eventTS(e event) int64   { return e.TS }
func eventKey(e event) string { return e.Key }

// outOfOrder returns n events over keys whose times grow by about step ms
// each and are shuffled by up to bound ms: no event is more than bound older
// than the largest time before it.
func outOfOrder(seed uint64, n, keys int, step, bound int64) []event {
	r := rand.New(rand.NewPCG(seed, 1))
	evs := make([]event, n)
	var now int64 = 1_700_000_000_000
	maxSeen := int64(0)
	for i := range evs {
		now += r.Int64N(2*step + 1)
		ts := now - r.Int64N(bound+1)
		if ts < maxSeen-bound {
			ts = maxSeen - bound
		}
		maxSeen = max(maxSeen, ts)
		evs[i] = event{Key: fmt.Sprintf("k%d", r.IntN(keys)), TS: ts}
	}
	return evs
}

// countPanes runs a windowed count of evs at parallelism p.
func countPanes(t testing.TB, evs []event, p int, a WindowAssigner, bound time.Duration, wopts ...WindowOption) []string {
	pl := NewPipeline("windows", p)
	src := AssignTimestamps(Generate(pl, int64(len(evs)), func(i int64) event { return evs[i] }), eventTS, BoundedOutOfOrder(bound))
	w := WindowAggregate(Window(KeyBy(src, eventKey), a, wopts...), Count[event]())
	var out bag[Pane[string, int64]]
	out.sinkTo(w.Results())
	if err := runPipeline(t.Context(), pl); err != nil {
		t.Fatal(err)
	}
	return multiset(out.items())
}

// referenceCounts is the brute-force model of on-time windowed counts: every
// window containing each event, counted.
func referenceCounts(evs []event, a WindowAssigner) []string {
	type kw struct {
		key string
		w   TimeWindow
	}
	counts := map[kw]int64{}
	switch a.kind {
	case sessionWindows:
		byKey := map[string][]int64{}
		for _, e := range evs {
			byKey[e.Key] = append(byKey[e.Key], e.TS)
		}
		for k, tss := range byKey {
			slices.Sort(tss)
			cur := TimeWindow{tss[0], tss[0] + a.gap}
			n := int64(0)
			for _, ts := range tss {
				if ts >= cur.End {
					counts[kw{k, cur}] = n
					cur, n = TimeWindow{ts, ts}, 0
				}
				cur.End = ts + a.gap
				n++
			}
			counts[kw{k, cur}] = n
		}
	case globalWindows:
		for _, e := range evs {
			counts[kw{e.Key, globalWindow}]++
		}
	default:
		for _, e := range evs {
			for s := floorTo(e.TS, a.slide); s+a.size > e.TS; s -= a.slide {
				counts[kw{e.Key, TimeWindow{s, s + a.size}}]++
			}
		}
	}
	var out []Pane[string, int64]
	for _, k := range slices.SortedFunc(maps.Keys(counts), func(a, b kw) int { return int(a.w.Start - b.w.Start) }) {
		out = append(out, Pane[string, int64]{Key: k.key, Start: k.w.Start, End: k.w.End, Timing: OnTime, Value: counts[k]})
	}
	return multiset(out)
}

func TestWindowedCountsMatchReference(t *testing.T) {
	evs := outOfOrder(1, 5000, 7, 20, 3000)
	for name, a := range map[string]WindowAssigner{
		"tumbling": Tumbling(10 * time.Second),
		"sliding":  Sliding(10*time.Second, 3*time.Second),
		"hopping":  Sliding(2*time.Second, 5*time.Second),
		"session":  Sessions(400 * time.Millisecond),
		"global":   GlobalWindows(),
	} {
		t.Run(name, func(t *testing.T) {
			want := referenceCounts(evs, a)
			if len(want) < 2 {
				t.Fatalf("reference has %d panes", len(want))
			}
			for _, p := range []int{1, 4} {
				got := countPanes(t, evs, p, a, 3*time.Second)
				if !slices.Equal(got, want) {
					t.Fatalf("p=%d: %s", p, diffMultisets(got, want))
				}
			}
		})
	}
}

// TestWindowProperty: for random out-of-order streams and every window
// type, the on-time panes at p=1 and p=4 equal the brute-force model.
func TestWindowProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		n := rapid.IntRange(1, 400).Draw(rt, "n")
		keys := rapid.IntRange(1, 5).Draw(rt, "keys")
		bound := rapid.Int64Range(0, 2000).Draw(rt, "bound")
		size := rapid.Int64Range(1, 40).Draw(rt, "size") * 100
		slide := rapid.Int64Range(1, 40).Draw(rt, "slide") * 100
		gap := rapid.Int64Range(1, 20).Draw(rt, "gap") * 100
		evs := outOfOrder(seed, n, keys, 50, bound)
		as := []WindowAssigner{Tumbling(time.Duration(size) * time.Millisecond),
			Sliding(time.Duration(size)*time.Millisecond, time.Duration(slide)*time.Millisecond),
			Sessions(time.Duration(gap) * time.Millisecond), GlobalWindows()}
		a := as[rapid.IntRange(0, len(as)-1).Draw(rt, "assigner")]
		want := referenceCounts(evs, a)
		p := rapid.SampledFrom([]int{1, 4}).Draw(rt, "p")
		got := countPanes(t, evs, p, a, time.Duration(bound)*time.Millisecond)
		if !slices.Equal(got, want) {
			rt.Fatalf("%+v p=%d: %s", a, p, diffMultisets(got, want))
		}
	})
}

// TestSessionRetractionsProperty: with early firings, lateness and
// retracting accumulation, the panes net of their retractions are exactly
// the sessions of the records not sent to the late side output: merging
// sessions withdraw every pane of the windows they replace.
func TestSessionRetractionsProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		n := rapid.IntRange(1, 300).Draw(rt, "n")
		bound := rapid.Int64Range(0, 1500).Draw(rt, "bound")
		wmBound := rapid.Int64Range(0, bound).Draw(rt, "watermark bound") // lower: late records
		gap := rapid.Int64Range(1, 10).Draw(rt, "gap") * 100
		lateness := rapid.Int64Range(0, 10).Draw(rt, "lateness") * 100
		every := rapid.IntRange(1, 5).Draw(rt, "every")
		p := rapid.SampledFrom([]int{1, 4}).Draw(rt, "p")
		evs := outOfOrder(seed, n, rapid.IntRange(1, 3).Draw(rt, "keys"), 50, bound)

		pl := NewPipeline("retract", p)
		src := AssignTimestamps(Generate(pl, int64(len(evs)), func(i int64) event { return evs[i] }, WithParallelism(1)),
			eventTS, BoundedOutOfOrder(time.Duration(wmBound)*time.Millisecond), WithParallelism(1))
		w := WindowAggregate(Window(KeyBy(src, eventKey), Sessions(time.Duration(gap)*time.Millisecond),
			WithTrigger(AtWatermark().EarlyEvery(every)), AllowedLateness(time.Duration(lateness)*time.Millisecond),
			WithAccumulation(Retracting)), Count[event]())
		var out bag[Pane[string, int64]]
		out.sinkTo(w.Results())
		var late bag[event]
		late.sinkTo(w.Late())
		if err := runPipeline(t.Context(), pl); err != nil {
			rt.Fatal(err)
		}
		net := map[string]int64{}
		for _, pn := range out.items() {
			k := fmt.Sprintf("%s [%d,%d) %d", pn.Key, pn.Start, pn.End, pn.Value)
			if pn.Retraction {
				net[k]--
			} else {
				net[k]++
			}
		}
		var got []string
		for k, c := range net {
			if c < 0 || c > 1 {
				rt.Fatalf("pane %s is net %d times", k, c)
			}
			if c == 1 {
				got = append(got, k)
			}
		}
		dropped := map[event]int{}
		for _, e := range late.items() {
			dropped[e]++
		}
		var kept []event
		for _, e := range evs {
			if dropped[e] > 0 {
				dropped[e]--
				continue
			}
			kept = append(kept, e)
		}
		var want []string
		if len(kept) > 0 {
			for _, s := range referenceSessionCounts(kept, gap) {
				want = append(want, s)
			}
		}
		if d := diffMultisets(got, want); d != "" {
			rt.Fatalf("net panes: %s", d)
		}
	})
}

func referenceSessionCounts(evs []event, gap int64) []string {
	var out []string
	for _, p := range referenceSessions(evs, gap) {
		n := 0
		for _, e := range evs {
			if e.Key == p.key && p.w.Start <= e.TS && e.TS < p.w.End {
				n++
			}
		}
		out = append(out, fmt.Sprintf("%s [%d,%d) %d", p.key, p.w.Start, p.w.End, n))
	}
	return out
}

// FuzzDecodeLateRecord: the late-record decoder never panics and reads
// back what Append wrote.
func FuzzDecodeLateRecord(f *testing.F) {
	c := lateRecordCodec[string]{StringCodec{}}
	f.Add(c.Append(nil, LateRecord[string]{Value: "b17", Timestamp: 5, Window: TimeWindow{-10, 60}, Watermark: 99}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := c.Decode(b)
		if err != nil {
			return
		}
		if again, err := c.Decode(c.Append(nil, l)); err != nil || again != l {
			t.Fatalf("round trip: %+v -> %+v (%v)", l, again, err)
		}
	})
}

// timesAgg lists its records' times: its Merge does not commute.
var timesAgg = AggregateFunc[event, []int64, []int64]{
	Init:   func() []int64 { return nil },
	Add:    func(a []int64, e event) []int64 { return append(a, e.TS) },
	Result: func(a []int64) []int64 { return a },
	Merge:  func(a, b []int64) []int64 { return append(slices.Clip(a), b...) },
}

// A sliding window merges its panes in their order, oldest first, so an
// aggregate whose Merge is not commutative (here: appending the records'
// times) sees the window's records as they came, with or without the
// combiner.
func TestSlidingPanesMergeInOrder(t *testing.T) {
	for _, opts := range [][]WindowOption{nil, {NoCombiner()}} {
		p := NewPipeline("order", 1)
		src := AssignTimestamps(Generate(p, 3000, func(i int64) event { return event{Key: fmt.Sprint(i % 3), TS: i * 7} }), eventTS, BoundedOutOfOrder(0))
		w := WindowAggregate(Window(KeyBy(src, eventKey), Sliding(time.Second, 200*time.Millisecond), opts...), timesAgg)
		panes := collect(t, p, w.Results())
		if len(panes) < 100 {
			t.Fatalf("%d panes", len(panes))
		}
		for _, pn := range panes {
			var want []int64
			for i := range int64(3000) {
				if ts := i * 7; fmt.Sprint(i%3) == pn.Key && pn.Start <= ts && ts < pn.End {
					want = append(want, ts)
				}
			}
			if !slices.Equal(pn.Value, want) {
				t.Fatalf("%s [%d, %d): %v, want %v", pn.Key, pn.Start, pn.End, pn.Value, want)
			}
		}
	}
}

// The same with the watermark advancing as the records come, so that
// windows fire and drop their oldest panes while newer ones are added: a
// key's cells are then not in time order (a dropped cell's place goes to
// the last one), and a firing that merges them in one pass must order them.
func TestSlidingPanesMergeInOrderAsTheyAreDropped(t *testing.T) {
	p := NewPipeline("order", 1)
	src := WithTimestamps(NewSource(p, "script", func(TaskInfo) (SourceReader[event], error) {
		return nil, fmt.Errorf("not run")
	}), eventTS)
	w := WindowAggregate(Window(KeyBy(src, eventKey), Sliding(time.Second, 200*time.Millisecond), NoCombiner()), timesAgg)
	var panes []Pane[string, []int64]
	env := runtime.NewEnv(runtime.EnvOptions{JobID: "order", Attempt: 1, Parallelism: 1, MaxParallelism: 128,
		UID: w.results.n.UID, State: state.NewMemory(), Logger: testLogger(), Clock: time.Now, Sides: []any{func(event) {}}})
	run, err := w.results.n.NewOp(env, func(pn Pane[string, []int64]) { panes = append(panes, pn) })
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range int64(n) {
		run.In.(func(event))(event{Key: "a", TS: i * 21})
		run.Watermark(i*21 - 100)
	}
	run.Watermark(MaxWatermark)
	if len(panes) < 100 {
		t.Fatalf("%d panes", len(panes))
	}
	for _, pn := range panes {
		var want []int64
		for i := range int64(n) {
			if ts := i * 21; pn.Start <= ts && ts < pn.End {
				want = append(want, ts)
			}
		}
		if !slices.Equal(pn.Value, want) {
			t.Fatalf("[%d, %d): %v, want %v", pn.Start, pn.End, pn.Value, want)
		}
	}
}
