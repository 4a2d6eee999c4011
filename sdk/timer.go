package sdk

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/uvarintframe"

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

// timerService keeps an operator's timers. Every timer is an entry of keyed
// state (so it is in checkpoints, moves with its key group and is restored),
// mirrored in a heap per domain so firing does not scan state. A timer is
// (domain, time, key, namespace); registering it twice keeps one. Deleting
// one takes it out of its heap at once: a session window moves its timer on
// nearly every record, and lazily deleted timers would pile up in the heap.
type timerService struct {
	env   *runtime.Env
	store *StateStore
	h     *stateHandle
	heaps [2]timerHeap
	live  map[string]*timer // by timerID
	wm    int64
	// restored is the watermark restored from the checkpoint
	// (math.MinInt64: none).
	restored int64
	buf      []byte
	sfx      []byte
}

type timer struct {
	ts      int64
	key, ns string
	id      string
	index   int // in its heap
}

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	return h[i].id < h[j].id // deterministic order for equal times
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// timerSuffix is the state-entry suffix of a timer of the current key:
// domain, then the time as an order-preserving uint64, then the namespace.
func timerSuffix(dst []byte, d TimeDomain, ts int64, ns []byte) []byte {
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
	s := &timerService{env: env, store: store, h: newHandle(store, "\x00timers", "timers", nil),
		live: map[string]*timer{}, wm: math.MinInt64}
	err := s.h.scanEntries(func(key, suffix, _ []byte) error {
		d, ts, ns, err := decodeTimerSuffix(suffix)
		if err != nil {
			return err
		}
		s.push(d, ts, key, ns)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Restored processing-time timers fire when due, as if never stopped.
	if h := s.heaps[ProcessingTime]; len(h) > 0 {
		env.Wake(time.UnixMilli(h[0].ts))
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
// and the subtask's key-group range (savedWatermark).
func (s *timerService) snapshot(int64) ([][]byte, error) {
	e := s.env
	start, end := keygroup.Range(e.Subtask(), e.Parallelism(), e.MaxParallelism())
	return [][]byte{savedWatermark{wm: s.wm, start: start, end: end, ranged: true}.encode()}, nil
}

// id is the timer's identity, in s.buf until the next call: the map
// lookups with string(id) do not allocate.
func (s *timerService) id(d TimeDomain, ts int64, key, ns []byte) []byte {
	s.buf = timerSuffix(uvarintframe.AppendBytes(s.buf[:0], key), d, ts, ns)
	return s.buf
}

func (s *timerService) push(d TimeDomain, ts int64, key, ns []byte) bool {
	id := s.id(d, ts, key, ns)
	if _, ok := s.live[string(id)]; ok {
		return false
	}
	t := &timer{ts: ts, key: string(key), ns: string(ns), id: string(id)}
	s.live[t.id] = t
	heap.Push(&s.heaps[d], t)
	return true
}

// register sets a timer of the store's current key.
func (s *timerService) register(d TimeDomain, ts int64, ns []byte) error {
	if !s.push(d, ts, s.store.key, ns) {
		return nil
	}
	if d == ProcessingTime {
		s.env.Wake(time.UnixMilli(ts))
	}
	s.sfx = timerSuffix(s.sfx[:0], d, ts, ns)
	return s.h.put(s.sfx, func(dst []byte) []byte { return dst })
}

// remove deletes a timer of the current key.
func (s *timerService) remove(d TimeDomain, ts int64, ns []byte) error {
	t, ok := s.live[string(s.id(d, ts, s.store.key, ns))]
	if !ok {
		return nil
	}
	delete(s.live, t.id)
	heap.Remove(&s.heaps[d], t.index)
	s.sfx = timerSuffix(s.sfx[:0], d, ts, ns)
	return s.h.del(s.sfx)
}

// fire pops the timers of domain d due at upTo, in time order, scopes the
// store to each one's key and calls fn. fn may register more timers; those
// due too fire in the same call.
func (s *timerService) fire(d TimeDomain, upTo int64, fn func(ts int64, ns []byte) error) error {
	h := &s.heaps[d]
	for h.Len() > 0 && (*h)[0].ts <= upTo {
		t := heap.Pop(h).(*timer)
		delete(s.live, t.id)
		scopeToBytes(s.store, []byte(t.key))
		s.sfx = timerSuffix(s.sfx[:0], d, t.ts, []byte(t.ns))
		if err := s.h.del(s.sfx); err != nil {
			return err
		}
		if err := fn(t.ts, []byte(t.ns)); err != nil {
			return err
		}
	}
	if d == ProcessingTime && h.Len() > 0 {
		s.env.Wake(time.UnixMilli((*h)[0].ts))
	}
	return nil
}

// scopeToBytes scopes the store to an already encoded key.
func scopeToBytes(s *StateStore, key []byte) {
	s.key = append(s.key[:0], key...)
	s.group = keygroup.Of(keygroup.Hash(s.key), s.env.MaxParallelism())
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
