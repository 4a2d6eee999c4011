package sdk

import (
	"math"
	"time"
)

// Event time in weir is unix milliseconds (int64). A watermark w says no
// more records with event time <= w will come; MaxWatermark, sent at the end
// of a bounded input, fires every window and event-time timer.
const MaxWatermark int64 = math.MaxInt64

// WatermarkStrategy says how watermarks follow the event times a source (or
// a timestamp assigner) sees: bounded out-of-orderness, optionally with
// idleness.
type WatermarkStrategy struct {
	// MaxOutOfOrder is how much older than the largest event time seen a
	// record may be: the watermark is that largest time minus this, minus 1.
	MaxOutOfOrder time.Duration
	// Idleness, when > 0, marks the stream idle after this long without
	// records, so that it no longer holds back the watermark of the
	// operators it feeds (a quiet partition must not stall every window).
	Idleness time.Duration
}

// BoundedOutOfOrder is the strategy for records at most d out of order.
func BoundedOutOfOrder(d time.Duration) WatermarkStrategy {
	return WatermarkStrategy{MaxOutOfOrder: d}
}

// WithIdleness returns s marking the stream idle after d without records.
func (s WatermarkStrategy) WithIdleness(d time.Duration) WatermarkStrategy {
	s.Idleness = d
	return s
}

// watermarkFor is the watermark after largest event time seen max.
func (s WatermarkStrategy) watermarkFor(max int64) int64 {
	if max == math.MinInt64 {
		return max
	}
	return max - s.MaxOutOfOrder.Milliseconds() - 1
}

// wmEvery bounds how many records pass between watermarks an assigner
// sends: watermarks cost a frame on every channel, so they go out in bulk
// (and at every buffer flush, so a slow stream's watermark is not late).
const wmEvery = 512

// AssignTimestamps gives the records of s their event time (unix ms) by ts
// and emits watermarks by ws. Put it right after the source (it chains into
// the source's subtask) so each source subtask has its own watermark and the
// operators downstream take the minimum over their inputs. It replaces any
// watermark from upstream, except the final one at the end of input.
func AssignTimestamps[T any](s Stream[T], ts func(T) int64, ws WatermarkStrategy, opts ...Option) Stream[T] {
	out := transform(s, "timestamps", "AssignTimestamps", opts, func(env *opEnv, emit func(T)) (opRun, error) {
		a := &assigner[T]{env: env, ws: ws, max: math.MinInt64, sent: math.MinInt64}
		run := opRun{
			in: func(v T) {
				if t := ts(v); t > a.max {
					a.max = t
				}
				a.n++
				if a.idle {
					a.idle = false
					env.setIdle(false)
				}
				emit(v)
				if a.n%wmEvery == 0 {
					a.send()
				}
			},
			watermark: func(w int64) {
				if w == MaxWatermark {
					a.sent = w
					env.emitWatermark(w)
				}
			},
			flush: func() error { a.send(); return nil },
		}
		if ws.Idleness > 0 {
			env.wake(time.Now().Add(ws.Idleness))
			run.onTime = func(now time.Time) {
				if a.n == a.seen && !a.idle {
					a.idle = true
					env.setIdle(true)
				}
				a.seen = a.n
				env.wake(now.Add(ws.Idleness))
			}
		}
		return run, nil
	})
	out.ts = ts
	return out
}

type assigner[T any] struct {
	env       *opEnv
	ws        WatermarkStrategy
	max, sent int64
	n, seen   int64 // records so far; at the last idleness check
	idle      bool
}

func (a *assigner[T]) send() {
	if w := a.ws.watermarkFor(a.max); w > a.sent && a.sent != MaxWatermark {
		a.sent = w
		a.env.emitWatermark(w)
	}
}

// WithTimestamps declares that the records of s carry event time ts, without
// changing watermarks: for a source whose reader emits its own (a
// WatermarkSource), or a stream whose event time an upstream assigner set
// before a Map.
func WithTimestamps[T any](s Stream[T], ts func(T) int64) Stream[T] {
	s.ts = ts
	return s
}

// WatermarkSource is implemented by SourceReaders that track event time per
// split, like a Kafka reader per partition: after every Poll the runtime
// reads the reader's watermark and sends it downstream when it advanced, or
// the idle marker when idle is true. SplitWatermarks does the bookkeeping.
type WatermarkSource interface {
	Watermark() (ts int64, idle bool)
}

// SplitWatermarks keeps the watermark of each split a source reader reads
// (a Kafka partition, a file) under one strategy. The reader's watermark is
// the minimum over its splits that are not idle (DESIGN §5): a split with no
// record for the strategy's Idleness stops holding it back. Not safe for
// concurrent use.
type SplitWatermarks struct {
	ws     WatermarkStrategy
	splits map[string]*splitWM
	out    int64
}

type splitWM struct {
	max  int64
	last time.Time
}

// NewSplitWatermarks returns the bookkeeping for strategy ws.
func NewSplitWatermarks(ws WatermarkStrategy) *SplitWatermarks {
	return &SplitWatermarks{ws: ws, splits: map[string]*splitWM{}, out: math.MinInt64}
}

// Add starts tracking split (a new or restored split) as of now.
func (w *SplitWatermarks) Add(split string, now time.Time) {
	if _, ok := w.splits[split]; !ok {
		w.splits[split] = &splitWM{max: math.MinInt64, last: now}
	}
}

// Observe records that split produced a record with event time ts at now.
func (w *SplitWatermarks) Observe(split string, ts int64, now time.Time) {
	s, ok := w.splits[split]
	if !ok {
		s = &splitWM{max: math.MinInt64}
		w.splits[split] = s
	}
	s.max = max(s.max, ts)
	s.last = now
}

// Remove stops tracking a finished split.
func (w *SplitWatermarks) Remove(split string) { delete(w.splits, split) }

// Watermark is the minimum over the active splits at now, never going
// back; idle is true when every split is idle (or there is none).
func (w *SplitWatermarks) Watermark(now time.Time) (ts int64, idle bool) {
	lo, active := int64(math.MaxInt64), false
	for _, s := range w.splits {
		if w.ws.Idleness > 0 && now.Sub(s.last) >= w.ws.Idleness {
			continue
		}
		active = true
		lo = min(lo, w.ws.watermarkFor(s.max))
	}
	if !active {
		return w.out, true
	}
	w.out = max(w.out, lo)
	return w.out, false
}
