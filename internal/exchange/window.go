package exchange

import "time"

// window sizes the credit a consumer gives one remote producer to the pace at
// which the consumer takes its frames (Flink's buffer debloating). A channel
// needs enough bytes in flight to cover the round trip of credit at the rate
// its consumer goes, and no more: a barrier queues behind every byte in
// flight, so a slow consumer with a large window makes aligned checkpoints
// slow and unaligned ones large. The window aims at inFlightTime worth of the
// consumer's measured rate, between minWindow and Options.Window.
//
// It is a pure state machine: the gate feeds it each consumed frame's cost
// and the time, and sends back the credit it returns. Credit is only
// withheld, never taken back, so a window shrinks as its consumer takes the
// bytes in flight.
type window struct {
	min, max int
	// granted is the producer's window: the credit it holds plus the cost
	// of its frames in flight or queued. It never falls below target.
	granted int
	target  int
	// consumed bytes since the measurement began at since (unix ns).
	consumed int
	since    int64
}

const (
	// inFlightTime is how much of the consumer's rate a window holds:
	// Flink's default debloating target. It is far above any round trip
	// (tens of milliseconds between busy one-CPU processes), so a channel
	// whose consumer keeps up always has its full window.
	inFlightTime = time.Second
	// debloatPeriod is how often the rate is measured: short, so that a
	// new channel's window grows early in its life (measuring every
	// 100 ms cost q8 at p=2 a tenth of a two-second run). A busy channel's
	// rate over 20 ms may read half its true rate when its consumer's
	// process paused for 10 ms; a second of even that is far above the
	// largest window.
	debloatPeriod = 20 * time.Millisecond
	// minWindow keeps two full batches in flight on a slow channel.
	minWindow = 64 << 10
)

// newWindow starts at the least window. Growing takes one measurement
// period: a channel limited by its window goes at about window ÷ round
// trip, a second of which is many windows. Shrinking takes as long as the
// consumer needs to take the bytes already in flight, at its slow pace.
func newWindow(max int, now int64) window {
	lo := min(minWindow, max)
	return window{min: lo, max: max, granted: lo, target: lo, since: now}
}

// consume records that a frame costing cost bytes was consumed at now and
// returns the credit to send back: the cost, less what the window should
// shrink by, or more what it should grow by.
func (w *window) consume(cost int, now int64) int {
	w.consumed += cost
	if elapsed := now - w.since; elapsed >= int64(debloatPeriod) {
		rate := float64(w.consumed) / float64(elapsed) // bytes per ns
		w.target = min(max(int(rate*float64(inFlightTime)), w.min), w.max)
		w.consumed, w.since = 0, now
	}
	back := max(w.target-w.granted+cost, 0)
	w.granted += back - cost
	return back
}
