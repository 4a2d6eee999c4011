package sdk

import (
	"errors"
	"fmt"
	"time"

	"github.com/weir-run/weir/internal/uvarintframe"
)

// Timing says when a window's pane was emitted relative to the watermark.
type Timing uint8

const (
	// Early panes come before the watermark passed the window's end.
	Early Timing = iota + 1
	// OnTime is the pane emitted when the watermark passed the window's end.
	OnTime
	// Late panes refine the window with records that came after that,
	// within the allowed lateness.
	Late
)

func (t Timing) String() string {
	switch t {
	case Early:
		return "EARLY"
	case OnTime:
		return "ON_TIME"
	case Late:
		return "LATE"
	}
	return fmt.Sprintf("Timing(%d)", uint8(t))
}

// MarshalText makes panes encode their timing by name.
func (t Timing) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (t *Timing) UnmarshalText(b []byte) error {
	for _, c := range []Timing{Early, OnTime, Late} {
		if string(b) == c.String() {
			*t = c
			return nil
		}
	}
	return fmt.Errorf("%w: timing %q", ErrDecode, b)
}

// Trigger says when a window emits panes (the Beam model's When). Every
// trigger fires on time, when the watermark passes the end of the window,
// and once per late record within the allowed lateness; early firings are
// added with EarlyEvery and EarlyAfter. For the global window, which never
// ends before the input does, early firings are the custom trigger.
type Trigger struct {
	earlyCount int64
	earlyAfter time.Duration
}

// AtWatermark is the default trigger: on time, then on every late record.
func AtWatermark() Trigger { return Trigger{} }

// EarlyEvery adds an early firing after every n records of the window.
func (t Trigger) EarlyEvery(n int) Trigger {
	t.earlyCount = int64(n)
	return t
}

// EarlyAfter adds an early firing d of processing time after the first
// record since the window's last firing.
func (t Trigger) EarlyAfter(d time.Duration) Trigger {
	t.earlyAfter = d
	return t
}

// Accumulation says how a window's successive panes relate (the Beam
// model's How).
type Accumulation uint8

const (
	// Accumulating panes each hold everything the window received so far.
	Accumulating Accumulation = iota
	// Discarding panes each hold only what came since the previous pane.
	Discarding
	// Retracting panes are accumulating, and each is preceded by the
	// retraction of the previous pane (Retraction set), so a downstream sum
	// stays correct.
	Retracting
)

// trigState is the trigger's state for one window of one key, kept in
// keyed state between events.
type trigState struct {
	count  int64 // records since the last firing
	fires  int64 // panes emitted so far (the window operator counts them)
	procAt int64 // pending early firing in processing time (unix ms); 0 none
	// prev holds the encoded results to retract before the window's next
	// pane: its own last pane's, and those of the sessions merged into it.
	prev [][]byte
}

// firing resets what counts towards the next firing: every firing, of any
// timing, starts a new pane, so the records and the processing-time
// deadline of the one just fired no longer count (Beam's
// AfterProcessingTime.pastFirstElementInPane re-arms from the first record
// after a firing).
func (s *trigState) firing() {
	s.count = 0
	s.procAt = 0
}

func (s trigState) encode(dst []byte) []byte {
	dst = uvarintframe.AppendVarint(dst, s.count)
	dst = uvarintframe.AppendVarint(dst, s.fires)
	dst = uvarintframe.AppendVarint(dst, s.procAt)
	return uvarintframe.AppendFrames(dst, s.prev...)
}

var errCorruptTrigger = errors.New("sdk: corrupt window trigger state")

func decodeTrigState(b []byte) (trigState, error) {
	var s trigState
	var v [3]int64
	r := uvarintframe.NewReader(b)
	r.Varints(v[:])
	s.count, s.fires, s.procAt = v[0], v[1], v[2]
	for r.Len() > 0 {
		s.prev = append(s.prev, append([]byte(nil), r.Frame()...))
	}
	if err := r.Err(); err != nil {
		return trigState{}, fmt.Errorf("%w: %w", errCorruptTrigger, err)
	}
	return s, nil
}

// triggerSpec is a window operator's trigger, lateness and accumulation.
// Its methods are the trigger's pure state machine: they take an event of
// one window (a record, the watermark reaching a timer, the processing-time
// clock), update the window's trigState and say what to do. The window
// operator does the state I/O and emits.
type triggerSpec struct {
	Trigger
	lateness int64 // ms
	mode     Accumulation
	// noCombiner: WindowAggregate adds no combiner (NoCombiner).
	noCombiner bool
}

// action is what a trigger event asks of the window operator.
type action struct {
	fire   bool   // emit a pane with timing
	timing Timing // of the pane
	// procAt > 0: set a processing-time timer then, for an early firing.
	procAt int64
	// cleanupSet: set an event-time timer at cleanupAt, to drop the window
	// (any time, the epoch and before included).
	cleanupSet bool
	cleanupAt  int64
	// cleanup: drop the window's contents and trigger state (after the
	// firing, if any).
	cleanup bool
}

// stateful reports whether windows need a trigState at all; without one
// (the default trigger, accumulating or discarding, no lateness) a window
// fires once, on time, and is dropped.
func (t triggerSpec) stateful() bool {
	return t.earlyCount > 0 || t.earlyAfter > 0 || t.lateness > 0 || t.mode == Retracting
}

// cleanupTime is when window w's state is dropped and later records for it
// go to the late side output.
func (t triggerSpec) cleanupTime(w TimeWindow) int64 {
	end := w.maxTimestamp()
	if end > MaxWatermark-t.lateness {
		return MaxWatermark
	}
	return end + t.lateness
}

// record: a record for w arrived at processing time now, under watermark
// wm (the caller has dropped records past the window's cleanup time).
func (t triggerSpec) record(st *trigState, w TimeWindow, wm, now int64) action {
	if wm >= w.maxTimestamp() {
		st.firing()
		return action{fire: true, timing: Late}
	}
	st.count++
	if t.earlyCount > 0 && st.count >= t.earlyCount {
		st.firing()
		return action{fire: true, timing: Early}
	}
	if t.earlyAfter > 0 && st.procAt == 0 {
		st.procAt = now + t.earlyAfter.Milliseconds()
		return action{procAt: st.procAt}
	}
	return action{}
}

// eventTime: the watermark reached timer ts of w.
func (t triggerSpec) eventTime(st *trigState, w TimeWindow, ts int64) action {
	switch {
	case ts == w.maxTimestamp():
		st.firing()
		a := action{fire: true, timing: OnTime}
		if c := t.cleanupTime(w); c > ts {
			a.cleanupSet, a.cleanupAt = true, c
		} else {
			a.cleanup = true
		}
		return a
	case ts == t.cleanupTime(w):
		return action{cleanup: true}
	}
	return action{}
}

// procTime: the processing-time clock reached now for w, under watermark wm.
func (t triggerSpec) procTime(st *trigState, w TimeWindow, now, wm int64) action {
	if st.procAt == 0 || now < st.procAt || wm >= w.maxTimestamp() {
		return action{}
	}
	if st.count == 0 {
		st.procAt = 0
		return action{}
	}
	st.firing()
	return action{fire: true, timing: Early}
}

// merge folds the state of a session merged away into st: its records
// since its last firing count, its pending deadline stands if earlier, and
// its last pane is retracted before the merged session's next one.
func (s *trigState) merge(o trigState) {
	s.count += o.count
	s.fires = max(s.fires, o.fires)
	if o.procAt != 0 && (s.procAt == 0 || o.procAt < s.procAt) {
		s.procAt = o.procAt
	}
	s.prev = append(s.prev, o.prev...)
}
