package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q5"] = q5 }

// q5 (hot items): per sliding window (10 s, slide 2 s), the auctions with
// the most bids, all of them on a tie.
func q5(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	slidingCounts(g, n, auctionOf, windowSize, windowSlide, func(start, end int64, counts map[int64]int64) {
		var top int64
		for _, k := range counts {
			top = max(top, k)
		}
		for a, k := range counts {
			if k == top {
				buf = nexmark.Add(&c, buf, nexmark.KeyCount{Key: a, Count: k, Start: start, End: end})
			}
		}
	})
	return c
}
