package sdk

// The reference model of the window semantics in
// /work/notes/window-semantics.md (the spec), for the property tests in
// window_property_test.go. It is written from the spec alone and shares no
// logic with window.go, trigger.go or timer.go: per key it keeps a plain
// list of live windows, each with the values it holds, and replays every
// rule of the spec by brute force (no panes, namespaces or timers).

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// mrec is a test record: a key, an event time, a value (summed by the
// aggregate, so panes show what they hold) and a unique id.
type mrec struct {
	Key string
	TS  int64
	V   int64
	ID  int
}

func (r mrec) String() string { return fmt.Sprintf("%s@%d v=%d #%d", r.Key, r.TS, r.V, r.ID) }

// mAgg is the aggregate of the model tests: count and sum of the values.
type mAgg struct{ N, S int64 }

func mAggFunc() AggregateFunc[mrec, mAgg, mAgg] {
	return AggregateFunc[mrec, mAgg, mAgg]{
		Init:   func() mAgg { return mAgg{} },
		Add:    func(a mAgg, r mrec) mAgg { return mAgg{a.N + 1, a.S + r.V} },
		Result: func(a mAgg) mAgg { return a },
		Merge:  func(a, b mAgg) mAgg { return mAgg{a.N + b.N, a.S + b.S} },
	}
}

// mPane is a pane as the model emits it; operator panes convert to it.
type mPane struct {
	Key        string
	Start, End int64
	Timing     Timing
	Index      int64
	Retraction bool
	N, S       int64
}

func paneOf(p Pane[string, mAgg]) mPane {
	return mPane{Key: p.Key, Start: p.Start, End: p.End, Timing: p.Timing, Index: p.Index,
		Retraction: p.Retraction, N: p.Value.N, S: p.Value.S}
}

func fmtTime(t int64) string {
	switch t {
	case math.MinInt64:
		return "-inf"
	case math.MaxInt64:
		return "+inf"
	}
	return fmt.Sprint(t)
}

func (p mPane) String() string {
	r := ""
	if p.Retraction {
		r = "RETRACT "
	}
	return fmt.Sprintf("%s%s [%s,%s) %v #%d count=%d sum=%d", r, p.Key, fmtTime(p.Start), fmtTime(p.End), p.Timing, p.Index, p.N, p.S)
}

// mKind is the model's window assigner kind.
type mKind uint8

const (
	mTumbling mKind = iota
	mSliding        // any size and slide, slide > size included
	mSessions
	mGlobal
)

// mSpec is a window configuration, in the model's terms.
type mSpec struct {
	kind             mKind
	size, slide, gap int64 // ms
	lateness         int64 // ms
	earlyEvery       int64 // 0: none
	earlyAfter       int64 // ms; 0: none
	mode             Accumulation
	// noCombiner: the operator runs with NoCombiner (the model has none).
	noCombiner bool
}

func (s mSpec) String() string {
	var b strings.Builder
	switch s.kind {
	case mTumbling:
		fmt.Fprintf(&b, "Tumbling(%dms)", s.size)
	case mSliding:
		fmt.Fprintf(&b, "Sliding(%dms, %dms)", s.size, s.slide)
	case mSessions:
		fmt.Fprintf(&b, "Sessions(%dms)", s.gap)
	case mGlobal:
		b.WriteString("GlobalWindows()")
	}
	b.WriteString(" trigger=AtWatermark()")
	if s.earlyEvery > 0 {
		fmt.Fprintf(&b, ".EarlyEvery(%d)", s.earlyEvery)
	}
	if s.earlyAfter > 0 {
		fmt.Fprintf(&b, ".EarlyAfter(%dms)", s.earlyAfter)
	}
	fmt.Fprintf(&b, " lateness=%dms mode=%s", s.lateness, [...]string{"Accumulating", "Discarding", "Retracting"}[s.mode])
	if s.noCombiner {
		b.WriteString(" NoCombiner()")
	}
	return b.String()
}

// api is the configuration in the SDK's terms, for the operator under test.
func (s mSpec) api() (WindowAssigner, []WindowOption) {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	var a WindowAssigner
	switch s.kind {
	case mTumbling:
		a = Tumbling(ms(s.size))
	case mSliding:
		a = Sliding(ms(s.size), ms(s.slide))
	case mSessions:
		a = Sessions(ms(s.gap))
	case mGlobal:
		a = GlobalWindows()
	}
	tr := AtWatermark()
	if s.earlyEvery > 0 {
		tr = tr.EarlyEvery(int(s.earlyEvery))
	}
	if s.earlyAfter > 0 {
		tr = tr.EarlyAfter(ms(s.earlyAfter))
	}
	opts := []WindowOption{WithTrigger(tr), AllowedLateness(ms(s.lateness)), WithAccumulation(s.mode)}
	if s.noCombiner {
		opts = append(opts, NoCombiner())
	}
	return a, opts
}

// mWin is one live window of a key.
type mWin struct {
	start, end int64
	// vals: everything the window received (accumulating, retracting) or
	// what came since its previous pane (discarding).
	vals []int64
	// onTimeDue: the watermark has not passed maxTs since the window came
	// to have its present extent, so it fires ON_TIME when it does.
	onTimeDue   bool
	count       int64 // records since the last firing
	deadline    int64 // pending EarlyAfter deadline, when hasDeadline
	hasDeadline bool
	panes       int64  // panes emitted: the next pane's Index
	last        *mPane // the last pane emitted, not retracted yet
	// retract: last panes of sessions merged into this one, to withdraw
	// right before this window's next pane.
	retract []mPane
}

func (w *mWin) maxTs() int64 { return w.end - 1 }

// mOut is an emitted pane or late record, with the script step that caused
// it.
type mOut struct {
	step int
	pane mPane
}

type mLate struct {
	step int
	rec  mrec
}

// model is the reference implementation of the window operator.
type model struct {
	spec mSpec
	wm   int64 // math.MinInt64: none yet
	now  int64 // processing time
	keys map[string][]*mWin
	step int // the script step being applied (tags the output)
	out  []mOut
	late []mLate
}

func newModel(spec mSpec) *model {
	return &model{spec: spec, wm: math.MinInt64, keys: map[string][]*mWin{}}
}

// cleanupTime is maxTs + lateness, capped at MaxWatermark.
func (m *model) cleanupTime(end int64) int64 {
	maxTs := end - 1
	if maxTs > MaxWatermark-m.spec.lateness { // lateness >= 0: no overflow
		return MaxWatermark
	}
	return maxTs + m.spec.lateness
}

// floorDiv is a/b rounded towards minus infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// windowsOf lists the [start, end) of every window of a paned assigner that
// contains ts, newest (largest start) first.
func (m *model) windowsOf(ts int64) [][2]int64 {
	s := m.spec
	switch s.kind {
	case mGlobal:
		return [][2]int64{{math.MinInt64, math.MaxInt64}}
	case mTumbling:
		start := floorDiv(ts, s.size) * s.size
		return [][2]int64{{start, start + s.size}}
	}
	var out [][2]int64
	for k := floorDiv(ts, s.slide); k*s.slide+s.size > ts; k-- {
		out = append(out, [2]int64{k * s.slide, k*s.slide + s.size})
	}
	return out
}

func (m *model) find(key string, start, end int64) *mWin {
	for _, w := range m.keys[key] {
		if w.start == start && w.end == end {
			return w
		}
	}
	return nil
}

// record applies a record arriving under the current watermark and
// processing time.
func (m *model) record(r mrec) {
	if m.spec.kind == mSessions {
		m.sessionRecord(r)
		return
	}
	ws := m.windowsOf(r.TS)
	if len(ws) == 0 {
		return // between hopping windows: dropped silently
	}
	if m.cleanupTime(ws[0][1]) <= m.wm {
		m.late = append(m.late, mLate{m.step, r})
		return
	}
	for _, se := range ws {
		if m.cleanupTime(se[1]) <= m.wm {
			continue // expired: skipped
		}
		w := m.find(r.Key, se[0], se[1])
		if w == nil {
			w = &mWin{start: se[0], end: se[1]}
			w.onTimeDue = w.maxTs() > m.wm
			m.keys[r.Key] = append(m.keys[r.Key], w)
		}
		w.vals = append(w.vals, r.V)
		m.trigger(r.Key, w)
	}
}

func (m *model) sessionRecord(r mrec) {
	start, end := r.TS, r.TS+m.spec.gap
	// The live sessions the proto-window overlaps, transitively.
	var merged []*mWin
	for changed := true; changed; {
		changed = false
		for _, w := range m.keys[r.Key] {
			if slices.Contains(merged, w) || !(w.start < end && start < w.end) {
				continue
			}
			merged = append(merged, w)
			start, end = min(start, w.start), max(end, w.end)
			changed = true
		}
	}
	if m.cleanupTime(end) <= m.wm {
		m.late = append(m.late, mLate{m.step, r})
		return
	}
	if len(merged) == 1 && merged[0].start == start && merged[0].end == end {
		w := merged[0] // inside one session, which does not grow
		w.vals = append(w.vals, r.V)
		m.trigger(r.Key, w)
		return
	}
	w := &mWin{start: start, end: end}
	w.onTimeDue = w.maxTs() > m.wm
	for _, s := range merged {
		w.vals = append(w.vals, s.vals...)
		w.count += s.count
		if s.hasDeadline && (!w.hasDeadline || s.deadline < w.deadline) {
			w.deadline, w.hasDeadline = s.deadline, true
		}
		w.panes = max(w.panes, s.panes)
		w.retract = append(w.retract, s.retract...)
		if s.last != nil {
			w.retract = append(w.retract, *s.last)
		}
	}
	w.vals = append(w.vals, r.V)
	keep := m.keys[r.Key][:0]
	for _, s := range m.keys[r.Key] {
		if !slices.Contains(merged, s) {
			keep = append(keep, s)
		}
	}
	m.keys[r.Key] = append(keep, w)
	m.trigger(r.Key, w)
}

// trigger runs the trigger for a record added to w.
func (m *model) trigger(key string, w *mWin) {
	if m.wm >= w.maxTs() {
		m.fire(key, w, Late)
		return
	}
	w.count++
	switch {
	case m.spec.earlyEvery > 0 && w.count >= m.spec.earlyEvery:
		m.fire(key, w, Early)
	case m.spec.earlyAfter > 0 && !w.hasDeadline:
		w.deadline, w.hasDeadline = m.now+m.spec.earlyAfter, true
	}
}

// fire is a firing of w: a pane, unless discarding with nothing new.
func (m *model) fire(key string, w *mWin, timing Timing) {
	w.count, w.hasDeadline = 0, false
	if m.spec.mode == Discarding && len(w.vals) == 0 {
		return
	}
	p := mPane{Key: key, Start: w.start, End: w.end, Timing: timing, Index: w.panes}
	for _, v := range w.vals {
		p.N++
		p.S += v
	}
	if m.spec.mode == Retracting {
		old := w.retract
		if w.last != nil {
			old = append(old, *w.last)
		}
		for _, o := range old {
			o.Retraction = true
			m.out = append(m.out, mOut{m.step, o})
		}
		w.retract = nil
	}
	m.out = append(m.out, mOut{m.step, p})
	w.panes++
	w.last = &p
	if m.spec.mode == Discarding {
		w.vals = nil
	}
}

// watermark advances the watermark to wm (an older one changes nothing).
func (m *model) watermark(wm int64) {
	if wm <= m.wm {
		return
	}
	m.wm = wm
	for _, key := range slices.Sorted(maps.Keys(m.keys)) {
		ws := slices.Clone(m.keys[key])
		slices.SortFunc(ws, func(a, b *mWin) int { return cmpInt(a.maxTs(), b.maxTs()) })
		for _, w := range ws {
			if w.onTimeDue && w.maxTs() <= wm {
				w.onTimeDue = false
				m.fire(key, w, OnTime)
			}
		}
		keep := m.keys[key][:0]
		for _, w := range m.keys[key] {
			if m.cleanupTime(w.end) > wm {
				keep = append(keep, w)
			}
		}
		if len(keep) == 0 {
			delete(m.keys, key)
		} else {
			m.keys[key] = keep
		}
	}
}

// procTime advances the processing time to now.
func (m *model) procTime(now int64) {
	m.now = max(m.now, now)
	for _, key := range slices.Sorted(maps.Keys(m.keys)) {
		for _, w := range m.keys[key] {
			if !w.hasDeadline || w.deadline > m.now {
				continue
			}
			w.hasDeadline = false
			if m.wm < w.maxTs() && w.count > 0 {
				m.fire(key, w, Early)
			}
		}
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
