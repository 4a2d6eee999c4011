package runtime

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// overheadRecords is the size of one trial of BenchmarkObservabilityOverhead.
const overheadRecords = 2_000_000

// overheadTrial runs a two-vertex graph (source -> map -> sum over an
// in-process exchange, where counting and the tap check sit) and returns
// its records per second.
func overheadTrial(b *testing.B, metrics, tap bool) float64 {
	measure, tappable = metrics, tap
	defer func() { measure, tappable = true, true }()
	var total atomic.Int64
	g := newGraph(128)
	src := g.vertex(1, counter("src", overheadRecords, 1024, 0))
	sum := g.vertex(1, mapper("inc", func(v int64) int64 { return v + 1 }), sumSink("sum", &total))
	g.edge(src, sum, partRebalance)
	start := time.Now()
	if err := g.RunLocal(context.Background(), quiet(), nil); err != nil {
		b.Fatal(err)
	}
	rate := overheadRecords / time.Since(start).Seconds()
	if want := int64(overheadRecords) * (overheadRecords + 1) / 2; total.Load() != want {
		b.Fatalf("sum %d, want %d", total.Load(), want)
	}
	return rate
}

// BenchmarkObservabilityOverhead measures what per-batch metrics and an
// idle tap cost, as throughput ratios: each iteration runs one trial of
// every configuration, interleaved so a noisy neighbour hits them alike,
// and the medians are compared. A ratio of 1 means no cost.
//
//	go test ./sdk/internal/runtime -run '^$' -bench ObservabilityOverhead -benchtime 15x
func BenchmarkObservabilityOverhead(b *testing.B) {
	var on, off, idle, none []float64
	for range b.N {
		on = append(on, overheadTrial(b, true, false))
		off = append(off, overheadTrial(b, false, false))
		idle = append(idle, overheadTrial(b, false, true))
		none = append(none, overheadTrial(b, false, false))
	}
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	mOn, mOff, mIdle, mNone := median(on), median(off), median(idle), median(none)
	b.ReportMetric(mOff, "rec/s-baseline")
	b.ReportMetric(mOn/mOff, "metrics-ratio")
	b.ReportMetric(mIdle/mNone, "idle-tap-ratio")
}
