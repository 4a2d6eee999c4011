package runtime

import (
	"sync/atomic"
	"testing"
	"time"
)

// A record and a watermark that fill no batch still go out within the flush
// deadline (bufferTimeout), from a source that keeps polling without
// waiting, or that keeps asking for waits shorter than the deadline, and
// from a subtask fed by a gate: a busy or trickling, quiet stream neither
// holds back its records nor its event time.
func TestPartialBatchAndWatermarkGoOutWithinTheFlushDeadline(t *testing.T) {
	for _, waits := range []bool{false, true} {
		t.Run(map[bool]string{false: "busy", true: "short waits"}[waits], func(t *testing.T) {
			// Two hops of at most bufferTimeout each; the bound leaves room
			// for a loaded machine but not for waiting on more input, which
			// never comes.
			if d := partialBatchLatency(t, waits, 0); d > 100*bufferTimeout {
				t.Fatalf("record and watermark took %v to reach the sink (flush deadline %v)", d, bufferTimeout)
			}
		})
	}
}

// A job's own buffer timeout (Graph.BufferTimeout) replaces the default: a
// source waiting less than it keeps its batch that long.
func TestBufferTimeoutIsTheGraphs(t *testing.T) {
	const timeout = 300 * time.Millisecond
	if d := partialBatchLatency(t, true, timeout); d < timeout*8/10 || d > 20*timeout {
		t.Fatalf("the record took %v to reach the sink under a buffer timeout of %v", d, timeout)
	}
}

// partialBatchLatency runs a source that emits one record, with a watermark,
// then nothing (busy, or asking for waits of a tenth of the default buffer
// timeout) through a map to a sink, under the graph's buffer timeout
// timeout (0: the default); it returns how long the record and watermark
// took to reach the sink.
func partialBatchLatency(t *testing.T, waits bool, timeout time.Duration) time.Duration {
	var sentAt atomic.Int64 // unix ns of the one record's emission
	var gotRecord, gotWatermark, done atomic.Bool
	var latency atomic.Int64
	src := &Operator{UID: "src", Name: "Quiet", Kind: "source", Out: ints,
		NewSource: func(env *Env, emit any) (SourceRun, error) {
			e := emit.(func(int64))
			return SourceRun{
				Poll: func() (Poll, error) {
					if sentAt.Load() == 0 {
						sentAt.Store(time.Now().UnixNano())
						e(7)
						return Poll{}, nil
					}
					if done.Load() || time.Since(time.Unix(0, sentAt.Load())) > 200*max(bufferTimeout, timeout) {
						return Poll{Done: true}, nil
					}
					if waits {
						return Poll{Wait: bufferTimeout / 10}, nil
					}
					time.Sleep(100 * time.Microsecond) // busy with nothing to emit
					return Poll{}, nil
				},
				Watermark: func() (int64, bool) { return 100, false },
			}, nil
		}}
	seen := func() {
		if gotRecord.Load() && gotWatermark.Load() && !done.Load() {
			latency.Store(time.Now().UnixNano() - sentAt.Load())
			done.Store(true)
		}
	}
	snk := sink("sink", func(*Env) OpRun {
		return OpRun{
			In: func(int64) { gotRecord.Store(true); seen() },
			Watermark: func(ts int64) {
				if ts == 100 {
					gotWatermark.Store(true)
					seen()
				}
			},
		}
	})
	g := newGraph(128)
	g.BufferTimeout = timeout
	a := g.vertex(1, src)
	b := g.vertex(1, mapper("map", func(v int64) int64 { return v }))
	c := g.vertex(1, snk)
	g.edge(a, b, partRebalance)
	g.edge(b, c, partRebalance)
	if err := g.RunLocal(t.Context(), quiet(), nil); err != nil {
		t.Fatal(err)
	}
	if !done.Load() {
		t.Fatalf("record %v, watermark %v: not both reached the sink before the source gave up", gotRecord.Load(), gotWatermark.Load())
	}
	return time.Duration(latency.Load())
}

// A subtask whose input never pauses still sends its partial batch at the
// flush deadline: here a slow filter, always behind its source, passes one
// record, which must not wait for the batch to fill or the input to end.
func TestPartialBatchGoesOutWithinTheFlushDeadlineUnderSteadyInput(t *testing.T) {
	const giveUp = 3 * time.Second
	var start time.Time
	var done atomic.Bool
	var latency atomic.Int64
	src := &Operator{UID: "src", Name: "Busy", Kind: "source", Out: ints,
		NewSource: func(env *Env, emit any) (SourceRun, error) {
			e := emit.(func(int64))
			var next int64
			return SourceRun{
				Poll: func() (Poll, error) {
					if next == 0 {
						start = time.Now()
					}
					if done.Load() || time.Since(start) > giveUp {
						return Poll{Done: true}, nil
					}
					for range 64 {
						e(next)
						next++
					}
					return Poll{}, nil
				},
			}, nil
		}}
	filter := &Operator{UID: "filter", Name: "SlowFilter", Kind: "map", Out: ints,
		NewOp: func(_ *Env, emit any) (OpRun, error) {
			e := emit.(func(int64))
			return OpRun{In: func(v int64) {
				// Slower than the source (a spin: a sleep this short
				// lasts far longer on some kernels).
				for t0 := time.Now(); time.Since(t0) < 20*time.Microsecond; {
				}
				if v == 0 {
					e(v)
				}
			}}, nil
		}}
	snk := sink("sink", func(*Env) OpRun {
		return OpRun{In: func(int64) {
			if !done.Load() {
				latency.Store(int64(time.Since(start)))
				done.Store(true)
			}
		}}
	})
	g := newGraph(128)
	a := g.vertex(1, src)
	b := g.vertex(1, filter)
	c := g.vertex(1, snk)
	g.edge(a, b, partRebalance)
	g.edge(b, c, partRebalance)
	if err := g.RunLocal(t.Context(), quiet(), nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(latency.Load()); d > giveUp/3 {
		t.Fatalf("the record took %v to reach the sink (flush deadline %v)", d, bufferTimeout)
	}
}
