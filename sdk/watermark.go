package sdk

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
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
// sends (and it sends one at every buffer flush, so a slow stream's
// watermark is not late). A watermark costs a mark in every channel's batch
// and a step of the consumers' watermark handling, not a frame or a flush:
// it rides in the batch (see runtime's typedOutput.watermark).
const wmEvery = 512

// AssignTimestamps gives the records of s their event time (unix ms) by ts
// and emits watermarks by ws. Put it right after the source (it chains into
// the source's subtask) so each source subtask has its own watermark and the
// operators downstream take the minimum over their inputs. It replaces any
// watermark from upstream, except the final one at the end of input.
func AssignTimestamps[T any](s Stream[T], ts func(T) int64, ws WatermarkStrategy, opts ...Option) Stream[T] {
	out := transform(s, "timestamps", "AssignTimestamps", opts, func(env *runtime.Env, emit func(T)) (runtime.OpRun, error) {
		a := &assigner[T]{env: env, ws: ws, max: math.MinInt64, sent: math.MinInt64}
		// The watermark this subtask had sent (at another parallelism the
		// minimum over every old subtask's: which old subtasks' splits the
		// reader took over is the reader's business). It goes downstream
		// again before any record, and only a newer one follows.
		restored, _, err := restoredWatermark(env)
		if err != nil {
			return runtime.OpRun{}, err
		}
		a.sent = restored
		run := runtime.OpRun{
			In: func(v T) {
				if t := ts(v); t > a.max {
					a.max = t
				}
				a.n++
				if a.idle {
					a.idle = false
					env.SetIdle(false)
				}
				emit(v)
				if a.n%wmEvery == 0 {
					a.send()
				}
			},
			Watermark: func(w int64) {
				if w == MaxWatermark {
					a.sent = w
					env.EmitWatermark(w)
				}
			},
			Flush: func() error { a.send(); return nil },
			Snapshot: func(int64) ([][]byte, error) {
				return [][]byte{savedWatermark{wm: a.sent}.encode()}, nil
			},
			RestoredWatermark: func() int64 { return restored },
		}
		if ws.Idleness > 0 {
			env.Wake(time.Now().Add(ws.Idleness))
			run.OnTime = func(now time.Time) {
				if a.n == a.seen && !a.idle {
					a.idle = true
					env.SetIdle(true)
				}
				a.seen = a.n
				env.Wake(now.Add(ws.Idleness))
			}
		}
		return run, nil
	})
	out.ts = ts
	return out
}

type assigner[T any] struct {
	env       *runtime.Env
	ws        WatermarkStrategy
	max, sent int64
	n, seen   int64 // records so far; at the last idleness check
	idle      bool
}

func (a *assigner[T]) send() {
	if w := a.ws.watermarkFor(a.max); w > a.sent && a.sent != MaxWatermark {
		a.sent = w
		a.env.EmitWatermark(w)
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
// the minimum over its splits that are not idle: each split's records are in
// order only roughly, so the reader may promise only what its slowest split
// allows, but a split with no record for the strategy's Idleness (a quiet
// partition) stops holding it back, or it would stall every window
// downstream. A reader that
// checkpoints its splits saves each split's watermark (Split) with the
// split's position and gives it back (Restore) to whichever subtask reads
// the split after a restore, at any parallelism: a restored reader's
// watermark is the minimum over its splits' restored watermarks from the
// start, not "none", and a quiet split does not hold every window back
// until its next record. Not safe for concurrent use.
type SplitWatermarks struct {
	ws     WatermarkStrategy
	splits map[string]*splitWM
	out    int64
}

type splitWM struct {
	max  int64
	last time.Time
	// floor is the watermark the split had in the checkpoint it was
	// restored from (math.MinInt64: none): its watermark never goes below.
	floor int64
}

// watermark is the split's own watermark under ws.
func (s *splitWM) watermark(ws WatermarkStrategy) int64 {
	return max(s.floor, ws.watermarkFor(s.max))
}

// NewSplitWatermarks returns the bookkeeping for strategy ws.
func NewSplitWatermarks(ws WatermarkStrategy) *SplitWatermarks {
	return &SplitWatermarks{ws: ws, splits: map[string]*splitWM{}, out: math.MinInt64}
}

// Add starts tracking split (a new or restored split) as of now.
func (w *SplitWatermarks) Add(split string, now time.Time) {
	if _, ok := w.splits[split]; !ok {
		w.splits[split] = &splitWM{max: math.MinInt64, last: now, floor: math.MinInt64}
	}
}

// Restore starts tracking split as of now at watermark wm, the split's
// watermark (Split) saved with its position in the checkpoint the reader
// restored: a restored split holds the reader's watermark at wm until its
// records move it on, instead of at "none". A split already tracked keeps
// the larger of its watermark and wm.
func (w *SplitWatermarks) Restore(split string, wm int64, now time.Time) {
	s, ok := w.splits[split]
	if !ok {
		s = &splitWM{max: math.MinInt64, last: now, floor: math.MinInt64}
		w.splits[split] = s
	}
	s.floor = max(s.floor, wm)
}

// Split is split's watermark (math.MinInt64 while it has none), for a
// reader to save with the split's position in its checkpoint; ok is false
// for a split not tracked.
func (w *SplitWatermarks) Split(split string) (wm int64, ok bool) {
	s, ok := w.splits[split]
	if !ok {
		return math.MinInt64, false
	}
	return s.watermark(w.ws), true
}

// Observe records that split produced a record with event time ts at now.
func (w *SplitWatermarks) Observe(split string, ts int64, now time.Time) {
	s, ok := w.splits[split]
	if !ok {
		s = &splitWM{max: math.MinInt64, floor: math.MinInt64}
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
		lo = min(lo, s.watermark(w.ws))
	}
	if !active {
		return w.out, true
	}
	w.out = max(w.out, lo)
	return w.out, false
}

// A saved watermark is one operator-state item per subtask: a bare varint
// (the watermark), or savedWMFormat followed by the saving subtask's
// key-group range [start, end) as uvarints and the watermark as a varint.
// Operators with timers save the range, so that after a rescale each new
// subtask resumes at the minimum over the old subtasks whose key groups it
// took over; a bare varint (what they saved before, and what a timestamp
// assigner saves) covers every key group. A bare varint never starts with
// savedWMFormat and more bytes: its first byte would end it.
type savedWatermark struct {
	wm         int64
	start, end int
	ranged     bool
}

const savedWMFormat = 1

func (w savedWatermark) encode() []byte {
	if !w.ranged {
		return uvarintframe.AppendVarints(nil, w.wm)
	}
	b := uvarintframe.AppendUvarints([]byte{savedWMFormat}, uint64(w.start), uint64(w.end))
	return uvarintframe.AppendVarints(b, w.wm)
}

var errCorruptWatermark = errors.New("sdk: corrupt saved watermark")

func decodeSavedWatermark(b []byte) (savedWatermark, error) {
	if wm, ok := uvarintframe.DecodeVarint(b); ok {
		return savedWatermark{wm: wm}, nil
	}
	if len(b) < 4 || b[0] != savedWMFormat {
		return savedWatermark{}, errCorruptWatermark
	}
	r := uvarintframe.NewReader(b[1:])
	start := r.Uvarint()
	end := r.Uvarint()
	wm := r.Varint()
	if err := r.Done(); err != nil {
		return savedWatermark{}, fmt.Errorf("%w: %w", errCorruptWatermark, err)
	}
	if start >= end || end > keygroup.MaxLimit {
		return savedWatermark{}, errCorruptWatermark
	}
	return savedWatermark{wm: wm, start: int(start), end: int(end), ranged: true}, nil
}

// restoredWatermark is the watermark an operator that saves a
// savedWatermark resumes at, from the checkpoint its subtask restored: the
// minimum over the saved watermarks of the old subtasks whose key-group
// ranges overlap this subtask's. An item without a range covers every key
// group: at the checkpoint's parallelism the subtask takes its own old
// subtask's, rescaled every old subtask's. ok is false (and wm
// math.MinInt64) when the checkpoint has none for the operator.
func restoredWatermark(env *runtime.Env) (wm int64, ok bool, err error) {
	all, restored := env.RestoredAll()
	if !restored || len(all) == 0 {
		return math.MinInt64, false, nil
	}
	rescaled := env.RestoredParallelism() != env.Parallelism()
	start, end := keygroup.Range(env.Subtask(), env.Parallelism(), env.MaxParallelism())
	lo, found, lowest := int64(math.MaxInt64), false, int64(math.MaxInt64)
	take := func(items [][]byte, unranged bool) error {
		for _, it := range items {
			w, err := decodeSavedWatermark(it)
			if err != nil {
				return fmt.Errorf("state of operator %s: %w", env.UID(), err)
			}
			lowest = min(lowest, w.wm)
			if (w.ranged && w.start < end && start < w.end) || (!w.ranged && unranged) {
				lo, found = min(lo, w.wm), true
			}
		}
		return nil
	}
	if err := take(all, rescaled); err != nil {
		return math.MinInt64, false, err
	}
	if !rescaled && !found {
		// Unranged items of the same parallelism: the subtask's own.
		own, _ := env.Restored()
		if err := take(own, true); err != nil {
			return math.MinInt64, false, err
		}
	}
	if !found {
		// No old subtask covers our key groups (the max parallelism
		// changed): the minimum over all of them is safe.
		lo = lowest
	}
	return lo, true, nil
}
