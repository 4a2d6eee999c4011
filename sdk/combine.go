package sdk

import (
	"fmt"
	"math"

	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// The combiner is Flink's local-global aggregation for WindowAggregate: a
// stateless operator chained in front of the keyed shuffle folds the
// records of each key and pane into a partial accumulator, and the window
// operator merges partials (AggregateFunc.Merge) into its panes instead of
// adding records one by one. Sliding and tumbling windows keep their
// contents per pane, so a partial is exactly what the window operator
// would have built from the same records; the shuffle carries one partial
// per key and pane instead of every record.
//
// Results stay exactly those without it because a partial never reaches
// the window operator after a moment where its records would have made a
// difference there:
//   - A pane is held only while every window containing it is still open
//     at the combiner's watermark (its "due" time, the oldest such window's
//     last instant, is after it). The combiner flushes every pane due by a
//     watermark before it forwards that watermark, and the window
//     operator's watermark is the minimum over its inputs' and never ahead
//     of the combiner's, so a partial arrives before any of its windows
//     fires or drops: its records were neither late nor firing late panes.
//   - A record whose pane is due already (late, or within the allowed
//     lateness) passes through as itself: the window operator then judges
//     it, fires its late pane or sends it to the late side outputs, as
//     before.
//   - Triggers that count records or set processing-time deadlines per
//     record (EarlyEvery, EarlyAfter) and session windows, which merge per
//     record, see every record: no combiner for them.
//   - Checkpoints: the combiner emits everything before its snapshot (the
//     barrier follows), so it holds nothing across one; it saves only its
//     watermark, which on restore keeps records judged as before.
//   - When its output goes idle the combiner emits everything, since the
//     consumers' watermark then moves on without it.
//   - It holds at most combineMaxEntries partials: past that it emits all.
//   - While it holds partials it reports them (OpRun.Held), so the task
//     flushes on the buffer timeout and a watermark sent at a flush
//     (AssignTimestamps') reaches it even when nothing else is output.
//
// Merge must agree with Add (merging the fold of some records into an
// accumulator equals adding them to it): sliding windows rely on it
// already. NoCombiner opts a window out (e.g. a floating-point sum that must
// add in record order).

// combineMaxEntries bounds the partials one combiner subtask holds.
const combineMaxEntries = 1 << 16

// combineSpareMax bounds the emptied panes a combiner keeps for reuse, and
// combineSpareKeys the keys a pane may have held to be kept: a cleared map
// keeps its size, and clearing it again costs that size.
const (
	combineSpareMax  = 4
	combineSpareKeys = 4096
)

// partial is what crosses the shuffle of a combined window: a raw record,
// or the partial accumulator of key Key's pane.
type partial[K comparable, T, A any] struct {
	Key  K
	Raw  bool
	V    T // Raw
	Pane TimeWindow
	Acc  A
}

// partialCodec frames a partial: a tag byte, then the record, or the key,
// the pane and the accumulator.
type partialCodec[K comparable, T, A any] struct {
	k Codec[K]
	v Codec[T]
	a Codec[A]
}

func (c partialCodec[K, T, A]) Append(dst []byte, p partial[K, T, A]) []byte {
	if p.Raw {
		return c.v.Append(append(dst, 0), p.V)
	}
	// The key is framed (its codec need not be self-delimiting): encoded
	// in place behind a one-byte length, moved up when longer than that.
	dst = append(dst, 1, 0)
	n := len(dst)
	dst = c.k.Append(dst, p.Key)
	if l := len(dst) - n; l < 0x80 {
		dst[n-1] = byte(l)
	} else {
		key := append([]byte(nil), dst[n:]...)
		dst = uvarintframe.AppendBytes(dst[:n-1], key)
	}
	dst = uvarintframe.AppendVarints(dst, p.Pane.Start, p.Pane.End)
	return c.a.Append(dst, p.Acc)
}

func (c partialCodec[K, T, A]) Decode(b []byte) (partial[K, T, A], error) {
	var p partial[K, T, A]
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty combined record", ErrDecode)
	}
	var err error
	if b[0] == 0 {
		p.Raw = true
		p.V, err = c.v.Decode(b[1:])
		return p, err
	}
	r := uvarintframe.NewReader(b[1:])
	key := r.Bytes()
	var w [2]int64
	r.Varints(w[:])
	rest := r.Rest()
	if err := r.Err(); err != nil {
		return p, fmt.Errorf("%w: combined record: %w", ErrDecode, err)
	}
	if p.Key, err = c.k.Decode(key); err != nil {
		return p, err
	}
	p.Pane = TimeWindow{w[0], w[1]}
	p.Acc, err = c.a.Decode(rest)
	return p, err
}

// noCombiner is the WindowOption NoCombiner.
type noCombiner struct{}

func (noCombiner) applyWindow(s *triggerSpec) { s.noCombiner = true }

// NoCombiner keeps a WindowAggregate from pre-aggregating before the
// shuffle: every record crosses it and is added in arrival order. Use it
// when AggregateFunc.Merge is not exactly Add's equal (say a float sum
// whose rounding must not change).
func NoCombiner() WindowOption { return noCombiner{} }

// combines says whether WindowAggregate pre-aggregates w's records (see the
// top of this file).
func (w WindowedStream[K, T]) combines(hasMerge bool) bool {
	return hasMerge && !w.spec.noCombiner && w.a.kind != sessionWindows &&
		w.spec.earlyCount == 0 && w.spec.earlyAfter == 0
}

// combine adds the combiner in front of w's shuffle and returns the keyed
// stream of its partials, for the window operator to read instead of w.k.
// It runs in the subtasks of its input and chains behind it.
func combine[K comparable, T, A any](w WindowedStream[K, T], ac Codec[A], add func(acc A, ok bool, v T) A) KeyedStream[K, partial[K, T, A]] {
	k := w.k
	s := k.s
	codec := partialCodec[K, T, A]{k: k.keyCodec, v: s.codec, a: ac}
	cfg := opConfig{name: "Combine", parallelism: s.n.parallelism, codec: Codec[partial[K, T, A]](codec)}
	n, _ := addNode[partial[K, T, A]](s.p, "combine", "Combine", cfg, true)
	s.p.implicit++
	connect(s, n)
	n.NewOp = func(env *runtime.Env, emit any) (runtime.OpRun, error) {
		return openCombiner(env, w, add, emit.(func(partial[K, T, A])))
	}
	out := newStream[partial[K, T, A]](s.p, n, codec)
	return KeyedStream[K, partial[K, T, A]]{s: out, key: func(p partial[K, T, A]) K { return p.Key }, keyCodec: k.keyCodec}
}

// heldPane is the partials a combiner holds of one pane, one per key, in
// the order their keys first came: a key's partial is found through a map
// of indexes, so adding to it allocates nothing, and the pane is emitted
// and recycled as a whole when it falls due.
type heldPane[K comparable, A any] struct {
	pane TimeWindow
	due  int64 // the last instant of the oldest window holding the pane
	at   map[K]int
	keys []K
	accs []A
	// lastIdx is the index of the key last added to.
	lastIdx int
}

type combiner[K comparable, T, A any] struct {
	env  *runtime.Env
	w    WindowedStream[K, T]
	add  func(acc A, ok bool, v T) A
	emit func(partial[K, T, A])
	// last is the held pane of the previous record (nil: none, or
	// flushed since).
	last *heldPane[K, A]
	// panes are the panes held, usually few (those of the windows still
	// open at the watermark), in the order they came, which flush keeps;
	// byPane finds them; spare holds emptied ones for reuse.
	panes  []*heldPane[K, A]
	byPane map[TimeWindow]*heldPane[K, A]
	spare  []*heldPane[K, A]
	n      int // partials held, over every pane
	wm     int64
	minDue int64 // no held pane is due before it
}

func openCombiner[K comparable, T, A any](env *runtime.Env, w WindowedStream[K, T], add func(acc A, ok bool, v T) A, emit func(partial[K, T, A])) (runtime.OpRun, error) {
	c := &combiner[K, T, A]{env: env, w: w, add: add, emit: emit, byPane: map[TimeWindow]*heldPane[K, A]{}, minDue: math.MaxInt64}
	var err error
	if c.wm, _, err = restoredWatermark(env); err != nil {
		return runtime.OpRun{}, err
	}
	restored := c.wm
	return runtime.OpRun{
		In: c.record,
		Watermark: func(wm int64) {
			if wm <= c.wm {
				return
			}
			c.wm = wm
			if wm >= c.minDue {
				c.flush(wm)
			}
			env.EmitWatermark(wm)
		},
		Idle:   func() { c.flush(math.MaxInt64) },
		Held:   func() bool { return c.n > 0 },
		Finish: func() error { c.flush(math.MaxInt64); return nil },
		Snapshot: func(int64) ([][]byte, error) {
			// Emitted before the barrier, which the task sends after the
			// snapshot: the window operator's checkpoint has them.
			c.flush(math.MaxInt64)
			return [][]byte{savedWatermark{wm: c.wm}.encode()}, nil
		},
		RestoredWatermark: func() int64 { return restored },
	}, nil
}

func (c *combiner[K, T, A]) record(v T) {
	key := c.w.k.key(v)
	ts := c.w.k.s.ts(v)
	// Records come roughly in time order and keys repeat (a hot
	// auction's bids), so the previous record's pane and key are tried
	// before the pane arithmetic and the maps: on q7 those were half of
	// the combiner's CPU.
	hp := c.last
	if hp == nil || ts < hp.pane.Start || ts >= hp.pane.End {
		if hp = c.paneFor(key, v, ts); hp == nil {
			return
		}
		c.last = hp
	}
	i := hp.lastIdx
	if i >= len(hp.keys) || hp.keys[i] != key {
		var ok bool
		if i, ok = hp.at[key]; !ok {
			c.addKey(hp, key, v)
			return
		}
		hp.lastIdx = i
	}
	hp.accs[i] = c.add(hp.accs[i], true, v)
}

// paneFor is the held pane of the record v at ts, made if need be, or nil
// when v is not held: it went out raw (its pane is due) or falls in a gap
// between hopping windows.
func (c *combiner[K, T, A]) paneFor(key K, v T, ts int64) *heldPane[K, A] {
	a := c.w.a
	p := a.paneOf(ts)
	// A held pane is not due yet: flush emits a pane once the watermark
	// reaches its due.
	if hp := c.byPane[p]; hp != nil {
		return hp
	}
	due := int64(math.MaxInt64)
	a.windowsOf(p, func(w TimeWindow) bool { due = w.maxTimestamp(); return true })
	if due == math.MaxInt64 && a.kind != globalWindows {
		return nil // in the gap between hopping windows: the window operator drops it too
	}
	if due <= c.wm {
		c.emit(partial[K, T, A]{Key: key, Raw: true, V: v})
		return nil
	}
	return c.holdPane(p, due)
}

// addKey starts key's partial in hp with v, first emitting everything
// held if the combiner holds its most.
func (c *combiner[K, T, A]) addKey(hp *heldPane[K, A], key K, v T) {
	if c.n >= combineMaxEntries {
		p, due := hp.pane, hp.due
		c.flush(math.MaxInt64)
		hp = c.holdPane(p, due)
		c.last = hp
	}
	var zero A
	hp.lastIdx = len(hp.keys)
	hp.at[key] = hp.lastIdx
	hp.keys = append(hp.keys, key)
	hp.accs = append(hp.accs, c.add(zero, false, v))
	c.n++
}

// holdPane starts holding partials of pane p, due at due.
func (c *combiner[K, T, A]) holdPane(p TimeWindow, due int64) *heldPane[K, A] {
	var hp *heldPane[K, A]
	if n := len(c.spare); n > 0 {
		hp, c.spare = c.spare[n-1], c.spare[:n-1]
	} else {
		hp = &heldPane[K, A]{at: map[K]int{}}
	}
	hp.pane, hp.due = p, due
	c.panes = append(c.panes, hp)
	c.byPane[p] = hp
	c.minDue = min(c.minDue, due)
	return hp
}

// flush emits the partials due by wm (all, for math.MaxInt64).
func (c *combiner[K, T, A]) flush(wm int64) {
	next := int64(math.MaxInt64)
	kept := c.panes[:0]
	for _, hp := range c.panes {
		if hp.due > wm {
			next = min(next, hp.due)
			kept = append(kept, hp)
			continue
		}
		for i, key := range hp.keys {
			c.emit(partial[K, T, A]{Key: key, Pane: hp.pane, Acc: hp.accs[i]})
		}
		c.n -= len(hp.keys)
		delete(c.byPane, hp.pane)
		if len(c.spare) < combineSpareMax && len(hp.keys) <= combineSpareKeys {
			clear(hp.at)
			clear(hp.keys)
			clear(hp.accs)
			hp.keys, hp.accs, hp.lastIdx = hp.keys[:0], hp.accs[:0], 0
			c.spare = append(c.spare, hp)
		}
	}
	clear(c.panes[len(kept):])
	c.panes = kept
	c.minDue = next
	c.last = nil
}

// nameCombiner gives combiner c the uid of the window operator win it
// feeds, suffixed: it moves with the window's uid, not with positions.
func nameCombiner(p *Pipeline, c, win *node) {
	uid := win.UID + ".combine"
	if len(uid) > 128 || p.uids[uid] != nil {
		return // keeps its position-derived one
	}
	delete(p.uids, c.UID)
	c.UID = uid
	p.uids[uid] = c
}
