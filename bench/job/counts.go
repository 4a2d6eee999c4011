package main

import (
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// The counting queries: bids per key per window, one KeyCount per key and
// window. The bids, as (key, time, emit), are counted per key and pane by
// the window's combiner in the source's subtask, and the exchange carries
// those partial counts (q11's sessions have no combiner: every bid crosses
// it); the window operator keeps a count per key and pane (sliding windows
// combine their five 2 s panes when they fire).
//   - wcount: per auction, tumbling 10 s (the peer comparison's windowed count);
//   - scount: per auction, sliding 10 s every 2 s (its sliding count);
//   - q11: per bidder, sessions with a 10 s gap (user sessions).
func init() {
	auction := func(b *nexmark.Bid) int64 { return b.Auction }
	queries["wcount"] = keyCounts(auction, sdk.Tumbling(10*time.Second))
	queries["scount"] = keyCounts(auction, sdk.Sliding(10*time.Second, 2*time.Second))
	queries["q11"] = keyCounts(func(b *nexmark.Bid) int64 { return b.Bidder }, sdk.Sessions(10*time.Second))
}

func keyCounts(key func(*nexmark.Bid) int64, a sdk.WindowAssigner) query {
	return func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		counts := countWindows(events, key, a)
		checksumSink(sdk.Map(counts, paneKeyCount, sdk.WithName("KeyCount"), sdk.WithUID("keycount")), out)
	}
}
