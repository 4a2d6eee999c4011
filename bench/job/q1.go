package main

import (
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q1 converts every bid's price to euros: a stateless Map chained into the
// source's subtask.
func init() {
	queries["q1"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		res := sdk.Map(bids(events), func(e nexmark.Event) nexmark.Q1Out {
			b := e.Bid
			return nexmark.Q1Out{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price * 908 / 1000, DateTime: b.DateTime, Emit: e.Emit}
		}, sdk.WithName("Q1Convert"), sdk.WithUID("q1-convert"))
		checksumSink(res, out)
	}
}
