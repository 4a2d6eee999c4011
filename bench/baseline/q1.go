package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q1"] = q1 }

// q1: every bid with its price converted to euros.
func q1(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	for i := range n {
		e := g.Event(i)
		if e.Kind != nexmark.KindBid {
			continue
		}
		b := e.Bid
		buf = nexmark.Add(&c, buf, nexmark.Q1Out{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price * 908 / 1000, DateTime: b.DateTime})
	}
	return c
}
