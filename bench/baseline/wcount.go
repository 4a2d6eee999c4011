package baseline

import "github.com/weir-run/weir/bench/nexmark"

// The peer comparison's counts: bids per auction per tumbling window of
// 10 s (wcount) and per sliding window of 10 s every 2 s (scount).
func init() {
	Queries["wcount"] = auctionCounts(windowSize)
	Queries["scount"] = auctionCounts(windowSlide)
}

func auctionCounts(slide int64) Query {
	return func(g *nexmark.Generator, n int64) nexmark.Checksum {
		var c nexmark.Checksum
		var buf []byte
		slidingCounts(g, n, auctionOf, windowSize, slide, func(start, end int64, counts map[int64]int64) {
			for a, k := range counts {
				buf = nexmark.Add(&c, buf, nexmark.KeyCount{Key: a, Count: k, Start: start, End: end})
			}
		})
		return c
	}
}
