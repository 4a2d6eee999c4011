package main

import (
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q11 counts the bids per bidder per session (gap 10 s).
//
// QUERIES.md puts two bids in one session when their intervals [ts, ts+10s)
// overlap or touch; weir's session windows merge intervals that overlap.
// On integer milliseconds, touching [ts, ts+gap) intervals are overlapping
// [ts, ts+gap+1ms) ones, so the job windows with a gap of 10 s + 1 ms and
// reports End - 1 ms. That window fires when the watermark reaches
// last ts + 10 s, the first moment no bid can extend the session.
func init() {
	queries["q11"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		counts := countWindows(events, func(b *nexmark.Bid) int64 { return b.Bidder }, sdk.Sessions(10*time.Second+time.Millisecond))
		checksumSink(sdk.Map(counts, func(p sdk.Pane[int64, cnt]) nexmark.KeyCount {
			kc := paneKeyCount(p)
			kc.End--
			return kc
		}, sdk.WithName("KeyCount"), sdk.WithUID("keycount")), out)
	}
}
