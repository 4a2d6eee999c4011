package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q7"] = q7 }

// q7 (highest bid): per tumbling window of 10 s, the bids at its highest
// price. The bids come in event-time order: only the open window's highest
// price and the bids at it are kept.
func q7(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	var top []nexmark.Bid // the open window's bids at its highest price
	var end int64         // the open window's end, when top is not empty
	flush := func() {
		for _, b := range top {
			buf = nexmark.Add(&c, buf, nexmark.Q7Out{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, End: end})
		}
		top = top[:0]
	}
	for i := range n {
		e := g.Event(i)
		if e.Kind != nexmark.KindBid {
			continue
		}
		b := e.Bid
		if len(top) > 0 && b.DateTime >= end {
			flush()
		}
		switch {
		case len(top) == 0:
			end = floorTo(b.DateTime, windowSize) + windowSize
			top = append(top, *b)
		case b.DateTime < end-windowSize:
			outOfOrder()
		case b.Price > top[0].Price:
			top = append(top[:0], *b)
		case b.Price == top[0].Price:
			top = append(top, *b)
		}
	}
	flush()
	return c
}
