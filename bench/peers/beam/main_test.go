package main

import (
	"context"
	"os"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/weir-run/weir/bench/nexmark"
)

// reference computes wcount (slide == size) or scount over events 0..n-1
// with plain maps, as QUERIES.md defines them: bids per auction per window
// [Start, Start+size), Start a multiple of slide, every window that contains
// a bid, including the partial sliding windows at the beginning.
func reference(g *nexmark.Generator, n, size, slide int64) nexmark.Checksum {
	type key struct{ auction, start int64 }
	counts := map[key]int64{}
	for i := range n {
		e := g.Event(i)
		if e.Kind != nexmark.KindBid {
			continue
		}
		ts := e.Time()
		for start := ts - ts%slide; start > ts-size; start -= slide {
			counts[key{e.Bid.Auction, start}]++
		}
	}
	var c nexmark.Checksum
	var buf []byte
	for k, cnt := range counts {
		buf = nexmark.Add(&c, buf, nexmark.KeyCount{Key: k.auction, Count: cnt, Start: k.start, End: k.start + size})
	}
	return c
}

func TestChecksumEqualsReference(t *testing.T) {
	const n = 100_000
	for _, tc := range []struct {
		query       string
		size, slide int64
		shards      int64
	}{
		{"wcount", 10_000, 10_000, 8},
		{"scount", 10_000, 2_000, 8},
		{"wcount", 10_000, 10_000, 3},
		{"scount", 10_000, 2_000, 1},
	} {
		cfg := nexmark.DefaultConfig()
		want := reference(nexmark.NewGenerator(cfg), n, tc.size, tc.slide)
		got, err := run(context.Background(), tc.query, n, tc.shards, cfg.Seed, cfg.EventsPerSecond)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if got != want || want.Count == 0 {
			t.Errorf("%s with %d shards: checksum %v, reference %v", tc.query, tc.shards, got, want)
		} else {
			t.Logf("%s with %d shards: checksum %v equals the reference", tc.query, tc.shards, got)
		}
	}
}

func TestShardRange(t *testing.T) {
	for _, n := range []int64{0, 1, 7, 100, 1001} {
		for _, p := range []int64{1, 2, 3, 8} {
			next := int64(0)
			for s := range p {
				lo, hi := shardRange(n, p, s)
				if lo != next || hi < lo {
					t.Fatalf("n=%d p=%d s=%d: [%d, %d) after %d", n, p, s, lo, hi, next)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("n=%d p=%d: shards end at %d", n, p, next)
			}
		}
	}
}

func TestMain(m *testing.M) {
	beam.Init()
	os.Exit(m.Run())
}
