package sdk

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// benchEvent is event i of the benchmarks: 100 keys, one event per ms (10
// per key and second, so sliding panes are not all singletons),
// up to 500 ms out of order.
func benchEvent(i int64) event {
	return event{Key: "k" + strconv.FormatInt(i%100, 10), TS: i - (i*7919)%500}
}

// windowedCount runs a count over n bench events at p=1 and returns the
// number of panes and their total.
func windowedCount(tb testing.TB, n int64, a WindowAssigner, opts ...WindowOption) (panes, total int64, took time.Duration) {
	return windowedCountOf(tb, n, benchEvent, a, opts...)
}

// sparseEvent is event i of the sparse benchmark: 5,000 keys, one event per
// ms, so a key has an event every 5 s: most of a 10 s window's panes of a
// key are empty, as most of q5's auctions' are.
func sparseEvent(i int64) event {
	return event{Key: "k" + strconv.FormatInt(i*7919%5000, 10), TS: i - (i*7919)%500}
}

func windowedCountOf(tb testing.TB, n int64, gen func(int64) event, a WindowAssigner, opts ...WindowOption) (panes, total int64, took time.Duration) {
	p := NewPipeline("bench", 1)
	src := AssignTimestamps(Generate(p, n, gen), eventTS, BoundedOutOfOrder(500*time.Millisecond))
	w := WindowAggregate(Window(KeyBy(src, eventKey), a, opts...), Count[event]())
	NewSink(w.Results(), "Sum", func(TaskInfo) (SinkWriter[Pane[string, int64]], error) {
		return &sumWriter{panes: &panes, total: &total}, nil
	})
	pl, err := p.compile()
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if err := pl.RunLocal(context.Background(), testLogger(), nil); err != nil {
		tb.Fatal(err)
	}
	return panes, total, time.Since(start)
}

type sumWriter struct{ panes, total *int64 }

func (s *sumWriter) Write(p Pane[string, int64]) error { *s.panes++; *s.total += p.Value; return nil }
func (s *sumWriter) Finish() error                     { return nil }
func (s *sumWriter) Close() error                      { return nil }

// BenchmarkSlidingPanes compares a sliding count (10 s / 1 s) with a
// tumbling one (10 s / 10 s) over the same events in one run: with panes a
// record costs the same whatever size/slide is. ratio = sliding/tumbling
// throughput (target >= 0.5).
func BenchmarkSlidingPanes(b *testing.B) {
	n := int64(max(b.N, 200_000))
	var slidingT, tumblingT time.Duration
	for range 1 {
		_, _, tumblingT = windowedCount(b, n, Tumbling(10*time.Second))
		_, _, slidingT = windowedCount(b, n, Sliding(10*time.Second, time.Second))
	}
	b.ReportMetric(float64(n)/slidingT.Seconds(), "sliding-ev/s")
	b.ReportMetric(float64(n)/tumblingT.Seconds(), "tumbling-ev/s")
	b.ReportMetric(tumblingT.Seconds()/slidingT.Seconds(), "ratio")
}

// BenchmarkSlidingSparse is BenchmarkSlidingPanes over sparseEvent, with
// q5's windows (10 s sliding by 2 s): firing, not adding, dominates.
func BenchmarkSlidingSparse(b *testing.B) {
	n := int64(max(b.N, 200_000))
	var slidingT, tumblingT time.Duration
	_, _, tumblingT = windowedCountOf(b, n, sparseEvent, Tumbling(10*time.Second))
	_, _, slidingT = windowedCountOf(b, n, sparseEvent, Sliding(10*time.Second, 2*time.Second))
	b.ReportMetric(float64(n)/slidingT.Seconds(), "sliding-ev/s")
	b.ReportMetric(float64(n)/tumblingT.Seconds(), "tumbling-ev/s")
	b.ReportMetric(tumblingT.Seconds()/slidingT.Seconds(), "ratio")
}

// TestSlidingCount10M checks a 10 s / 1 s sliding count over 10M events
// against a reference: every event is in exactly 10 windows, and each
// window holds the events of its 10 s. Slow: WEIR_SLIDING_10M=1 runs it.
func TestSlidingCount10M(t *testing.T) {
	if os.Getenv("WEIR_SLIDING_10M") == "" {
		t.Skip("set WEIR_SLIDING_10M=1")
	}
	const n = 10_000_000
	panes, total, took := windowedCount(t, n, Sliding(10*time.Second, time.Second))
	// Reference by brute force over (key, window start).
	ref := map[[2]int64]int64{}
	for i := range int64(n) {
		e := benchEvent(i)
		k, _ := strconv.ParseInt(e.Key[1:], 10, 64)
		for s := floorTo(e.TS, 1000); s+10_000 > e.TS; s -= 1000 {
			ref[[2]int64{k, s}]++
		}
	}
	var wantTotal int64
	for _, c := range ref {
		wantTotal += c
	}
	if panes != int64(len(ref)) || total != wantTotal {
		t.Fatalf("got %d panes summing to %d, want %d summing to %d", panes, total, len(ref), wantTotal)
	}
	t.Logf("10M events in %v: %.0f ev/s, %d panes", took, n/took.Seconds(), panes)
}

// handTumbling and handSessions are the single-threaded Go baselines (COST):
// the same counts with a map, no framework.
func handTumbling(n int64) (panes, total int64) {
	type kw struct {
		k string
		s int64
	}
	counts := map[kw]int64{}
	open := map[int64][]kw{}
	var wm int64 = -1 << 62
	var maxTS int64 = -1 << 62
	for i := range n {
		e := benchEvent(i)
		w := kw{e.Key, floorTo(e.TS, 10_000)}
		if counts[w] == 0 {
			open[w.s] = append(open[w.s], w)
		}
		counts[w]++
		maxTS = max(maxTS, e.TS)
		if nw := maxTS - 501; nw >= wm+10_000 {
			wm = nw
			for s, ws := range open {
				if s+10_000-1 <= wm {
					for _, w := range ws {
						panes++
						total += counts[w]
						delete(counts, w)
					}
					delete(open, s)
				}
			}
		}
	}
	for _, c := range counts {
		panes++
		total += c
	}
	return panes, total
}

func handSessions(n int64, gap int64) (panes, total int64) {
	type sess struct{ start, end, n int64 }
	open := map[string][]sess{}
	for i := range n {
		e := benchEvent(i)
		ss := open[e.Key]
		m := sess{e.TS, e.TS + gap, 1}
		keep := ss[:0]
		for _, s := range ss {
			if s.start < m.end && m.start < s.end {
				m = sess{min(s.start, m.start), max(s.end, m.end), s.n + m.n}
			} else if s.end+500 < e.TS { // closed for good: out of order by at most 500
				panes++
				total += s.n
			} else {
				keep = append(keep, s)
			}
		}
		open[e.Key] = append(keep, m)
	}
	for _, ss := range open {
		for _, s := range ss {
			panes++
			total += s.n
		}
	}
	return panes, total
}

// BenchmarkTumblingCount: a keyed 10 s tumbling count through weir at p=1
// beside the hand-written single-threaded program, same events, same run.
func BenchmarkTumblingCount(b *testing.B) {
	benchVsHand(b, Tumbling(10*time.Second), func(n int64) (int64, int64) { return handTumbling(n) })
}

// BenchmarkSessionCount: a keyed session count (gap 2 s) likewise.
func BenchmarkSessionCount(b *testing.B) {
	benchVsHand(b, Sessions(2*time.Second), func(n int64) (int64, int64) { return handSessions(n, 2000) })
}

func benchVsHand(b *testing.B, a WindowAssigner, hand func(int64) (int64, int64)) {
	n := int64(max(b.N, 500_000))
	start := time.Now()
	hp, ht := hand(n)
	handT := time.Since(start)
	panes, total, took := windowedCount(b, n, a)
	if panes != hp || total != ht {
		b.Fatalf("weir: %d panes summing to %d; hand-written: %d summing to %d", panes, total, hp, ht)
	}
	b.ReportMetric(float64(n)/took.Seconds(), "weir-ev/s")
	b.ReportMetric(float64(n)/handT.Seconds(), "hand-ev/s")
}

// BenchmarkCombiner compares a windowed count with its combiner and with
// NoCombiner over the same events, alternating in one run (~20 records per
// key and 2 s pane, as Nexmark's q5 has ~15): ratio = throughput with /
// without (the outputs are the same: checked). go test ./sdk -run '^$'
// -bench Combiner -benchtime 1000000x
func BenchmarkCombiner(b *testing.B) {
	n := int64(max(b.N, 200_000))
	for _, a := range []struct {
		name string
		a    WindowAssigner
	}{{"tumbling-10s", Tumbling(10 * time.Second)}, {"sliding-10s-2s", Sliding(10*time.Second, 2*time.Second)}} {
		b.Run(a.name, func(b *testing.B) {
			var with, without time.Duration
			for range 3 {
				p1, t1, d1 := windowedCount(b, n, a.a)
				p2, t2, d2 := windowedCount(b, n, a.a, NoCombiner())
				if p1 != p2 || t1 != t2 {
					b.Fatalf("with the combiner %d panes of %d records, without %d of %d", p1, t1, p2, t2)
				}
				with, without = with+d1, without+d2
			}
			b.ReportMetric(3*float64(n)/with.Seconds(), "with-ev/s")
			b.ReportMetric(3*float64(n)/without.Seconds(), "without-ev/s")
			b.ReportMetric(without.Seconds()/with.Seconds(), "ratio")
		})
	}
}
