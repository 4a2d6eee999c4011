package main

import (
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// wcount counts the bids per auction per tumbling window of 10 s: the
// windowed count of the peer comparison. The bids go through the exchange
// as (auction, time, emit) and the window operator keeps a count per key
// and window.
func init() {
	queries["wcount"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		counts := countWindows(events, func(b *nexmark.Bid) int64 { return b.Auction }, sdk.Tumbling(10*time.Second))
		checksumSink(sdk.Map(counts, paneKeyCount, sdk.WithName("KeyCount"), sdk.WithUID("keycount")), out)
	}
}
