package nexmark

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Quantiles are within one bucket (12.5%) of the exact ones.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []int64
	for range 100_000 {
		v := int64(r.ExpFloat64() * 2e6) // ~2 ms mean, like latencies
		h.Record(v)
		all = append(all, v)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if d := float64(got-exact) / float64(exact); d > 0.125 || d < -0.125 {
			t.Errorf("q%.3f = %d, exact %d (off by %.1f%%)", q, got, exact, d*100)
		}
	}
	if h.Quantile(1) != all[len(all)-1] || h.Max != all[len(all)-1] {
		t.Errorf("max %d / q1 %d, want %d", h.Max, h.Quantile(1), all[len(all)-1])
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("an empty histogram has a median")
	}
}

func TestHistogramSmallValuesAndMerge(t *testing.T) {
	var a, b Histogram
	for v := range int64(8) {
		a.Record(v)
	}
	b.Record(1 << 40)
	a.Merge(&b)
	if a.Total != 9 || a.Max != 1<<40 {
		t.Fatalf("total %d max %d", a.Total, a.Max)
	}
	if got := a.Quantile(0.5); got != 4 {
		t.Errorf("median of 0..7 and 2^40 = %d, want 4", got)
	}
}

// The checksum does not depend on the order of the outputs, and tells
// different multisets apart.
func TestChecksumOrderIndependent(t *testing.T) {
	outs := []KeyCount{{Key: 1, Count: 2, Start: 0, End: 10}, {Key: 2, Count: 2, Start: 0, End: 10}, {Key: 1, Count: 3, Start: 10, End: 20}}
	var a, b Checksum
	var buf []byte
	for _, o := range outs {
		buf = Add(&a, buf, o)
	}
	for i := len(outs) - 1; i >= 0; i-- {
		buf = Add(&b, buf, outs[i])
	}
	if a != b {
		t.Fatalf("order changed the checksum: %v vs %v", a, b)
	}
	var c Checksum
	buf = Add(&c, buf, KeyCount{Key: 1, Count: 2, Start: 0, End: 10, Emit: 99}) // Emit is not identity
	buf = Add(&c, buf, outs[1])
	buf = Add(&c, buf, KeyCount{Key: 1, Count: 3, Start: 10, End: 21})
	if c == a {
		t.Fatal("a different output has the same checksum")
	}
	var d Checksum
	Add(&d, buf, Q2Out{Auction: 1, Price: 2})
	var e Checksum
	Add(&e, buf, Q4Out{Category: 1, Avg: 2})
	if d == e {
		t.Fatal("outputs of different queries with equal fields hash alike")
	}
}
