package main

import (
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q7Buckets is how many keys q7's first stage spreads the bids over (by
// auction; a power of two).
const q7Buckets = 256

// q7 (highest bid): per tumbling window of 10 s, the bids at the window's
// maximum price.
//
// Two stages, like Flink's local/global aggregation: the bids, keyed by
// auction modulo q7Buckets, are folded per key and window into the highest
// price and the bids at it; those partial maxima, keyed by window end, are
// merged by a process function that emits the winners when an event-time
// timer at End-1 fires (after every upstream subtask fired the window; see
// q5). The first stage's combiner folds the bids in the source's subtask,
// so its shuffle carries at most q7Buckets partials per window and subtask.
func init() {
	queries["q7"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		bids := sdk.WithTimestamps(sdk.FlatMap(events, func(e nexmark.Event, emit func(priceBid)) {
			if b := e.Bid; e.Kind == nexmark.KindBid {
				emit(priceBid{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Emit: e.Emit})
			}
		}, sdk.WithName("PriceBids"), sdk.WithUID("price-bids")), func(b priceBid) int64 { return b.DateTime })
		keyed := sdk.KeyBy(bids, func(b priceBid) int64 { return b.Auction & (q7Buckets - 1) })
		parts := sdk.WindowAggregate(sdk.Window(keyed, sdk.Tumbling(10*time.Second)), sdk.AggregateFunc[priceBid, q7Acc, q7Acc]{
			Init: func() q7Acc { return q7Acc{} },
			Add: func(a q7Acc, b priceBid) q7Acc {
				a.Emit = max(a.Emit, b.Emit)
				a.add(b.Price, q7Bid{Auction: b.Auction, Bidder: b.Bidder, DateTime: b.DateTime})
				return a
			},
			Result: func(a q7Acc) q7Acc { return a },
			Merge:  q7Acc.merge,
		}, sdk.WithName("MaxPrice"), sdk.WithUID("max-price")).Results()
		byWindow := sdk.KeyBy(sdk.Map(parts, func(p sdk.Pane[int64, q7Acc]) q7Part { return q7Part{End: p.End, Acc: p.Value} },
			sdk.WithName("Partial"), sdk.WithUID("partial")), func(p q7Part) int64 { return p.End })
		top := sdk.KeyedProcessTimers(byWindow, func(s *sdk.StateStore, t sdk.Timers) (sdk.ProcessFuncs[int64, q7Part, nexmark.Q7Out], error) {
			acc := sdk.NewValueState[q7Acc](s, "max")
			return sdk.ProcessFuncs[int64, q7Part, nexmark.Q7Out]{
				Record: func(end int64, p q7Part, _ func(nexmark.Q7Out)) error {
					a, ok, err := acc.Get()
					if err != nil {
						return err
					}
					if !ok {
						if err := t.At(end - 1); err != nil {
							return err
						}
					}
					return acc.Set(a.merge(p.Acc))
				},
				Timer: func(end, _ int64, _ sdk.TimeDomain, emit func(nexmark.Q7Out)) error {
					a, ok, err := acc.Get()
					if err != nil || !ok {
						return err
					}
					a.each(func(b q7Bid) {
						emit(nexmark.Q7Out{Auction: b.Auction, Bidder: b.Bidder, Price: a.Price, DateTime: b.DateTime, End: end, Emit: a.Emit})
					})
					return acc.Clear()
				},
			}, nil
		}, sdk.WithName("HighestBid"), sdk.WithUID("highest-bid"))
		checksumSink(top, out)
	}
}
