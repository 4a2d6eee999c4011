package exchange

import (
	"testing"
	"time"
)

// simulateWindow runs a producer that always has data against a consumer
// that takes one frame of cost bytes every cost/rate seconds, for d of
// virtual time at each rate in turn, and returns the bytes in flight at the
// end of each phase. It checks on the way that the window accounts for every
// byte: what the producer holds plus what is queued is the window.
func simulateWindow(t *testing.T, window, cost int, d time.Duration, rates ...float64) []int {
	t.Helper()
	now := int64(0)
	w := newWindow(window, now)
	credit, queued := w.granted, 0
	var out []int
	for _, rate := range rates {
		every := int64(float64(cost) / rate * 1e9)
		for end := now + int64(d); now < end; now += every {
			for credit > 0 { // the producer sends while it holds any credit
				credit -= cost
				queued += cost
			}
			queued -= cost // the consumer takes a frame
			back := w.consume(cost, now)
			if back < 0 {
				t.Fatalf("returned %d bytes of credit", back)
			}
			credit += back
			if credit+queued != w.granted {
				t.Fatalf("producer holds %d and %d are queued, but the window is %d", credit, queued, w.granted)
			}
		}
		out = append(out, queued+max(credit, 0))
	}
	return out
}

func TestWindowFollowsTheConsumer(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		cost  int
		rates []float64 // bytes per second, one phase each
		want  []int     // bytes in flight after each phase, ±one frame
	}{
		{"a consumer that keeps up keeps the whole window", 32 << 10, []float64{200e6}, []int{mib}},
		{"small frames on a fast channel", 1 << 10, []float64{20e6}, []int{mib}},
		{"a slow consumer gets a second of its rate", 32 << 10, []float64{300e3}, []int{300e3}},
		{"a very slow one gets the minimum", 1 << 10, []float64{13e3}, []int{minWindow}},
		{"slow, fast, slow again", 32 << 10, []float64{100e3, 50e6, 100e3}, []int{100e3, mib, 100e3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := simulateWindow(t, mib, tc.cost, 12*time.Second, tc.rates...)
			for i := range got {
				if diff := got[i] - tc.want[i]; diff > tc.cost || -diff > tc.cost+tc.want[i]/20 {
					t.Errorf("phase %d at %.0f B/s: %d bytes in flight, want %d", i, tc.rates[i], got[i], tc.want[i])
				}
			}
		})
	}
}
