package sdk

// Focused cases of the window semantics (/work/notes/window-semantics.md),
// each a short script with the panes the spec asks for written out by
// hand. Every case runs through the window operator and, as a check of the
// model itself, through the reference model of windowmodel_test.go.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func rec(key string, ts, v int64) scriptEv {
	return scriptEv{kind: evRecord, rec: mrec{Key: key, TS: ts, V: v}}
}
func wmark(t int64) scriptEv    { return scriptEv{kind: evWatermark, t: t} }
func procAt(t int64) scriptEv   { return scriptEv{kind: evProcTime, t: t} }
func checkpointEv() scriptEv    { return scriptEv{kind: evCheckpoint} }
func restoreAt(p int) scriptEv  { return scriptEv{kind: evRestore, p: p} }
func endOfInput() scriptEv      { return scriptEv{kind: evEnd} }
func fmtOut(o mOut) string      { return fmt.Sprintf("step %d: %v", o.step, o.pane) }
func fmtLateOut(l mLate) string { return fmt.Sprintf("step %d: late %v", l.step, l.rec) }

// expectScript runs s through the operator and the model and checks that
// both emit exactly want: "step N: <pane>" lines (see mPane.String) and
// "step N: late <record>" lines, in order per key.
func expectScript(t *testing.T, s script, want ...string) {
	t.Helper()
	for i := range s.evs {
		s.evs[i].rec.ID = i
	}
	lines := func(out []mOut, late []mLate) []string {
		var ls []string
		keyed := byKey(out, func(o mOut) string { return o.pane.Key })
		for _, k := range slices.Sorted(maps.Keys(keyed)) {
			for _, o := range canonical(keyed[k]) {
				ls = append(ls, fmtOut(o))
			}
		}
		for _, l := range late {
			ls = append(ls, fmtLateOut(l))
		}
		// Per key the order is kept: sort stably by step only.
		slices.SortStableFunc(ls, func(a, b string) int {
			var x, y int
			fmt.Sscanf(a, "step %d:", &x)
			fmt.Sscanf(b, "step %d:", &y)
			return x - y
		})
		return ls
	}
	show := func(ls []string) string { return "\n\t" + strings.Join(ls, "\n\t") }
	m := runModel(s)
	if got := lines(m.out, m.late); !slices.Equal(got, want) {
		t.Errorf("the reference model disagrees with the spec's expected output (a bug in the model)\nscript:\n%vmodel:%s\nwant:%s", s, show(got), show(want))
	}
	d := newOpDriver(s, t.Fatalf)
	d.run()
	if got := lines(d.out, d.late); !slices.Equal(got, want) {
		t.Errorf("the window operator does not emit what the spec asks for\nscript:\n%vgot:%s\nwant:%s", s, show(got), show(want))
	}
}

const (
	hour = 3_600_000
	now0 = 1_000_000 // the fake processing-time clock at the start
)

// Bug 1: a session that fired on time and is grown by a record within the
// allowed lateness into a window ending after the watermark fires ON_TIME
// when the watermark passes its new end, right after the retraction of the
// pane it replaces.
func TestWindowSessionGrownAfterOnTime(t *testing.T) {
	spec := mSpec{kind: mSessions, gap: 10_000, lateness: hour, mode: Retracting}
	t.Run("ends after the watermark", func(t *testing.T) {
		expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
			rec("a", 1000, 1),
			wmark(11_000),
			rec("a", 9000, 1), // [1000,19000): ends after the watermark
			wmark(18_998),
			wmark(18_999),
			wmark(30_000),
			endOfInput(),
		}},
			"step 1: a [1000,11000) ON_TIME #0 count=1 sum=1",
			"step 4: RETRACT a [1000,11000) ON_TIME #0 count=1 sum=1",
			"step 4: a [1000,19000) ON_TIME #1 count=2 sum=2",
		)
	})
	t.Run("ends before the watermark", func(t *testing.T) {
		// The control: the grown session's end is behind the watermark
		// already, so it fires LATE at once (and not ON_TIME later).
		expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
			rec("a", 1000, 1),
			wmark(11_000),
			wmark(20_000),
			rec("a", 9000, 1),
			wmark(30_000),
			endOfInput(),
		}},
			"step 1: a [1000,11000) ON_TIME #0 count=1 sum=1",
			"step 3: RETRACT a [1000,11000) ON_TIME #0 count=1 sum=1",
			"step 3: a [1000,19000) LATE #1 count=2 sum=2",
		)
	})
}

// Bug 2: every firing clears a pending EarlyAfter deadline, so the next
// record starts a new one.
func TestWindowEarlyAfterRearms(t *testing.T) {
	t.Run("after an on-time firing", func(t *testing.T) {
		// A session fires on time with a deadline pending; a late record
		// grows it past the watermark and must arm a new deadline.
		spec := mSpec{kind: mSessions, gap: 10_000, lateness: hour, earlyAfter: 5000, mode: Accumulating}
		expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
			rec("a", 1000, 1), // deadline now0+5000
			wmark(11_000),     // ON_TIME clears it
			procAt(now0 + 5000),
			procAt(now0 + 6000),
			rec("a", 9000, 1), // [1000,19000): deadline now0+11000
			procAt(now0 + 10_999),
			procAt(now0 + 11_000),
			wmark(18_999),
			endOfInput(),
		}},
			"step 1: a [1000,11000) ON_TIME #0 count=1 sum=1",
			"step 6: a [1000,19000) EARLY #1 count=2 sum=2",
			"step 7: a [1000,19000) ON_TIME #2 count=2 sum=2",
		)
	})
	t.Run("after an early count firing", func(t *testing.T) {
		spec := mSpec{kind: mTumbling, size: 10_000, slide: 10_000, earlyEvery: 2, earlyAfter: 5000, mode: Accumulating}
		expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
			rec("a", 1000, 1), // deadline now0+5000
			procAt(now0 + 1000),
			rec("a", 1001, 1), // the second record fires EARLY and clears it
			rec("a", 1002, 1), // deadline now0+6000
			procAt(now0 + 5000),
			procAt(now0 + 6000),
			endOfInput(),
		}},
			"step 2: a [0,10000) EARLY #0 count=2 sum=2",
			"step 5: a [0,10000) EARLY #1 count=3 sum=3",
			"step 6: a [0,10000) ON_TIME #2 count=3 sum=3",
		)
	})
}

// Bug 3: a rescaled window subtask keeps the watermark of the subtasks it
// took over, so records too late before the rescale are too late after it.
func TestWindowRescaleKeepsWatermark(t *testing.T) {
	spec := mSpec{kind: mTumbling, size: 10_000, slide: 10_000, mode: Accumulating}
	evs := []scriptEv{wmark(20_000), checkpointEv(), restoreAt(4)}
	var want []string
	for _, k := range modelKeys { // one on each of the 4 new subtasks
		want = append(want, fmt.Sprintf("step %d: late %s@5000 v=1 #%d", len(evs), k, len(evs)))
		evs = append(evs, rec(k, 5000, 1))
	}
	evs = append(evs, endOfInput())
	expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: evs}, want...)
}

// Bug 5: growing a session withdraws its early pane right before the pane
// that replaces it, not when the record comes.
func TestWindowSessionRetractionDeferred(t *testing.T) {
	spec := mSpec{kind: mSessions, gap: 10_000, earlyEvery: 2, mode: Retracting}
	expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
		rec("a", 1000, 1),
		rec("a", 2000, 1),  // [1000,12000) fires EARLY
		rec("a", 11500, 1), // grows it to [1000,21500): no firing yet
		wmark(21_499),
	}},
		"step 1: a [1000,12000) EARLY #0 count=2 sum=2",
		"step 3: RETRACT a [1000,12000) EARLY #0 count=2 sum=2",
		"step 3: a [1000,21500) ON_TIME #1 count=3 sum=3",
	)
}

// A discarding window's firing with nothing new emits no pane and uses no
// pane index.
func TestWindowDiscardingEmptyFiring(t *testing.T) {
	spec := mSpec{kind: mTumbling, size: 10_000, slide: 10_000, earlyEvery: 1, lateness: 10_000, mode: Discarding}
	expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
		rec("a", 1000, 1),
		wmark(10_000), // on time, nothing new
		rec("a", 2000, 2),
		endOfInput(),
	}},
		"step 0: a [0,10000) EARLY #0 count=1 sum=1",
		"step 2: a [0,10000) LATE #1 count=1 sum=2",
	)
}

// A restore is invisible to EarlyAfter: the restored subtask fires the
// deadlines pending in its checkpoint.
func TestWindowRestoredEarlyAfter(t *testing.T) {
	spec := mSpec{kind: mTumbling, size: 10_000, slide: 10_000, earlyAfter: 1000, mode: Accumulating}
	expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
		rec("a", 1000, 1), // deadline now0+1000
		checkpointEv(),
		restoreAt(1),
		procAt(now0 + 1000),
		endOfInput(),
	}},
		"step 3: a [0,10000) EARLY #0 count=1 sum=1",
		"step 4: a [0,10000) ON_TIME #1 count=1 sum=1",
	)
}

// Merged sessions keep the earliest deadline of the sessions they merge,
// also when it was a merged-away session's.
func TestWindowMergedSessionDeadline(t *testing.T) {
	spec := mSpec{kind: mSessions, gap: 2000, earlyAfter: 5000, mode: Accumulating}
	expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
		rec("a", 10_000, 1),  // S1 [10000,12000), deadline now0+5000
		procAt(now0 + 5000),  // S1 fires EARLY
		rec("a", 13_000, 1),  // S2 [13000,15000), deadline now0+10000
		procAt(now0 + 6000),  //
		rec("a", 10_000, 1),  // S1 again: deadline now0+11000
		procAt(now0 + 7000),  //
		rec("a", 11_500, 1),  // bridges S1 and S2: deadline now0+10000
		procAt(now0 + 10000), // EARLY
		endOfInput(),
	}},
		"step 1: a [10000,12000) EARLY #0 count=1 sum=1",
		"step 7: a [10000,15000) EARLY #1 count=4 sum=4",
		"step 8: a [10000,15000) ON_TIME #2 count=4 sum=4",
	)
}

// Event times below zero are ordinary: a session whose cleanup time is
// negative is dropped when the watermark passes it.
func TestWindowNegativeTimes(t *testing.T) {
	spec := mSpec{kind: mSessions, gap: 2000, lateness: 100, mode: Accumulating}
	expectScript(t, script{spec: spec, p: 1, maxP: 128, now0: now0, evs: []scriptEv{
		rec("a", -2300, 1), // [-2300,-300): cleanup at -201
		wmark(0),
		rec("a", -1000, 1), // a new session [-1000,1000)
		endOfInput(),
	}},
		"step 1: a [-2300,-300) ON_TIME #0 count=1 sum=1",
		"step 3: a [-1000,1000) ON_TIME #0 count=1 sum=1",
	)
}
