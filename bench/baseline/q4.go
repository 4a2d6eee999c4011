package baseline

import (
	"slices"

	"github.com/weir-run/weir/bench/nexmark"
)

func init() { Queries["q4"] = q4 }

// q4Auction is an auction and its best valid bid so far.
type q4Auction struct {
	start, expires, reserve, category int64
	best                              int64
	hasBest                           bool
}

func (a *q4Auction) offer(price, ts int64) {
	if ts >= a.start && ts < a.expires && price >= a.reserve && (!a.hasBest || price > a.best) {
		a.best, a.hasBest = price, true
	}
}

type q4Bid struct{ price, ts int64 }

// q4: each auction's winning bid (the highest valid one), then per category
// the floor of the mean winning price, at the end of input.
func q4(g *nexmark.Generator, n int64) nexmark.Checksum {
	index := map[int64]int32{} // auction ID -> position in auctions
	var auctions []q4Auction
	var early map[int64][]q4Bid // bids that came before their auction
	for i := range n {
		e := g.Event(i)
		switch e.Kind {
		case nexmark.KindAuction:
			a := e.Auction
			index[a.ID] = int32(len(auctions))
			auctions = append(auctions, q4Auction{start: a.DateTime, expires: a.Expires, reserve: a.Reserve, category: a.Category})
			if bs, ok := early[a.ID]; ok {
				for _, b := range bs {
					auctions[len(auctions)-1].offer(b.price, b.ts)
				}
				delete(early, a.ID)
			}
		case nexmark.KindBid:
			b := e.Bid
			if k, ok := index[b.Auction]; ok {
				auctions[k].offer(b.Price, b.DateTime)
			} else {
				if early == nil {
					early = map[int64][]q4Bid{}
				}
				early[b.Auction] = append(early[b.Auction], q4Bid{b.Price, b.DateTime})
			}
		}
	}
	type sumCount struct{ sum, count int64 }
	cats := map[int64]*sumCount{}
	for k := range auctions {
		a := &auctions[k]
		if !a.hasBest {
			continue
		}
		sc := cats[a.category]
		if sc == nil {
			sc = &sumCount{}
			cats[a.category] = sc
		}
		sc.sum += a.best
		sc.count++
	}
	var c nexmark.Checksum
	var buf []byte
	keys := make([]int64, 0, len(cats))
	for k := range cats {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sc := cats[k]
		avg := sc.sum / sc.count
		if sc.sum%sc.count != 0 && sc.sum < 0 {
			avg--
		}
		buf = nexmark.Add(&c, buf, nexmark.Q4Out{Category: k, Avg: avg})
	}
	return c
}
