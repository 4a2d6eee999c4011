package nexmark

import "testing"

// BenchmarkEvent measures the generator: ns and allocations per event over
// the default mix (1 person : 3 auctions : 46 bids), and per kind. MB/s is
// of the events' EventCodec encoding, Emit included, encoded outside the
// timed loop (SetBytes uses the average size of the indices generated).
func BenchmarkEvent(b *testing.B) {
	g := NewGenerator(DefaultConfig())
	for _, bc := range []struct {
		name string
		idx  func(n int64) int64 // the n-th index generated
	}{
		{"all", func(n int64) int64 { return n }},
		{"bid", func(n int64) int64 { return n/bidProportion*proportionDenominator + 4 + n%bidProportion }},
		{"auction", func(n int64) int64 { return n/auctionProportion*proportionDenominator + 1 + n%auctionProportion }},
		{"person", func(n int64) int64 { return n * proportionDenominator }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var buf []byte
			size := 0
			const sample = 50_000
			for n := range int64(sample) {
				buf = EventCodec{}.Append(buf[:0], g.Event(bc.idx(n)))
				size += len(buf)
			}
			b.SetBytes(int64(size / sample))
			b.ReportAllocs()
			b.ResetTimer()
			var n int64
			for b.Loop() {
				e := g.Event(bc.idx(n))
				if e.Kind > KindBid {
					b.Fatal(e.Kind)
				}
				n++
			}
		})
	}
}

// BenchmarkEventParallel generates from GOMAXPROCS goroutines at once, as
// the sources of a parallel job do.
func BenchmarkEventParallel(b *testing.B) {
	g := NewGenerator(DefaultConfig())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var i int64
		for pb.Next() {
			if g.Event(i).Kind > KindBid {
				b.Fatal("bad kind")
			}
			i++
		}
	})
}

func BenchmarkPrice(b *testing.B) {
	r := rng{s: 1}
	var s int64
	for b.Loop() {
		s += nextPrice(&r)
	}
	if s == 0 {
		b.Fatal(s)
	}
}
