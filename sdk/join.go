package sdk

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/weir-run/weir/internal/uvarintframe"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// Two-input operators. Both inputs are keyed by the same key type, so the
// records of a key from either input meet in one subtask, which keeps their
// shared keyed state and timers. The operator's watermark is the minimum
// over the channels of both inputs, and a checkpoint barrier aligns over
// them all, as for any operator with several input channels.

// ConnectedStreams are two keyed streams with one key type, ready for a
// two-input operator (KeyedCoProcess).
type ConnectedStreams[K comparable, A, B any] struct {
	a KeyedStream[K, A]
	b KeyedStream[K, B]
}

// Connect pairs a and b for KeyedCoProcess.
func Connect[K comparable, A, B any](a KeyedStream[K, A], b KeyedStream[K, B]) ConnectedStreams[K, A, B] {
	return ConnectedStreams[K, A, B]{a: a, b: b}
}

// CoProcessFuncs are the callbacks of a keyed co-process function.
type CoProcessFuncs[K comparable, A, B, U any] struct {
	// First handles a record of the first input, Second one of the second.
	First  func(key K, v A, emit func(U)) error
	Second func(key K, v B, emit func(U)) error
	// Timer handles a timer of key firing at ts (unix ms) in domain d.
	Timer func(key K, ts int64, d TimeDomain, emit func(U)) error
}

// KeyedCoProcess processes the two connected streams with shared keyed state
// and timers (Flink's KeyedCoProcessFunction): open declares state on the
// store, keeps the Timers and returns the callbacks. Event-time timers fire
// when the watermark of both inputs passes them.
func KeyedCoProcess[K comparable, A, B, U any](c ConnectedStreams[K, A, B], open func(s *StateStore, t Timers) (CoProcessFuncs[K, A, B, U], error), opts ...Option) Stream[U] {
	return keyedTwoInput(c.a, c.b, "coprocess", "KeyedCoProcess", opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		var fns CoProcessFuncs[K, A, B, U]
		run, store, err := openTimerOp(env, c.a.keyCodec, emit, func(s *StateStore, t Timers) (timerFunc[K, U], error) {
			var err error
			fns, err = open(s, t)
			return fns.Timer, err
		})
		if err != nil {
			return runtime.OpRun{}, err
		}
		if fns.First == nil || fns.Second == nil {
			return runtime.OpRun{}, errors.New("sdk: KeyedCoProcess: First and Second are both required")
		}
		run.In = keyedIn(env, store, c.a, fns.First, emit)
		run.In2 = keyedIn(env, store, c.b, fns.Second, emit)
		return run, nil
	})
}

// keyedTwoInput adds a keyed operator whose first input is a and second b,
// both HASH-partitioned by their key.
func keyedTwoInput[K comparable, A, B, U any](a KeyedStream[K, A], b KeyedStream[K, B], kind, name string, opts []Option, newRun func(*runtime.Env, func(U)) (runtime.OpRun, error)) Stream[U] {
	out := keyedTransform(a, kind, name, opts, newRun)
	if b.s.p != a.s.p {
		a.s.p.fail(fmt.Errorf("sdk: %s: the two inputs belong to different pipelines", name))
		return out
	}
	connect(b.s, out.n)
	l := out.n.inputs[1]
	l.input = 1
	l.part = weirv1.Partitioning_PARTITIONING_HASH
	l.keyHash = func() any { return b.keyHasher() }
	return out
}

// eventTimeOf is the event-time function of a keyed stream, failing the
// pipeline when it has none.
func eventTimeOf[K comparable, T any](k KeyedStream[K, T], name string) func(T) int64 {
	if k.s.ts == nil {
		k.s.p.fail(fmt.Errorf("sdk: %s: an input has no event time: use AssignTimestamps or WithTimestamps before KeyBy", name))
		return func(T) int64 { return 0 }
	}
	return k.s.ts
}

// joinRecord is a record of either input of a window join, as the window
// operator's one input type.
type joinRecord[A, B any] struct {
	a      A
	b      B
	second bool
	ts     int64
}

// joinBuf is a window's contents in a window join: each input's records.
type joinBuf[A, B any] struct {
	first  []A
	second []B
}

// WindowJoin joins a and b per key and window: when a window fires (on
// time, when the watermark of both inputs passes its end), join is called
// with every pair of a record of a and a record of b that the window holds
// for the key (Flink's window join: an inner join). Tumbling, sliding and
// session windows work; sessions merge over the records of both inputs.
// Records for windows that already fired are dropped.
func WindowJoin[K comparable, A, B, U any](a KeyedStream[K, A], b KeyedStream[K, B], assigner WindowAssigner,
	join func(key K, w TimeWindow, a A, b B) U, opts ...Option) Stream[U] {
	tsA, tsB := eventTimeOf(a, "WindowJoin"), eventTimeOf(b, "WindowJoin")
	if err := assigner.validate(); err != nil {
		a.s.p.fail(fmt.Errorf("sdk: WindowJoin: %w", err))
	}
	// One window operator over the union of both inputs: the windows,
	// trigger and timers are the window operator's own.
	type rec = joinRecord[A, B]
	w := WindowedStream[K, rec]{a: assigner, k: KeyedStream[K, rec]{
		s: Stream[rec]{p: a.s.p, ts: func(r rec) int64 { return r.ts }},
		key: func(r rec) K {
			if r.second {
				return b.key(r.b)
			}
			return a.key(r.a)
		},
		keyCodec: a.keyCodec,
	}}
	bc := joinBufCodec[A, B]{a: a.s.codec, b: b.s.codec}
	add := func(acc joinBuf[A, B], _ bool, r rec) joinBuf[A, B] {
		if r.second {
			acc.second = append(acc.second, r.b)
		} else {
			acc.first = append(acc.first, r.a)
		}
		return acc
	}
	merge := func(x, y joinBuf[A, B]) joinBuf[A, B] {
		return joinBuf[A, B]{first: append(x.first, y.first...), second: append(x.second, y.second...)}
	}
	result := func(key K, info WindowInfo, acc joinBuf[A, B], emit func(U)) {
		win := TimeWindow{info.Start, info.End}
		for _, x := range acc.first {
			for _, y := range acc.second {
				emit(join(key, win, x, y))
			}
		}
	}
	return keyedTwoInput(a, b, "windowjoin", "WindowJoin", opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		op, run, err := openWindow[K, rec, joinBuf[A, B], U](env, w, bc, add, merge, result, nil, nil, emit)
		if err != nil {
			return runtime.OpRun{}, err
		}
		run.In = func(v A) { op.record(rec{a: v, ts: tsA(v)}) }
		run.In2 = func(v B) { op.record(rec{b: v, second: true, ts: tsB(v)}) }
		return run, nil
	})
}

// joinBufCodec encodes a window join's contents with the inputs' codecs:
// the count of first-input records, then every record length-prefixed.
type joinBufCodec[A, B any] struct {
	a Codec[A]
	b Codec[B]
}

func (c joinBufCodec[A, B]) Append(dst []byte, j joinBuf[A, B]) []byte {
	dst = uvarintframe.AppendUvarint(dst, uint64(len(j.first)))
	var scratch []byte
	for _, x := range j.first {
		scratch = c.a.Append(scratch[:0], x)
		dst = uvarintframe.AppendBytes(dst, scratch)
	}
	for _, y := range j.second {
		scratch = c.b.Append(scratch[:0], y)
		dst = uvarintframe.AppendBytes(dst, scratch)
	}
	return dst
}

var errCorruptJoin = errors.New("sdk: corrupt join state")

func (c joinBufCodec[A, B]) Decode(b []byte) (joinBuf[A, B], error) {
	var j joinBuf[A, B]
	r := uvarintframe.NewReader(b)
	n := r.Uvarint()
	for r.Len() > 0 {
		it := r.Frame()
		if r.Err() != nil {
			break
		}
		if uint64(len(j.first)) < n {
			x, err := c.a.Decode(it)
			if err != nil {
				return j, err
			}
			j.first = append(j.first, x)
			continue
		}
		y, err := c.b.Decode(it)
		if err != nil {
			return j, err
		}
		j.second = append(j.second, y)
	}
	if err := r.Err(); err != nil {
		return joinBuf[A, B]{}, fmt.Errorf("%w: %w", errCorruptJoin, err)
	}
	if uint64(len(j.first)) < n {
		return joinBuf[A, B]{}, errCorruptJoin
	}
	return j, nil
}

// IntervalJoin joins every record x of a with every record y of b of the
// same key whose event times satisfy x.ts + lower <= y.ts <= x.ts + upper
// (Flink's interval join). Each input's records are kept in keyed state
// only until the watermark makes a match impossible: x until it passes
// x.ts + upper, y until it passes y.ts - lower. Records not newer than the
// watermark are dropped as late.
func IntervalJoin[K comparable, A, B, U any](a KeyedStream[K, A], b KeyedStream[K, B], lower, upper time.Duration,
	join func(key K, a A, b B) U, opts ...Option) Stream[U] {
	return intervalJoinOp(a, b, lower, upper, join, nil, "IntervalJoin", opts)
}

// LeftOuterIntervalJoin is IntervalJoin that also emits noMatch(key, x)
// for every record x of a that matched no record of b: once, when the
// watermark reaches x.ts + upper (from then on every record of b that
// could match x is late), before that watermark goes downstream, or at
// once when it is there already. A record of a dropped as late is dropped
// from both. Its buffered records carry whether they matched, so its state
// is not an IntervalJoin's: a savepoint of one does not restore into the
// other under the same uid.
func LeftOuterIntervalJoin[K comparable, A, B, U any](a KeyedStream[K, A], b KeyedStream[K, B], lower, upper time.Duration,
	join func(key K, a A, b B) U, noMatch func(key K, a A) U, opts ...Option) Stream[U] {
	if join == nil || noMatch == nil {
		a.s.p.fail(errors.New("sdk: LeftOuterIntervalJoin: join and noMatch are both required"))
	}
	return intervalJoinOp(a, b, lower, upper, join, noMatch, "LeftOuterIntervalJoin", opts)
}

// IntervalAntiJoin emits noMatch(key, x) for every record x of a that no
// record y of b of its key matches (x.ts + lower <= y.ts <= x.ts + upper),
// once the watermark reaches x.ts + upper: LeftOuterIntervalJoin without
// the pairs.
func IntervalAntiJoin[K comparable, A, B, U any](a KeyedStream[K, A], b KeyedStream[K, B], lower, upper time.Duration,
	noMatch func(key K, a A) U, opts ...Option) Stream[U] {
	if noMatch == nil {
		a.s.p.fail(errors.New("sdk: IntervalAntiJoin: noMatch is required"))
	}
	return intervalJoinOp(a, b, lower, upper, nil, noMatch, "IntervalAntiJoin", opts)
}

// intervalJoinOp is the operator of the interval joins: pairs go to join
// (none when nil), left records without a match to noMatch (an inner join
// when nil).
func intervalJoinOp[K comparable, A, B, U any](a KeyedStream[K, A], b KeyedStream[K, B], lower, upper time.Duration,
	join func(key K, a A, b B) U, noMatch func(key K, a A) U, name string, opts []Option) Stream[U] {
	tsA, tsB := eventTimeOf(a, name), eventTimeOf(b, name)
	lo, hi := lower.Milliseconds(), upper.Milliseconds()
	if lo > hi {
		a.s.p.fail(fmt.Errorf("sdk: %s: lower bound %v is above upper bound %v", name, lower, upper))
	}
	return keyedTwoInput(a, b, "intervaljoin", name, opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		store := newStateStore(env)
		timers, err := newTimerService(env, store)
		if err != nil {
			return runtime.OpRun{}, err
		}
		bufType := stateType("join buffer", a.s.codec) + ", " + stateType("join buffer", b.s.codec)
		if noMatch != nil {
			bufType += " with match flags"
		}
		o := &intervalJoin{store: store, timers: timers, buf: newHandle(store, "\x00buffer", bufType, nil),
			cleanupAfter: [2]int64{hi, -lo}}
		if noMatch != nil {
			o.unmatched = func(rec []byte) error {
				x, err := a.s.codec.Decode(rec)
				if err == nil {
					emit(noMatch(a.key(x), x))
				}
				return err
			}
		}
		run := timerRun(env, timers, func(_ TimeDomain, at int64, ns []byte) error {
			if len(ns) != 1 || ns[0] > 1 {
				return errCorruptJoin
			}
			return o.expire(ns[0], at)
		})
		var enc []byte
		run.In = func(x A) {
			key := a.key(x)
			scopeTo(store, a.keyCodec, key)
			ts := tsA(x)
			enc = a.s.codec.Append(enc[:0], x)
			err := o.record(0, ts, enc, ts+lo, ts+hi, func(rec []byte) error {
				if join == nil {
					return nil
				}
				y, err := b.s.codec.Decode(rec)
				if err == nil {
					emit(join(key, x, y))
				}
				return err
			})
			if err != nil {
				env.Fail(err)
			}
		}
		run.In2 = func(y B) {
			key := b.key(y)
			scopeTo(store, b.keyCodec, key)
			ts := tsB(y)
			enc = b.s.codec.Append(enc[:0], y)
			err := o.record(1, ts, enc, ts-hi, ts-lo, func(rec []byte) error {
				if join == nil {
					return nil
				}
				x, err := a.s.codec.Decode(rec)
				if err == nil {
					emit(join(key, x, y))
				}
				return err
			})
			if err != nil {
				env.Fail(err)
			}
		}
		return run, nil
	})
}

// intervalJoin is the untyped core of the interval joins: per key and
// input ("side" 0 or 1), a buffer of (event time, encoded record) in keyed
// state, and per side and cleanup time an event-time timer that expires
// them. In a left-outer join (unmatched set) each buffered record of side
// 0 starts with a byte saying whether it matched; unmatched gets the ones
// that expire without.
type intervalJoin struct {
	store        *StateStore
	timers       *timerService
	buf          *stateHandle
	cleanupAfter [2]int64 // a side's record at ts is dropped once the watermark passes ts+cleanupAfter
	unmatched    func(rec []byte) error
	scratch      []byte
	ns           [1]byte
}

// flagged says whether side's buffered records carry a match flag.
func (o *intervalJoin) flagged(side byte) bool { return side == 0 && o.unmatched != nil }

// record handles a record of side at ts (encoded enc) for the store's key:
// match calls with every buffered record of the other side in [from, to],
// then the record is buffered unless nothing can match it any more (then,
// in a left-outer join, a left record that matched nothing is unmatched).
func (o *intervalJoin) record(side byte, ts int64, enc []byte, from, to int64, match func(rec []byte) error) error {
	wm := o.timers.wm
	if ts <= wm {
		return nil // late
	}
	matched, err := o.matchBuffered(1-side, from, to, match)
	if err != nil {
		return err
	}
	cleanup := ts + o.cleanupAfter[side]
	if cleanup <= wm {
		if o.flagged(side) && !matched {
			return o.unmatched(enc)
		}
		return nil
	}
	old, _, err := o.buf.get(o.side(side))
	if err != nil {
		return err
	}
	o.scratch = append(o.scratch[:0], old...)
	if o.flagged(side) {
		o.scratch = appendFlagged(o.scratch, ts, matched, enc)
	} else {
		o.scratch = appendBuffered(o.scratch, ts, enc)
	}
	if err := o.buf.put(o.side(side), func(dst []byte) []byte { return append(dst, o.scratch...) }); err != nil {
		return err
	}
	return o.timers.register(EventTime, cleanup, o.side(side))
}

func (o *intervalJoin) side(s byte) []byte {
	o.ns[0] = s
	return o.ns[:]
}

// matchBuffered calls match with the buffered records of side for the
// store's key whose time is in [from, to], and reports whether there were
// any. Flagged records it matches for the first time are marked matched.
func (o *intervalJoin) matchBuffered(side byte, from, to int64, match func(rec []byte) error) (bool, error) {
	b, ok, err := o.buf.get(o.side(side))
	if err != nil || !ok {
		return false, err
	}
	// match emits downstream: keep nothing the backend owns across it.
	b = append([]byte(nil), b...)
	flagged, matched, marked := o.flagged(side), false, false
	err = decodeBuffered(b, func(t int64, rec []byte) error {
		if t < from || t > to {
			return nil
		}
		matched = true
		if !flagged {
			return match(rec)
		}
		if len(rec) == 0 || rec[0] > 1 {
			return errCorruptJoin
		}
		if rec[0] == 0 {
			rec[0], marked = 1, true // b is our copy: marks it
		}
		return match(rec[1:])
	})
	if err != nil || !marked {
		return matched, err
	}
	return matched, o.buf.put(o.side(side), func(dst []byte) []byte { return append(dst, b...) })
}

// expire drops side's records whose cleanup time the watermark reached at;
// in a left-outer join the left ones that never matched go to unmatched.
func (o *intervalJoin) expire(side byte, at int64) error {
	b, ok, err := o.buf.get(o.side(side))
	if err != nil || !ok {
		return err
	}
	keep := o.scratch[:0]
	var unmatched [][]byte
	if err := decodeBuffered(b, func(ts int64, rec []byte) error {
		if ts+o.cleanupAfter[side] > at {
			keep = appendBuffered(keep, ts, rec)
			return nil
		}
		if o.flagged(side) {
			if len(rec) == 0 || rec[0] > 1 {
				return errCorruptJoin
			}
			if rec[0] == 0 {
				unmatched = append(unmatched, append([]byte(nil), rec[1:]...))
			}
		}
		return nil
	}); err != nil {
		return err
	}
	o.scratch = keep
	if len(keep) == 0 {
		err = o.buf.del(o.side(side))
	} else {
		err = o.buf.put(o.side(side), func(dst []byte) []byte { return append(dst, keep...) })
	}
	for _, rec := range unmatched {
		if err != nil {
			break
		}
		err = o.unmatched(rec)
	}
	return err
}

// appendFlagged frames one buffered record with its match flag.
func appendFlagged(dst []byte, ts int64, matched bool, rec []byte) []byte {
	flag := byte(0)
	if matched {
		flag = 1
	}
	dst = uvarintframe.AppendUvarint(dst, uint64(uvarintframe.VarintLen(ts)+1+len(rec)))
	return append(append(uvarintframe.AppendVarint(dst, ts), flag), rec...)
}

// appendBuffered frames one buffered record: its length, event time, bytes.
func appendBuffered(dst []byte, ts int64, rec []byte) []byte {
	dst = uvarintframe.AppendUvarint(dst, uint64(uvarintframe.VarintLen(ts)+len(rec)))
	return append(uvarintframe.AppendVarint(dst, ts), rec...)
}

// decodeBuffered visits the records appendBuffered framed.
func decodeBuffered(b []byte, fn func(ts int64, rec []byte) error) error {
	var item uvarintframe.Reader
	for r := uvarintframe.NewReader(b); r.Len() > 0; {
		item.Reset(r.Frame())
		ts := item.Varint()
		rec := item.Rest()
		if err := cmp.Or(r.Err(), item.Err()); err != nil {
			return fmt.Errorf("%w: %w", errCorruptJoin, err)
		}
		if err := fn(ts, rec); err != nil {
			return err
		}
	}
	return nil
}
