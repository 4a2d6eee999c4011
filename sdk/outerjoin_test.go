package sdk

// The left-outer and anti interval joins against a naive model: the
// operator driven step by step (records of either side, watermarks, late
// records included), and the joins in running pipelines.

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/sdk/internal/runtime"
)

// joinStep is a step of a join script: a record of side 0 or 1, or a
// watermark (side -1).
type joinStep struct {
	side int
	ev   event
	wm   int64
}

// stepOut is an output and the step that emitted it.
type stepOut struct {
	step int
	out  string
}

func (o stepOut) String() string { return fmt.Sprintf("@%d %s", o.step, o.out) }

func unmatchedString(key string, a event) string { return fmt.Sprintf("%s %d -", key, a.TS) }

// naiveOuterJoin is the model: a record not newer than the watermark at its
// step is dropped; every pair of kept records in the bounds is emitted at
// the later one's step; a kept left record that pairs with no kept right
// record (over the whole script) is emitted alone at the first step where
// the watermark reaches ts + upper (its own step if it is there already,
// or the end: step len(steps), the final watermark).
func naiveOuterJoin(steps []joinStep, lower, upper int64, pairs bool) []string {
	type kept struct {
		step int
		ev   event
	}
	var left, right []kept
	wm := int64(math.MinInt64)
	wmAt := []int64{} // the watermark after each step
	for i, s := range steps {
		switch {
		case s.side < 0:
			wm = max(wm, s.wm)
		case s.ev.TS <= wm:
		case s.side == 0:
			left = append(left, kept{i, s.ev})
		default:
			right = append(right, kept{i, s.ev})
		}
		wmAt = append(wmAt, wm)
	}
	var out []string
	for _, x := range left {
		matched := false
		for _, y := range right {
			if x.ev.Key == y.ev.Key && x.ev.TS+lower <= y.ev.TS && y.ev.TS <= x.ev.TS+upper {
				matched = true
				if pairs {
					out = append(out, stepOut{max(x.step, y.step), pairString(x.ev.Key, x.ev, y.ev)}.String())
				}
			}
		}
		if matched {
			continue
		}
		at := len(steps)
		for i := x.step; i < len(steps); i++ {
			if wmAt[i] >= x.ev.TS+upper {
				at = i
				break
			}
		}
		out = append(out, stepOut{at, unmatchedString(x.ev.Key, x.ev)}.String())
	}
	slices.Sort(out)
	return out
}

// driveOuterJoin runs the script through one subtask of the operator and
// returns its outputs with their steps; the final watermark is step
// len(steps).
func driveOuterJoin(t interface{ Fatalf(string, ...any) }, steps []joinStep, lower, upper int64, pairs bool) []string {
	pl := NewPipeline("outer", 1)
	l := KeyBy(WithTimestamps(genSeqEvents(pl, "left"), eventTS), eventKey)
	r := KeyBy(WithTimestamps(genSeqEvents(pl, "right"), eventTS), eventKey)
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	var out Stream[string]
	if pairs {
		out = LeftOuterIntervalJoin(l, r, ms(lower), ms(upper), pairString, unmatchedString)
	} else {
		out = IntervalAntiJoin(l, r, ms(lower), ms(upper), unmatchedString)
	}
	if err := pl.Err(); err != nil {
		t.Fatalf("build: %v", err)
	}
	step := 0
	var got []string
	env := runtime.NewEnv(runtime.EnvOptions{JobID: "model", Subtask: 0, Parallelism: 1, MaxParallelism: 8,
		UID: out.n.UID, State: state.NewMemory(), Logger: testLogger()})
	run, err := out.n.NewOp(env, func(s string) { got = append(got, stepOut{step, s}.String()) })
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	for i, s := range steps {
		step = i
		switch s.side {
		case -1:
			run.Watermark(s.wm)
		case 0:
			run.In.(func(event))(s.ev)
		case 1:
			run.In2.(func(event))(s.ev)
		}
		if err := env.Err(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	step = len(steps)
	run.Watermark(math.MaxInt64)
	slices.Sort(got)
	return got
}

func genSeqEvents(p *Pipeline, uid string) Stream[event] {
	return Generate(p, 0, func(int64) event { return event{} }, WithUID(uid))
}

// TestOuterJoinOperatorProperty: random scripts of left and right records
// (some late) and watermarks; the operator emits exactly the model's pairs
// and unmatched left records, each at the model's step.
func TestOuterJoinOperatorProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		lower := rapid.Int64Range(-50, 50).Draw(rt, "lower")
		upper := lower + rapid.Int64Range(0, 60).Draw(rt, "width")
		pairs := rapid.Bool().Draw(rt, "pairs")
		var steps []joinStep
		now := int64(1000)
		for range rapid.IntRange(0, 80).Draw(rt, "steps") {
			if rapid.IntRange(0, 3).Draw(rt, "kind") == 0 {
				now += rapid.Int64Range(0, 40).Draw(rt, "advance")
				steps = append(steps, joinStep{side: -1, wm: now - rapid.Int64Range(0, 60).Draw(rt, "lag")})
				continue
			}
			ev := event{Key: rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "key"),
				TS: now + rapid.Int64Range(-80, 80).Draw(rt, "ts")}
			steps = append(steps, joinStep{side: rapid.IntRange(0, 1).Draw(rt, "side"), ev: ev})
		}
		want := naiveOuterJoin(steps, lower, upper, pairs)
		got := driveOuterJoin(rt, steps, lower, upper, pairs)
		if !slices.Equal(got, want) {
			rt.Fatalf("[%d,%d] pairs=%v: %s", lower, upper, pairs, diffMultisets(got, want))
		}
	})
}

// referenceLeftOuter is the brute-force left-outer interval join of
// inputs with no late record: every pair, and every left record alone
// that has none.
func referenceLeftOuter(left, right []event, lower, upper int64, pairs bool) []string {
	var out []string
	for _, a := range left {
		matched := false
		for _, b := range right {
			if a.Key == b.Key && a.TS+lower <= b.TS && b.TS <= a.TS+upper {
				matched = true
				if pairs {
					out = append(out, pairString(a.Key, a, b))
				}
			}
		}
		if !matched {
			out = append(out, unmatchedString(a.Key, a))
		}
	}
	return multiset(out)
}

// TestOuterJoinPipelineProperty: in running jobs at parallelism 1 and 4,
// over random out-of-order inputs within their bound, the left-outer and
// anti joins equal the brute-force reference.
func TestOuterJoinPipelineProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		keys := rapid.IntRange(1, 4).Draw(rt, "keys")
		bound := rapid.Int64Range(0, 500).Draw(rt, "bound")
		left := outOfOrder(seed, rapid.IntRange(0, 100).Draw(rt, "left"), keys, 40, bound)
		right := outOfOrder(seed+1, rapid.IntRange(0, 100).Draw(rt, "right"), keys, 40, bound)
		p := rapid.SampledFrom([]int{1, 4}).Draw(rt, "p")
		lower := rapid.Int64Range(-500, 500).Draw(rt, "lower")
		upper := lower + rapid.Int64Range(0, 500).Draw(rt, "width")
		pairs := rapid.Bool().Draw(rt, "pairs")
		ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
		pl := NewPipeline("outer", p)
		l, r := twoInputs(pl, left, right, ms(bound))
		var out Stream[string]
		if pairs {
			out = LeftOuterIntervalJoin(l, r, ms(lower), ms(upper), pairString, unmatchedString)
		} else {
			out = IntervalAntiJoin(l, r, ms(lower), ms(upper), unmatchedString)
		}
		want := referenceLeftOuter(left, right, lower, upper, pairs)
		if got := multiset(collect(t, pl, out)); !slices.Equal(got, want) {
			rt.Fatalf("[%d,%d] p=%d pairs=%v: %s", lower, upper, p, pairs, diffMultisets(got, want))
		}
	})
}

func TestOuterJoinErrors(t *testing.T) {
	pl := NewPipeline("outer", 1)
	l := KeyBy(WithTimestamps(genSeqEvents(pl, "l"), eventTS), eventKey)
	LeftOuterIntervalJoin(l, l, 0, time.Second, pairString, nil)
	if pl.Err() == nil {
		t.Error("LeftOuterIntervalJoin without noMatch was accepted")
	}
}
