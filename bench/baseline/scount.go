package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["scount"] = scount }

// scount: bids per auction per sliding window (10 s, slide 2 s).
func scount(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	slidingCounts(g, n, auctionOf, windowSize, windowSlide, func(start, end int64, counts map[int64]int64) {
		for a, k := range counts {
			buf = nexmark.Add(&c, buf, nexmark.KeyCount{Key: a, Count: k, Start: start, End: end})
		}
	})
	return c
}
