package sdk

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestKeyedProcessEventTimers: a per-key timer 1 s after each key's first
// record emits the key's count (kept in TTL state, which composes with
// timers) when the watermark passes it; the final watermark fires the rest.
func TestKeyedProcessEventTimers(t *testing.T) {
	evs := []event{{"a", 100}, {"b", 200}, {"a", 900}, {"a", 1200}, {"b", 5000}, {"a", 5100}}
	p := NewPipeline("timers", 1)
	src := AssignTimestamps(Generate(p, int64(len(evs)), func(i int64) event { return evs[i] }), eventTS, BoundedOutOfOrder(0))
	out := KeyedProcessTimers(KeyBy(src, eventKey), func(s *StateStore, tm Timers) (ProcessFuncs[string, event, string], error) {
		count := NewValueState[int64](s, "count", WithTTL(time.Hour))
		return ProcessFuncs[string, event, string]{
			Record: func(key string, e event, emit func(string)) error {
				n, ok, err := count.Get()
				if err != nil {
					return err
				}
				if !ok {
					if err := tm.At(e.TS + 1000); err != nil {
						return err
					}
				}
				return count.Set(n + 1)
			},
			Timer: func(key string, ts int64, d TimeDomain, emit func(string)) error {
				n, _, err := count.Get()
				if err != nil {
					return err
				}
				emit(fmt.Sprintf("%s@%d %s n=%d", key, ts, d, n))
				return count.Clear()
			},
		}, nil
	})
	var got bag[string]
	got.sinkTo(out)
	mustRun(t, p)
	// Which records a timer sees depends on where the watermark was, so
	// only the fired timers and the total are fixed; the runs below pin
	// the timers' times per key.
	var times []string
	total := 0
	for _, s := range got.items() {
		var key, dom string
		var ts int64
		var n int
		fmt.Sscanf(s, "%1s@%d %s n=%d", &key, &ts, &dom, &n)
		times = append(times, fmt.Sprintf("%s@%d %s", key, ts, dom))
		total += n
	}
	slices.Sort(times)
	// The first timer of each key is always there; a second one only if a
	// watermark passed the first before the key's next record.
	first := []string{"a@1100 event-time", "b@1200 event-time"}
	maybe := []string{"a@6100 event-time", "b@6000 event-time"}
	for _, tm := range times {
		if !slices.Contains(first, tm) && !slices.Contains(maybe, tm) {
			t.Fatalf("unexpected timer %s; output %q", tm, got.items())
		}
	}
	for _, tm := range first {
		if !slices.Contains(times, tm) {
			t.Fatalf("timer %s did not fire; output %q", tm, got.items())
		}
	}
	if total != len(evs) {
		t.Fatalf("timers saw %d records, want %d; output %q", total, len(evs), got.items())
	}
}
