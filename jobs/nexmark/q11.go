package main

import (
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q11 counts the bids per bidder per session (gap 10 s).
func init() {
	queries["q11"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		counts := countWindows(events, func(b *nexmark.Bid) int64 { return b.Bidder }, sdk.Sessions(10*time.Second))
		checksumSink(sdk.Map(counts, paneKeyCount, sdk.WithName("KeyCount"), sdk.WithUID("keycount")), out)
	}
}
