package sdk

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"
)

// refinementInput is one key's stream with deterministic watermarks: the
// assigner sends one every 512 records (and maybe more at buffer flushes,
// which move it no further than the records before them allow).
//
//	500 x ts=100   window [0,1000): early panes at 200 and 400 records
//	600 x ts=3500  record 512 moves the watermark to 3499: [0,1000) on time
//	1 x ts=900     late for [0,1000) but within 3s of lateness: a LATE pane
//	435 x ts=10000 record 1536 moves it to 9999: [0,1000) is dropped
//	1 x ts=200     later than the lateness: the late side output
func refinementInput() []event {
	var evs []event
	add := func(n int, ts int64) {
		for range n {
			evs = append(evs, event{Key: "a", TS: ts})
		}
	}
	add(500, 100)
	add(600, 3500)
	add(1, 900)
	add(435, 10000)
	add(1, 200)
	return evs
}

func runRefinements(t *testing.T, mode Accumulation) (panes []string, late []event, why []LateRecord[event]) {
	evs := refinementInput()
	p := NewPipeline("refine", 1)
	src := AssignTimestamps(Generate(p, int64(len(evs)), func(i int64) event { return evs[i] }), eventTS, BoundedOutOfOrder(0))
	w := WindowAggregate(Window(KeyBy(src, eventKey), Tumbling(time.Second),
		WithTrigger(AtWatermark().EarlyEvery(200)), AllowedLateness(3*time.Second), WithAccumulation(mode)),
		Count[event]())
	var out bag[Pane[string, int64]]
	out.sinkTo(w.Results())
	var lateBag bag[event]
	lateBag.sinkTo(w.Late())
	var whyBag bag[LateRecord[event]]
	whyBag.sinkTo(w.LateRecords())
	mustRun(t, p)
	items := out.items()
	slices.SortStableFunc(items, func(a, b Pane[string, int64]) int { return cmp.Compare(a.Start, b.Start) })
	for _, pn := range items {
		r := ""
		if pn.Retraction {
			r = " retract"
		}
		panes = append(panes, fmt.Sprintf("[%d,%d) %s #%d%s %d", pn.Start, pn.End, pn.Timing, pn.Index, r, pn.Value))
	}
	return panes, lateBag.items(), whyBag.items()
}

func TestEarlyOnTimeLateFiringsAndSideOutput(t *testing.T) {
	for _, tc := range []struct {
		mode Accumulation
		want []string
	}{
		// Each window's panes in order; windows interleave in time, by
		// when the watermark happens to move, so they are compared apart.
		{Accumulating, []string{
			"[0,1000) EARLY #0 200", "[0,1000) EARLY #1 400", "[0,1000) ON_TIME #2 500", "[0,1000) LATE #3 501",
			"[3000,4000) EARLY #0 200", "[3000,4000) EARLY #1 400", "[3000,4000) EARLY #2 600", "[3000,4000) ON_TIME #3 600",
			"[10000,11000) EARLY #0 200", "[10000,11000) EARLY #1 400", "[10000,11000) ON_TIME #2 435",
		}},
		// The on-time firing of [3000,4000) finds nothing new: no pane.
		{Discarding, []string{
			"[0,1000) EARLY #0 200", "[0,1000) EARLY #1 200", "[0,1000) ON_TIME #2 100", "[0,1000) LATE #3 1",
			"[3000,4000) EARLY #0 200", "[3000,4000) EARLY #1 200", "[3000,4000) EARLY #2 200",
			"[10000,11000) EARLY #0 200", "[10000,11000) EARLY #1 200", "[10000,11000) ON_TIME #2 35",
		}},
		{Retracting, []string{
			"[0,1000) EARLY #0 200",
			"[0,1000) EARLY #0 retract 200", "[0,1000) EARLY #1 400",
			"[0,1000) EARLY #1 retract 400", "[0,1000) ON_TIME #2 500",
			"[0,1000) ON_TIME #2 retract 500", "[0,1000) LATE #3 501",
			"[3000,4000) EARLY #0 200",
			"[3000,4000) EARLY #0 retract 200", "[3000,4000) EARLY #1 400",
			"[3000,4000) EARLY #1 retract 400", "[3000,4000) EARLY #2 600",
			"[3000,4000) EARLY #2 retract 600", "[3000,4000) ON_TIME #3 600",
			"[10000,11000) EARLY #0 200",
			"[10000,11000) EARLY #0 retract 200", "[10000,11000) EARLY #1 400",
			"[10000,11000) EARLY #1 retract 400", "[10000,11000) ON_TIME #2 435",
		}},
	} {
		t.Run(fmt.Sprint(tc.mode), func(t *testing.T) {
			panes, late, why := runRefinements(t, tc.mode)
			if !slices.Equal(panes, tc.want) {
				t.Fatalf("panes:\n got %q\nwant %q", panes, tc.want)
			}
			if want := []event{{"a", 200}}; !slices.Equal(late, want) {
				t.Fatalf("late side output %v, want %v", late, want)
			}
			// Its window [0,1000) with 3s of lateness was dropped when
			// the watermark reached 3999; it came under 9999.
			want := []LateRecord[event]{{Value: event{"a", 200}, Timestamp: 200, Window: TimeWindow{0, 1000}, Watermark: 9999}}
			if !slices.Equal(why, want) {
				t.Fatalf("late records %+v, want %+v", why, want)
			}
		})
	}
}
