package main

import (
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// scount counts the bids per auction per sliding window of 10 s every 2 s:
// the sliding count of the peer comparison. The window operator counts per
// 2 s pane and combines a window's five panes when it fires.
func init() {
	queries["scount"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		counts := countWindows(events, func(b *nexmark.Bid) int64 { return b.Auction }, sdk.Sliding(10*time.Second, 2*time.Second))
		checksumSink(sdk.Map(counts, paneKeyCount, sdk.WithName("KeyCount"), sdk.WithUID("keycount")), out)
	}
}
