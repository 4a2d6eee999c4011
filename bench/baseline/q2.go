package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q2"] = q2 }

// q2: the bids on auctions whose ID is a multiple of 123.
func q2(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	for i := range n {
		e := g.Event(i)
		if e.Kind == nexmark.KindBid && e.Bid.Auction%123 == 0 {
			buf = nexmark.Add(&c, buf, nexmark.Q2Out{Auction: e.Bid.Auction, Price: e.Bid.Price})
		}
	}
	return c
}
