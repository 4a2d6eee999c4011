package sdk

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// An event-time TTL counts the operator's watermark from the event time of
// the record that wrote the value (or the watermark, outside a record).
func TestEventTimeTTL(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			wm := int64(math.MinInt64)
			s.watermark = func() int64 { return wm }
			v := NewValueState[string](s, "v", WithEventTimeTTL(time.Second))
			l := NewListState[int](s, "l", WithEventTimeTTL(time.Second))
			on(s, "k")
			s.recordTS, s.inRecord = 10_000, true
			v.Set("x")
			l.Add(1)
			s.recordTS = 10_500
			l.Add(2)
			s.inRecord = false
			for _, step := range []struct {
				wm   int64
				v    bool
				list []int
			}{
				{math.MinInt64, true, []int{1, 2}},
				{10_999, true, []int{1, 2}},
				{11_000, false, []int{2}},
				{11_499, false, []int{2}},
				{11_500, false, nil},
			} {
				wm = step.wm
				if _, ok, err := v.Get(); ok != step.v || err != nil {
					t.Errorf("watermark %d: value live %v (%v), want %v", wm, ok, err, step.v)
				}
				if got, err := l.Get(); !slices.Equal(got, step.list) || err != nil {
					t.Errorf("watermark %d: list %v (%v), want %v", wm, got, err, step.list)
				}
			}
			// Outside a record the write time is the watermark.
			wm = 20_000
			v.Set("y")
			wm = 20_999
			if _, ok, _ := v.Get(); !ok {
				t.Error("a value written at watermark 20000 expired before 21000")
			}
			wm = 21_000
			if _, ok, _ := v.Get(); ok {
				t.Error("a value written at watermark 20000 is live at 21000")
			}
		})
	}
}

// login is a backfilled event: a user logging in at TS (unix ms).
type login struct {
	User string
	TS   int64
}

// logins returns n logins in event-time order: the clock advances 0-20
// minutes per login, the user is one of users.
func logins(seed uint64, n, users int) []login {
	r := rand.New(rand.NewPCG(seed, 7))
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	out := make([]login, n)
	for i := range out {
		ts += r.Int64N(20 * 60_000)
		out[i] = login{User: fmt.Sprintf("u%d", r.IntN(users)), TS: ts}
	}
	return out
}

// sessionStarts is a backfill job: a login starts a session unless the
// user's previous login is less than an hour old, "seen" holding it under
// the TTL ttl gives. The logins are replayed one per poll, the watermark
// just below the last one's time (killingSource, killed at killAt); starts
// go to an exactly-once sink.
func sessionStarts(ls []login, req chan<- runtime.CheckpointRequest, killAt []int, ttl StateOption, out *commitLog[string]) func(p *Pipeline) {
	return func(p *Pipeline) {
		p.SetMaxParallelism(16)
		loginTS := func(l login) int64 { return l.TS }
		src := WithTimestamps(killingSourceOf(p, ls, loginTS, req, killAt), loginTS)
		starts := KeyedProcess(KeyBy(src, func(l login) string { return l.User }),
			func(s *StateStore) (func(string, login, func(string)) error, error) {
				seen := NewValueState[int64](s, "seen", ttl)
				return func(user string, l login, emit func(string)) error {
					if _, ok, err := seen.Get(); err != nil {
						return err
					} else if !ok {
						emit(fmt.Sprintf("%s %d", user, l.TS))
					}
					return seen.Set(l.TS)
				}, nil
			}, WithUID("sessions"))
		commitSink(starts, out, WithUID("out"))
	}
}

// sessionModel is the reference: a login starts a session when the user's
// previous one is an hour old by the watermark the operator has then (just
// below the time of the login before it).
func sessionModel(ls []login) []string {
	last := map[string]int64{}
	var out []string
	for i, l := range ls {
		wm := int64(math.MinInt64)
		if i > 0 {
			wm = ls[i-1].TS - 1
		}
		if p, ok := last[l.User]; !ok || wm >= p+time.Hour.Milliseconds() {
			out = append(out, fmt.Sprintf("%s %d", l.User, l.TS))
		}
		last[l.User] = l.TS
	}
	slices.Sort(out)
	return out
}

// A backfill of a month of logins, replayed in a fraction of a second:
// with WithEventTimeTTL the sessions are the model's, the same through
// kills and restores (the operator's watermark is restored with the
// state); with WithTTL (wall clock) nothing expires during the replay and
// every session after a user's first is lost.
func TestEventTimeTTLBackfill(t *testing.T) {
	ls := logins(3, 1200, 12)
	want := sessionModel(ls)
	if len(want) < 100 || len(want) > len(ls)-100 {
		t.Fatalf("the model starts %d sessions for %d logins: not a useful case", len(want), len(ls))
	}

	var wall commitLog[string]
	req := make(chan runtime.CheckpointRequest, 64)
	runKilled(t, req, sessionStarts(ls, req, nil, WithTTL(time.Hour), &wall))
	if got := wall.all(); len(got) != 12 {
		t.Errorf("with a wall-clock TTL the backfill started %d sessions, want one per user (12): the test no longer shows the problem", len(got))
	}

	var event commitLog[string]
	req = make(chan runtime.CheckpointRequest, 64)
	if killed := runKilled(t, req, sessionStarts(ls, req, []int{300, 700, 1000}, WithEventTimeTTL(time.Hour), &event)); killed != 3 {
		t.Fatalf("killed %d times, want 3", killed)
	}
	got := event.all()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("with an event-time TTL, after 3 kills: %d sessions, want %d; %s", len(got), len(want), firstDiffStrings(got, want))
	}
}

func firstDiffStrings(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at %d: %q, want %q", i, got[i], want[i])
		}
	}
	return "one is a prefix of the other"
}
