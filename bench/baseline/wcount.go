package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["wcount"] = wcount }

// wcount: bids per auction per tumbling window of 10 s.
func wcount(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	slidingCounts(g, n, auctionOf, windowSize, windowSize, func(start, end int64, counts map[int64]int64) {
		for a, k := range counts {
			buf = nexmark.Add(&c, buf, nexmark.KeyCount{Key: a, Count: k, Start: start, End: end})
		}
	})
	return c
}
