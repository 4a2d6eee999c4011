package sdk

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/weir-run/weir/internal/keygroup"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// TimeDomain says which clock a timer follows.
type TimeDomain uint8

const (
	// EventTime timers fire when the operator's watermark reaches them.
	EventTime TimeDomain = iota
	// ProcessingTime timers fire when the wall clock reaches them.
	ProcessingTime
)

func (d TimeDomain) String() string {
	if d == ProcessingTime {
		return "processing-time"
	}
	return "event-time"
}

// timerService keeps an operator's timers. A timer is (domain, time, key,
// namespace); registering it twice keeps one. The timers live in memory, in
// buckets by firing time (timerQueue), and are keyed-state entries in the
// backend so that they are in checkpoints, move with their key group and
// are restored: the backend learns of them when the operator snapshots
// (writeBack), so a timer set and fired between two checkpoints never
// touches it.
type timerService struct {
	env    *runtime.Env
	store  *StateStore
	h      *stateHandle
	queues [2]timerQueue
	// dirty lists the timers the backend does not know as they are: set
	// and not stored, or gone and stored.
	dirty []*timer
	wm    int64
	// restored is the watermark restored from the checkpoint
	// (math.MinInt64: none).
	restored int64
	buf, ns  []byte
	// spare holds fired timers nothing refers to any more (not listed
	// dirty, out of their bucket and key), for set to reuse: a window's
	// firing sets its successor's timer, and q5 spent 4% of its CPU
	// allocating them. At most spareMax, cleared, so that a burst of
	// firings keeps neither memory nor keys alive.
	spare []*timer
	nss   map[string]string // see nsString
}

// timerSlot is a timer of a given key.
type timerSlot struct {
	d  TimeDomain
	ts int64
	ns string
}

func (t *timer) slot() timerSlot { return t.timerSlot }

// timer is a timer and what the backend knows of it: cellPresent while it
// is set (not fired nor deleted), cellStored when the backend holds it,
// cellDirty while it is listed in timerService.dirty.
type timer struct {
	k *keyRef
	timerSlot
	// ord is the first 16 bytes of the timer's sort key (see
	// compareTimers), zero-padded, as two big-endian numbers: most
	// comparisons end there.
	ord   [2]uint64
	flags cellFlags
	di    int // index in the dirty list while cellDirty
}

// spareMax bounds timerService.spare.
const spareMax = 4096

// nsString returns ns as a string, shared by the timers of every key with
// that namespace (a window's: each key's timer of a window would allocate
// the same bytes again). The strings are forgotten by the thousand.
func (s *timerService) nsString(ns []byte) string {
	if str, ok := s.nss[string(ns)]; ok {
		return str
	}
	if len(s.nss) >= 1024 {
		clear(s.nss)
	}
	str := string(ns)
	s.nss[str] = str
	return str
}

// newTimer makes timer (k, slot) with its ord, in t when given.
func newTimer(k *keyRef, slot timerSlot, flags cellFlags, t *timer) *timer {
	if t == nil {
		t = new(timer)
	}
	*t = timer{k: k, timerSlot: slot, flags: flags}
	var b [32]byte
	sk := binary.AppendUvarint(b[:0], uint64(len(k.enc)))
	sk = append(sk, k.enc[:min(len(k.enc), 16)]...)
	sk = append(sk, slot.ns[:min(len(slot.ns), 16)]...)
	var pad [16]byte
	copy(pad[:], sk)
	t.ord = [2]uint64{binary.BigEndian.Uint64(pad[:8]), binary.BigEndian.Uint64(pad[8:])}
	return t
}

func (t *timer) dirtyIndex() *int { return &t.di }

// compareTimers orders the timers of one bucket as their entries sort in
// the backend within a key group: by the length-prefixed key, then the
// namespace. Timers fire in (time, that order), whatever order they were
// set in. That is the order of the concatenation of both (a length-prefixed
// key is a prefix of no other), so the zero-padded first bytes of it (ord)
// decide unless they are equal: padding with the least byte keeps the
// order.
func compareTimers(a, b *timer) int {
	if c := cmp.Compare(a.ord[0], b.ord[0]); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ord[1], b.ord[1]); c != 0 {
		return c
	}
	if la, lb := len(a.k.enc), len(b.k.enc); la != lb {
		var x, y [binary.MaxVarintLen64]byte
		return bytes.Compare(binary.AppendUvarint(x[:0], uint64(la)), binary.AppendUvarint(y[:0], uint64(lb)))
	}
	if c := strings.Compare(a.k.enc, b.k.enc); c != 0 {
		return c
	}
	return strings.Compare(a.ns, b.ns)
}

// timerQueue holds one domain's timers in buckets by time, and the
// buckets in a min-heap by time: setting a timer costs a map lookup and an
// append, most firings no heap operation at all (a window's timers of
// every key share its end), and the heap has one entry per time, not per
// timer. A bucket is sorted when it starts firing; a timer set in it while
// it fires is inserted in order.
type timerQueue struct {
	buckets map[int64]*timerBucket
	times   []timeEntry // the heap
	scratch []*timer    // room for sorting a bucket (sortTimers)
}

// timeEntry is a heap entry. It holds its bucket's time by value, so
// sifting compares within the heap's own array: when every timer has a
// time of its own (q4's auctions), a heap of bucket pointers missed the
// cache at every level, and popping it was a tenth of q4's CPU at p=2.
type timeEntry struct {
	ts int64
	b  *timerBucket
}

type timerBucket struct {
	ts     int64
	timers []*timer // from next on: not fired yet (some may be deleted)
	next   int
	live   int
	sorted bool
}

func (q *timerQueue) add(t *timer) {
	if q.buckets == nil {
		q.buckets = map[int64]*timerBucket{}
	}
	b := q.buckets[t.ts]
	if b == nil {
		b = &timerBucket{ts: t.ts}
		q.buckets[t.ts] = b
		q.pushTime(b)
	}
	b.live++
	if !b.sorted {
		b.timers = append(b.timers, t)
		return
	}
	rest := b.timers[b.next:]
	i, _ := slices.BinarySearchFunc(rest, t, compareTimers)
	b.timers = slices.Insert(b.timers, b.next+i, t)
}

// remove takes a timer no longer set out of its bucket's count; the bucket
// forgets it when it fires, or sooner when deleted timers pile up.
func (q *timerQueue) remove(t *timer) {
	b := q.buckets[t.ts]
	b.live--
	if b.live == 0 {
		clear(b.timers)
		b.timers, b.next = b.timers[:0], 0
		return
	}
	if n := len(b.timers) - b.next; n > 16 && n > 2*b.live {
		keep := b.timers[:0]
		for _, x := range b.timers[b.next:] {
			if x.flags&cellPresent != 0 {
				keep = append(keep, x)
			}
		}
		clear(b.timers[len(keep):])
		b.timers, b.next = keep, 0
	}
}

// first is the earliest bucket with timers set, if any.
func (q *timerQueue) first() *timerBucket {
	for len(q.times) > 0 {
		b := q.times[0].b
		if b.live > 0 {
			return b
		}
		delete(q.buckets, b.ts)
		q.popTime()
	}
	return nil
}

// pop takes b's next timer in firing order; scratch is room for sorting.
func (b *timerBucket) pop(scratch *[]*timer) *timer {
	if !b.sorted {
		*scratch = sortTimers(b.timers, *scratch)
		if cap(*scratch) > scratchMax {
			*scratch = nil // one huge bucket does not keep its room
		}
		b.sorted = true
	}
	for {
		t := b.timers[b.next]
		b.timers[b.next] = nil
		b.next++
		if t.flags&cellPresent != 0 {
			return t
		}
	}
}

// scratchMax bounds the room for sorting a timer queue keeps.
const scratchMax = 1 << 16

// radixMin is the number of timers from which sortTimers sorts by radix:
// below it a comparison sort is as fast.
const radixMin = 128

// sortTimers puts ts in compareTimers' order, with scratch (returned,
// grown and cleared) as room. A large bucket (a window's timers of every
// key) is sorted by radix on ord[0], which nearly always decides alone:
// one pass counts the bytes at each position, the positions where every
// timer has the same byte (the key's length; the window's namespace when
// the keys are short) are skipped, and each other one moves every timer
// once, with no comparison called. Runs that ord[0] leaves tied are then
// sorted by compareTimers. On q5's buckets of ~5,000 timers the comparison
// sort was a tenth of the query's CPU.
func sortTimers(ts, scratch []*timer) []*timer {
	n := len(ts)
	if n < radixMin {
		slices.SortFunc(ts, compareTimers)
		return scratch
	}
	var counts [8][256]int
	for _, t := range ts {
		o := t.ord[0]
		for i := range counts {
			counts[i][byte(o>>(8*i))]++
		}
	}
	scratch = slices.Grow(scratch[:0], n)[:n]
	src, dst := ts, scratch
	for i := range counts {
		c := &counts[i]
		if c[byte(src[0].ord[0]>>(8*i))] == n {
			continue // every timer has this byte
		}
		at := 0
		for j, k := range c {
			c[j], at = at, at+k
		}
		for _, t := range src {
			d := byte(t.ord[0] >> (8 * i))
			dst[c[d]] = t
			c[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &ts[0] {
		copy(ts, src)
	}
	clear(scratch)
	for i := 0; i < n; {
		j := i + 1
		for j < n && ts[j].ord[0] == ts[i].ord[0] {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(ts[i:j], compareTimers)
		}
		i = j
	}
	return scratch
}

func (q *timerQueue) pushTime(b *timerBucket) {
	q.times = append(q.times, timeEntry{b.ts, b})
	h := q.times
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].ts <= h[i].ts {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (q *timerQueue) popTime() {
	h := q.times
	n := len(h) - 1
	h[0], h[n] = h[n], timeEntry{}
	h = h[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1].ts < h[c].ts {
			c++
		}
		if h[i].ts <= h[c].ts {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	q.times = h
}

// timerSuffix is the state-entry suffix of a timer of the current key:
// domain, then the time as an order-preserving uint64, then the namespace.
func timerSuffix[NS []byte | string](dst []byte, d TimeDomain, ts int64, ns NS) []byte {
	dst = append(dst, byte(d))
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts)^(1<<63))
	return append(dst, ns...)
}

var errCorruptTimer = errors.New("sdk: corrupt timer state")

func decodeTimerSuffix(b []byte) (d TimeDomain, ts int64, ns []byte, err error) {
	if len(b) < 9 || b[0] > byte(ProcessingTime) {
		return 0, 0, nil, errCorruptTimer
	}
	return TimeDomain(b[0]), int64(binary.BigEndian.Uint64(b[1:9]) ^ (1 << 63)), b[9:], nil
}

// newTimerService declares the timers' state on store and loads the timers
// a restored subtask had.
func newTimerService(env *runtime.Env, store *StateStore) (*timerService, error) {
	s := &timerService{env: env, store: store, nss: map[string]string{}, h: newHandle(store, "\x00timers", "timers", nil),
		wm: math.MinInt64}
	err := s.h.scanEntries(func(key, suffix, _ []byte) error {
		d, ts, ns, err := decodeTimerSuffix(suffix)
		if err != nil {
			return err
		}
		store.scopeToBytes(key)
		s.set(d, ts, ns, cellStored)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Restored processing-time timers fire when due, as if never stopped.
	if b := s.queues[ProcessingTime].first(); b != nil {
		env.Wake(time.UnixMilli(b.ts))
	}
	// The watermark a restored subtask had; rescaled, the minimum over the
	// old subtasks whose key groups it took over: records replayed after a
	// restore are judged late or not as they were before, a record already
	// too late does not open a new window, and Timers.Watermark reads the
	// same.
	if s.wm, _, err = restoredWatermark(env); err != nil {
		return nil, err
	}
	s.restored = s.wm
	return s, nil
}

// snapshot is the operator state of an operator with timers: its watermark
// and the subtask's key-group range (savedWatermark). The timers and the
// store's cells go to the backend first, which the runtime checkpoints
// next.
func (s *timerService) snapshot(int64) ([][]byte, error) {
	if err := s.writeBack(); err != nil {
		return nil, err
	}
	if err := s.store.flush(); err != nil {
		return nil, err
	}
	e := s.env
	start, end := keygroup.Range(e.Subtask(), e.Parallelism(), e.MaxParallelism())
	return [][]byte{savedWatermark{wm: s.wm, start: start, end: end, ranged: true}.encode()}, nil
}

// set adds a timer of the store's current key unless it is set already,
// and reports whether it added one.
func (s *timerService) set(d TimeDomain, ts int64, ns []byte, flags cellFlags) bool {
	k := s.store.ref()
	if _, ok := k.timers.find(timerSlot{d, ts, string(ns)}); ok {
		return false
	}
	var reuse *timer
	if n := len(s.spare); n > 0 {
		reuse, s.spare[n-1], s.spare = s.spare[n-1], nil, s.spare[:n-1]
	}
	t := newTimer(k, timerSlot{d, ts, s.nsString(ns)}, flags|cellPresent, reuse)
	s.store.retain(k)
	k.timers.add(t)
	s.queues[d].add(t)
	if flags&cellStored == 0 {
		s.markDirty(t)
	}
	return true
}

// unset takes a set timer away: it fired or was deleted.
func (s *timerService) unset(t *timer) {
	t.k.timers.remove(t)
	t.flags &^= cellPresent
	s.queues[t.d].remove(t)
	switch {
	case t.flags&cellStored != 0:
		s.markDirty(t)
	case t.flags&cellDirty != 0:
		// Set and gone between two write-backs: the backend never
		// hears of it.
		t.flags &^= cellDirty
		s.dirty = listRemove(s.dirty, t)
	}
}

func (s *timerService) markDirty(t *timer) {
	if t.flags&cellDirty != 0 {
		return
	}
	t.flags |= cellDirty
	s.dirty = listAdd(s.dirty, t)
}

// writeBack brings the backend's timer entries up to date: the deletions
// first, since a timer deleted and set again is two timers, both listed.
func (s *timerService) writeBack() error {
	st := s.env.State()
	for _, set := range []cellFlags{0, cellPresent} {
		for _, t := range s.dirty {
			if t.flags&cellPresent != set {
				continue
			}
			s.buf = appendStateKey(s.buf[:0], t.k.group, s.h.prefix, t.k.enc)
			s.buf = timerSuffix(s.buf, t.d, t.ts, t.ns)
			var err error
			if set != 0 {
				err = st.Set(s.buf, nil)
			} else {
				err = st.Delete(s.buf)
			}
			if err != nil {
				return err
			}
		}
	}
	for i, t := range s.dirty {
		t.flags &^= cellDirty | cellStored
		if t.flags&cellPresent != 0 {
			t.flags |= cellStored
		}
		s.dirty[i] = nil
	}
	s.dirty = s.dirty[:0]
	return nil
}

// register sets a timer of the store's current key.
func (s *timerService) register(d TimeDomain, ts int64, ns []byte) error {
	if s.set(d, ts, ns, 0) && d == ProcessingTime {
		s.env.Wake(time.UnixMilli(ts))
	}
	return nil
}

// remove deletes a timer of the current key.
func (s *timerService) remove(d TimeDomain, ts int64, ns []byte) error {
	k := s.store.cur
	if k == nil {
		return nil // the key holds no timer
	}
	if t, ok := k.timers.find(timerSlot{d, ts, string(ns)}); ok {
		s.unset(t)
		s.store.release(k)
	}
	return nil
}

// fire takes the timers of domain d due at upTo, in time order, scopes the
// store to each one's key and calls fn. fn may register more timers; those
// due too fire in the same call.
func (s *timerService) fire(d TimeDomain, upTo int64, fn func(ts int64, ns []byte) error) error {
	q := &s.queues[d]
	for {
		b := q.first()
		if b == nil || b.ts > upTo {
			break
		}
		t := b.pop(&q.scratch)
		s.unset(t)
		s.store.scopeToRef(t.k)
		s.ns = append(s.ns[:0], t.ns...)
		err := fn(t.ts, s.ns)
		s.store.release(t.k)
		if err != nil {
			return err
		}
		if t.flags&cellDirty == 0 && len(s.spare) < spareMax {
			*t = timer{}
			s.spare = append(s.spare, t)
		}
	}
	if b := q.first(); d == ProcessingTime && b != nil {
		s.env.Wake(time.UnixMilli(b.ts))
	}
	return nil
}

// Timers lets a keyed process function set timers for the key of the record
// (or timer) being handled. Timers are keyed state: they are in checkpoints
// and fire after a restore.
type Timers struct {
	s *timerService
}

// At sets an event-time timer at ts (unix ms): it fires once the watermark
// reaches ts.
func (t Timers) At(ts int64) error { return t.s.register(EventTime, ts, nil) }

// AtProcessingTime sets a timer firing when the wall clock reaches at.
func (t Timers) AtProcessingTime(at time.Time) error {
	return t.s.register(ProcessingTime, at.UnixMilli(), nil)
}

// Delete removes the current key's timer of domain d at ts, if set.
func (t Timers) Delete(d TimeDomain, ts int64) error { return t.s.remove(d, ts, nil) }

// Watermark is the operator's current event-time watermark.
func (t Timers) Watermark() int64 { return t.s.wm }

// ProcessFuncs are the callbacks of a keyed process function with timers.
type ProcessFuncs[K comparable, T, U any] struct {
	// Record handles a record of key.
	Record func(key K, v T, emit func(U)) error
	// Timer handles a timer of key firing at ts (unix ms) in domain d.
	Timer func(key K, ts int64, d TimeDomain, emit func(U)) error
}

// KeyedProcessTimers is KeyedProcess with timers: open declares state on the
// store, keeps the Timers, and returns the callbacks. Event-time timers fire
// as the watermark passes them (all of them at the end of a bounded input),
// before the watermark goes downstream.
func KeyedProcessTimers[K comparable, T, U any](k KeyedStream[K, T], open func(s *StateStore, t Timers) (ProcessFuncs[K, T, U], error), opts ...Option) Stream[U] {
	return keyedTransform(k, "process", "KeyedProcess", opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		var fns ProcessFuncs[K, T, U]
		run, store, err := openTimerOp(env, k.keyCodec, emit, func(s *StateStore, t Timers) (timerFunc[K, U], error) {
			var err error
			fns, err = open(s, t)
			return fns.Timer, err
		})
		if err != nil {
			return runtime.OpRun{}, err
		}
		run.In = keyedIn(env, store, k, fns.Record, emit)
		return run, nil
	})
}

// timerFunc handles a timer of key firing at ts in domain d.
type timerFunc[K comparable, U any] func(key K, ts int64, d TimeDomain, emit func(U)) error

// openTimerOp opens a keyed operator whose user callbacks have timers (a
// keyed process or co-process function): its store and timer service, the
// user's open, and the runtime hooks that fire the timers scoped to their
// key. The caller adds the input handlers.
func openTimerOp[K comparable, U any](env *runtime.Env, keyCodec Codec[K], emit func(U),
	open func(s *StateStore, t Timers) (timerFunc[K, U], error)) (runtime.OpRun, *StateStore, error) {
	store := newStateStore(env)
	ts, err := newTimerService(env, store)
	if err != nil {
		return runtime.OpRun{}, nil, err
	}
	store.watermark = func() int64 { return ts.wm }
	onTimer, err := open(store, Timers{ts})
	if err != nil {
		return runtime.OpRun{}, nil, err
	}
	run := timerRun(env, ts, func(d TimeDomain, at int64, _ []byte) error {
		if onTimer == nil {
			return nil
		}
		key, err := keyCodec.Decode(store.key)
		if err != nil {
			return err
		}
		return onTimer(key, at, d, emit)
	})
	return run, store, nil
}

// timerRun is the runtime's side of an operator with timers: the watermark
// fires the due event-time timers before it goes downstream (a watermark
// not newer than the restored one is stale and dropped), the processing
// time fires the others, and the watermark is the operator's checkpointed
// state, passed on downstream again before any input after a restore.
// onTimer runs with the store scoped to the timer's key.
func timerRun(env *runtime.Env, ts *timerService, onTimer func(d TimeDomain, at int64, ns []byte) error) runtime.OpRun {
	onEvent := func(at int64, ns []byte) error { return onTimer(EventTime, at, ns) }
	onProc := func(at int64, ns []byte) error { return onTimer(ProcessingTime, at, ns) }
	return runtime.OpRun{
		Watermark: func(wm int64) {
			if wm <= ts.wm {
				return
			}
			ts.wm = wm
			if err := ts.fire(EventTime, wm, onEvent); err != nil {
				env.Fail(err)
				return
			}
			env.EmitWatermark(wm)
		},
		OnTime: func(now time.Time) {
			if err := ts.fire(ProcessingTime, now.UnixMilli(), onProc); err != nil {
				env.Fail(err)
			}
		},
		Snapshot:          ts.snapshot,
		RestoredWatermark: func() int64 { return ts.restored },
	}
}

// keyedIn is the input handler of a keyed function: it scopes the store to
// the record's key and calls f; an error fails the task.
func keyedIn[K comparable, T, U any](env *runtime.Env, store *StateStore, k KeyedStream[K, T], f func(key K, v T, emit func(U)) error, emit func(U)) func(T) {
	ts := k.s.ts
	return func(v T) {
		key := k.key(v)
		scopeTo(store, k.keyCodec, key)
		if ts != nil {
			store.recordTS, store.inRecord = ts(v), true
		}
		err := f(key, v, emit)
		store.inRecord = false
		if err != nil {
			env.Fail(err)
		}
	}
}
