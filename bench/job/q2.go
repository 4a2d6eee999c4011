package main

import (
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q2 selects the bids on every 123rd auction: one stateless FlatMap (filter
// and projection) chained into the source's subtask.
func init() {
	queries["q2"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		res := sdk.FlatMap(events, func(e nexmark.Event, emit func(nexmark.Q2Out)) {
			if e.Kind == nexmark.KindBid && e.Bid.Auction%123 == 0 {
				emit(nexmark.Q2Out{Auction: e.Bid.Auction, Price: e.Bid.Price, Emit: e.Emit})
			}
		}, sdk.WithName("Q2Select"), sdk.WithUID("q2-select"))
		checksumSink(res, out)
	}
}
