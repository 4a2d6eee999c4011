package sdk

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// TimeWindow is the event-time interval [Start, End) in unix ms.
type TimeWindow struct{ Start, End int64 }

// maxTimestamp is the window's last instant: it fires on time when the
// watermark reaches it.
func (w TimeWindow) maxTimestamp() int64 { return w.End - 1 }

var globalWindow = TimeWindow{math.MinInt64, math.MaxInt64}

type assignerKind uint8

const (
	slidingWindows assignerKind = iota // tumbling is sliding with slide = size
	sessionWindows
	globalWindows
)

// WindowAssigner says which windows a record belongs to (the Beam model's
// Where). Tumbling and sliding windows are kept as panes of gcd(size, slide):
// a record updates one pane, and a window's result combines its panes when
// it fires, so a record costs the same whatever size/slide is.
type WindowAssigner struct {
	kind              assignerKind
	size, slide, pane int64
	gap               int64
}

// Tumbling windows are consecutive windows of size, aligned to the epoch.
func Tumbling(size time.Duration) WindowAssigner { return Sliding(size, size) }

// Sliding windows of size start every slide, aligned to the epoch.
func Sliding(size, slide time.Duration) WindowAssigner {
	s, l := size.Milliseconds(), slide.Milliseconds()
	return WindowAssigner{kind: slidingWindows, size: s, slide: l, pane: gcd(s, l)}
}

// Sessions are per key the merge of the half-open intervals [ts, ts+gap) of
// its records: two records are in one session when their intervals overlap,
// directly or through others. A session is [first ts, last ts + gap).
func Sessions(gap time.Duration) WindowAssigner {
	return WindowAssigner{kind: sessionWindows, gap: gap.Milliseconds()}
}

// GlobalWindows puts every record of a key in one window that ends with the
// input: it fires on time at the end of a bounded input, and otherwise only
// by its trigger's early firings.
func GlobalWindows() WindowAssigner { return WindowAssigner{kind: globalWindows} }

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// floorTo rounds ts down to a multiple of step, also below zero.
func floorTo(ts, step int64) int64 {
	r := ts % step
	if r < 0 {
		r += step
	}
	return ts - r
}

func (a WindowAssigner) validate() error {
	switch a.kind {
	case slidingWindows:
		if a.size <= 0 || a.slide <= 0 {
			return fmt.Errorf("window size and slide must be at least 1ms")
		}
	case sessionWindows:
		if a.gap <= 0 {
			return fmt.Errorf("session gap must be at least 1ms")
		}
	}
	return nil
}

// paneOf is the pane a record at ts updates.
func (a WindowAssigner) paneOf(ts int64) TimeWindow {
	if a.kind == globalWindows {
		return globalWindow
	}
	ps := floorTo(ts, a.pane)
	return TimeWindow{ps, ps + a.pane}
}

// windowsOf calls fn with the windows containing pane p, latest first,
// until fn returns false.
func (a WindowAssigner) windowsOf(p TimeWindow, fn func(TimeWindow) bool) {
	if a.kind == globalWindows {
		fn(globalWindow)
		return
	}
	for s := floorTo(p.Start, a.slide); s+a.size > p.Start; s -= a.slide {
		if !fn(TimeWindow{s, s + a.size}) {
			return
		}
	}
}

// panesOf calls fn with the panes of window w.
func (a WindowAssigner) panesOf(w TimeWindow, fn func(TimeWindow) error) error {
	if a.kind == globalWindows {
		return fn(globalWindow)
	}
	for s := w.Start; s < w.End; s += a.pane {
		if err := fn(TimeWindow{s, s + a.pane}); err != nil {
			return err
		}
	}
	return nil
}

// lastPanes calls fn with the panes of w that no later window contains:
// dropping w drops them.
func (a WindowAssigner) lastPanes(w TimeWindow, fn func(TimeWindow) error) error {
	if a.kind == globalWindows {
		return fn(globalWindow)
	}
	for s := w.Start; s < min(w.Start+a.slide, w.End); s += a.pane {
		if err := fn(TimeWindow{s, s + a.pane}); err != nil {
			return err
		}
	}
	return nil
}

// appendNS encodes a window as a state namespace: order-preserving.
func appendNS(dst []byte, w TimeWindow) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(w.Start)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, uint64(w.End)^(1<<63))
}

var errCorruptWindow = errors.New("sdk: corrupt window state")

func decodeNS(b []byte) (TimeWindow, error) {
	if len(b) != 16 {
		return TimeWindow{}, errCorruptWindow
	}
	return TimeWindow{int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), int64(binary.BigEndian.Uint64(b[8:]) ^ (1 << 63))}, nil
}

// session is one session window of a key, and the window its state lives
// under: the window it was created as. A session grows with nearly every
// record; keeping its state, trigger state and on-time timer under a fixed
// namespace makes that a rewrite of the accumulator alone.
type session struct{ w, state TimeWindow }

// encodeSessions and decodeSessions store a key's session windows.
func encodeSessions(dst []byte, ss []session) []byte {
	for _, s := range ss {
		dst = uvarintframe.AppendVarint(uvarintframe.AppendVarint(dst, s.w.Start), s.w.End)
		dst = uvarintframe.AppendVarint(uvarintframe.AppendVarint(dst, s.state.Start), s.state.End)
	}
	return dst
}

// sessionsCodec is the stored form of a key's sessions.
type sessionsCodec struct{}

func (sessionsCodec) Append(dst []byte, ss []session) []byte { return encodeSessions(dst, ss) }
func (sessionsCodec) Decode(b []byte) ([]session, error)     { return decodeSessions(b, nil) }

func decodeSessions(b []byte, into []session) ([]session, error) {
	ss := into[:0]
	r := uvarintframe.NewReader(b)
	for r.Len() > 0 {
		var v [4]int64
		r.Varints(v[:])
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", errCorruptWindow, err)
		}
		if v[1] <= v[0] || v[3] <= v[2] {
			return nil, errCorruptWindow
		}
		ss = append(ss, session{TimeWindow{v[0], v[1]}, TimeWindow{v[2], v[3]}})
	}
	return ss, nil
}

// WindowOption configures Window.
type WindowOption interface{ applyWindow(*triggerSpec) }

type windowOptionFunc func(*triggerSpec)

func (f windowOptionFunc) applyWindow(s *triggerSpec) { f(s) }

// WithTrigger sets when the windows emit panes (default AtWatermark).
func WithTrigger(t Trigger) WindowOption {
	return windowOptionFunc(func(s *triggerSpec) { s.Trigger = t })
}

// AllowedLateness keeps a window's state d of event time after its end, so
// records that late still refine it with LATE panes; later records go to the
// late side output. Default 0.
func AllowedLateness(d time.Duration) WindowOption {
	return windowOptionFunc(func(s *triggerSpec) { s.lateness = d.Milliseconds() })
}

// WithAccumulation sets how successive panes of a window relate (default
// Accumulating).
func WithAccumulation(m Accumulation) WindowOption {
	return windowOptionFunc(func(s *triggerSpec) { s.mode = m })
}

// WindowedStream is a keyed stream cut into windows, ready for an aggregate
// or process-window function.
type WindowedStream[K comparable, T any] struct {
	k    KeyedStream[K, T]
	a    WindowAssigner
	spec triggerSpec
}

// Window cuts each key's records of k into the windows of a by their event
// time, which an upstream AssignTimestamps (or WithTimestamps) must set.
func Window[K comparable, T any](k KeyedStream[K, T], a WindowAssigner, opts ...WindowOption) WindowedStream[K, T] {
	w := WindowedStream[K, T]{k: k, a: a}
	for _, o := range opts {
		o.applyWindow(&w.spec)
	}
	fail := func(err error) { k.s.p.fail(fmt.Errorf("sdk: Window: %w", err)) }
	if err := a.validate(); err != nil {
		fail(err)
	}
	if k.s.ts == nil {
		fail(errors.New("the stream has no event time: use AssignTimestamps or WithTimestamps before KeyBy"))
	}
	if w.spec.mode == Discarding && a.kind == slidingWindows && a.size != a.slide {
		fail(errors.New("discarding panes need windows that do not overlap: sliding windows share their panes"))
	}
	if w.spec.lateness < 0 {
		fail(errors.New("allowed lateness is negative"))
	}
	return w
}

// WindowInfo describes the window and pane a process-window function is
// called for.
type WindowInfo struct {
	Start, End int64 // [Start, End), unix ms
	Timing     Timing
	Index      int64 // the pane's number within its window, from 0
}

// Pane is one result of a windowed aggregate.
type Pane[K, R any] struct {
	Key        K
	Start, End int64 // the window [Start, End), unix ms
	Timing     Timing
	Index      int64 // the pane's number within its window, from 0
	// Retraction marks the withdrawal of a pane emitted before (Retracting
	// accumulation): subtract it before adding the next.
	Retraction bool
	Value      R
}

// Windowed is the output of a window function: its results, and the side
// output of records that came later than the allowed lateness.
type Windowed[T, R any] struct {
	results  Stream[R]
	late     Stream[T]
	lateRecs Stream[LateRecord[T]]
}

// LateRecord is a record dropped for coming after its window's allowed
// lateness, with why: the window it belonged to and the watermark it met.
type LateRecord[T any] struct {
	Value     T
	Timestamp int64 // the record's event time, unix ms
	// Window is the window the record belonged to: the newest one holding
	// its time (tumbling, sliding) or the session it would have made or
	// joined.
	Window TimeWindow
	// Watermark is the window operator's watermark when the record came:
	// the window's end plus the allowed lateness was not after it.
	Watermark int64
}

// lateRecordCodec encodes a LateRecord with the record's own codec.
type lateRecordCodec[T any] struct{ v Codec[T] }

func (c lateRecordCodec[T]) Append(dst []byte, l LateRecord[T]) []byte {
	dst = uvarintframe.AppendVarint(uvarintframe.AppendVarint(dst, l.Timestamp), l.Window.Start)
	dst = uvarintframe.AppendVarint(uvarintframe.AppendVarint(dst, l.Window.End), l.Watermark)
	return c.v.Append(dst, l.Value)
}

func (c lateRecordCodec[T]) Decode(b []byte) (LateRecord[T], error) {
	var v [4]int64
	r := uvarintframe.NewReader(b)
	r.Varints(v[:])
	rest := r.Rest()
	if err := r.Err(); err != nil {
		return LateRecord[T]{}, fmt.Errorf("%w: late record: %w", ErrDecode, err)
	}
	l := LateRecord[T]{Timestamp: v[0], Window: TimeWindow{v[1], v[2]}, Watermark: v[3]}
	var err error
	l.Value, err = c.v.Decode(rest)
	return l, err
}

// Results is the stream of the window function's results.
func (w Windowed[T, R]) Results() Stream[R] { return w.results }

// Late is the side output of the records dropped for coming after their
// windows' allowed lateness.
func (w Windowed[T, R]) Late() Stream[T] { return w.late }

// LateRecords is Late with why each record was late: its time, its window
// and the watermark it met. Its event time is the record's.
func (w Windowed[T, R]) LateRecords() Stream[LateRecord[T]] { return w.lateRecs }

// WindowAggregate folds each window's records with agg and emits a Pane per
// firing. Sliding (size != slide) and session windows combine accumulators,
// so agg needs Merge. With Merge, tumbling, sliding and global windows
// whose trigger has no EarlyEvery or EarlyAfter pre-aggregate each key's
// records per pane before the shuffle (see combine.go; NoCombiner opts
// out): the results are the same.
func WindowAggregate[K comparable, T, A, R any](w WindowedStream[K, T], agg AggregateFunc[T, A, R], opts ...Option) Windowed[T, Pane[K, R]] {
	if agg.Merge == nil && (w.a.kind == sessionWindows || (w.a.kind == slidingWindows && w.a.size != w.a.slide)) {
		w.k.s.p.fail(errors.New("sdk: WindowAggregate: sliding and session windows need AggregateFunc.Merge"))
	}
	out := windowOp(w, "window", "WindowAggregate", opts, w.combines(agg.Merge != nil), CodecFor[A](),
		func(acc A, ok bool, v T) A {
			if !ok {
				acc = agg.Init()
			}
			return agg.Add(acc, v)
		}, agg.Merge,
		func(key K, info WindowInfo, acc A, emit func(Pane[K, R])) {
			emit(Pane[K, R]{Key: key, Start: info.Start, End: info.End, Timing: info.Timing, Index: info.Index, Value: agg.Result(acc)})
		},
		func(p Pane[K, R]) Pane[K, R] { p.Retraction = true; return p })
	out.results.ts = func(p Pane[K, R]) int64 { return p.End - 1 }
	return out
}

// WindowProcess calls fn with all records of a window (in no defined order)
// and its metadata at every firing. It keeps the records, not an
// accumulator: prefer WindowAggregate where a fold will do. Retracting
// accumulation is not available here.
func WindowProcess[K comparable, T, U any](w WindowedStream[K, T], fn func(key K, win WindowInfo, elems []T, emit func(U)), opts ...Option) Windowed[T, U] {
	if w.spec.mode == Retracting {
		w.k.s.p.fail(errors.New("sdk: WindowProcess: retracting accumulation needs WindowAggregate"))
	}
	return windowOp(w, "window", "WindowProcess", opts, false, CodecFor[[]T](),
		func(acc []T, _ bool, v T) []T { return append(acc, v) },
		func(a, b []T) []T { return append(a, b...) },
		fn, nil)
}

// windowOp adds the window operator: contents of type A per pane (or
// session) of each key in keyed state, timers in keyed state, the trigger's
// state machine per window, and the late records as side output 1. With
// combined, a combiner pre-aggregates in front of the shuffle (combine.go)
// and the operator merges its partials.
func windowOp[K comparable, T, A, U any](w WindowedStream[K, T], kind, name string, opts []Option, combined bool, ac Codec[A],
	add func(acc A, ok bool, v T) A, merge func(a, b A) A,
	result func(key K, info WindowInfo, acc A, emit func(U)), retract func(U) U) Windowed[T, U] {
	if err := checkJSONSafe(ac); err != nil {
		w.k.s.p.fail(fmt.Errorf("%s: contents %w", name, err))
	}
	var outCodec Codec[U]
	open := func(env *runtime.Env, emit func(U)) (*winOp[K, T, A, U], runtime.OpRun, error) {
		op, run, err := openWindow(env, w, ac, add, merge, result, retract, outCodec, emit)
		if err != nil {
			return nil, runtime.OpRun{}, err
		}
		// None when chained: nothing reads them.
		if len(env.Sides()) > 0 {
			op.late, _ = env.Sides()[0].(func(T))
		}
		if len(env.Sides()) > 1 {
			op.lateRecs, _ = env.Sides()[1].(func(LateRecord[T]))
		}
		return op, run, nil
	}
	var res Stream[U]
	if combined {
		parts := combine(w, ac, add)
		res = keyedTransform(parts, kind, name, opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
			op, run, err := open(env, emit)
			if err == nil {
				run.In = op.partial
			}
			return run, err
		})
		nameCombiner(w.k.s.p, parts.s.n, res.n)
	} else {
		res = keyedTransform(w.k, kind, name, opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
			op, run, err := open(env, emit)
			if err == nil {
				run.In = op.record
			}
			return run, err
		})
	}
	outCodec = res.codec
	n := res.n
	lc := lateRecordCodec[T]{w.k.s.codec}
	n.Sides = append(n.Sides, runtime.Records[T](w.k.s.codec), runtime.Records[LateRecord[T]](lc))
	late := Stream[T]{p: w.k.s.p, n: n, codec: w.k.s.codec, side: 1, ts: w.k.s.ts}
	lateRecs := Stream[LateRecord[T]]{p: w.k.s.p, n: n, codec: lc, side: 2,
		ts: func(l LateRecord[T]) int64 { return l.Timestamp }}
	return Windowed[T, U]{results: res, late: late, lateRecs: lateRecs}
}

// openWindow opens the window operator's instance for a subtask: its state
// and timers. The caller wires its input to record.
func openWindow[K comparable, T, A, U any](env *runtime.Env, w WindowedStream[K, T], ac Codec[A],
	add func(acc A, ok bool, v T) A, merge func(a, b A) A,
	result func(key K, info WindowInfo, acc A, emit func(U)), retract func(U) U, out Codec[U], emit func(U)) (*winOp[K, T, A, U], runtime.OpRun, error) {
	store := newStateStore(env)
	timers, err := newTimerService(env, store)
	if err != nil {
		return nil, runtime.OpRun{}, err
	}
	op := &winOp[K, T, A, U]{env: env, w: w, store: store, timers: timers,
		trig: newHandle(store, "\x00trigger", triggerStateType(w.spec.mode, out), nil),
		add:  add, merge: merge, result: result, retract: retract, out: out, emit: emit}
	op.sessions = newHeapState(newHandle(store, "\x00sessions", "sessions", nil), Codec[[]session](sessionsCodec{}), noNS)
	op.accs = newHeapState(newHandle(store, "\x00contents", stateType("window contents", ac), nil), ac, appendNS)
	run := timerRun(env, timers, func(d TimeDomain, at int64, ns []byte) error {
		if d == EventTime {
			return op.eventTimer(at, ns)
		}
		return op.procTimer(at, ns)
	})
	return op, run, nil
}

// triggerStateType describes the trigger state: when retracting, it holds
// the last panes, encoded with out, to retract them.
func triggerStateType[U any](mode Accumulation, out Codec[U]) string {
	if mode != Retracting || out == nil {
		return "window trigger"
	}
	return stateType("window trigger of panes", out)
}

type winOp[K comparable, T, A, U any] struct {
	env    *runtime.Env
	w      WindowedStream[K, T]
	store  *StateStore
	timers *timerService
	trig   *stateHandle
	// sessions holds each key's session windows, typed in memory.
	sessions *heapState[struct{}, []session]
	// accs holds the contents of each pane (or session) of each key.
	accs     *heapState[TimeWindow, A]
	add      func(acc A, ok bool, v T) A
	merge    func(a, b A) A
	result   func(key K, info WindowInfo, acc A, emit func(U))
	retract  func(U) U
	out      Codec[U]
	emit     func(U)
	late     func(T)
	lateRecs func(LateRecord[T])
	ns       []byte
	captured [][]byte
	panes    []paneAcc[A] // scratch for contents
	set      []session    // scratch for getSessions
}

// mayHaveTrig says the backend may hold trigger state of the current key's
// windows, so that dropping a window must delete it. Only stateful
// triggers write it, but a restored key may have some from an earlier
// version of the job with another trigger. (A tombstone per window,
// written for nothing, made a restored q5 fall behind its rate.)
func (o *winOp[K, T, A, U]) mayHaveTrig() bool {
	return o.w.spec.stateful() || o.trig.restoredKey()
}

// paneAcc is a pane's start and accumulator.
type paneAcc[A any] struct {
	start int64
	acc   A
}

// winRef is a window and the window its state is kept under (see session).
type winRef struct{ w, state TimeWindow }

func (o *winOp[K, T, A, U]) nsOf(w TimeWindow) []byte {
	o.ns = appendNS(o.ns[:0], w)
	return o.ns
}

func (o *winOp[K, T, A, U]) getAcc(w TimeWindow) (A, bool, error) { return o.accs.get(w) }

func (o *winOp[K, T, A, U]) putAcc(w TimeWindow, a A) error { return o.accs.put(w, a) }

func (o *winOp[K, T, A, U]) getTrig(w TimeWindow) (trigState, bool, error) {
	b, ok, err := o.trig.get(o.nsOf(w))
	if err != nil || !ok {
		return trigState{}, false, err
	}
	st, err := decodeTrigState(b)
	return st, err == nil, err
}

func (o *winOp[K, T, A, U]) putTrig(w TimeWindow, st trigState) error {
	return o.trig.put(o.nsOf(w), st.encode)
}

// getSessions copies the current key's sessions into o.set (reused): its
// callers filter the copy in place, and may then drop the change.
func (o *winOp[K, T, A, U]) getSessions() ([]session, error) {
	ss, _, err := o.sessions.get(struct{}{})
	o.set = append(o.set[:0], ss...)
	return o.set, err
}

// putSessions stores ss (getSessions' copy) as the current key's sessions,
// in the stored slice: the state is written back synchronously, at
// checkpoints and evictions, so nothing else holds it.
func (o *winOp[K, T, A, U]) putSessions(ss []session) error {
	if len(ss) == 0 {
		return o.sessions.del(struct{}{})
	}
	old, _, err := o.sessions.get(struct{}{})
	if err != nil {
		return err
	}
	return o.sessions.put(struct{}{}, append(old[:0], ss...))
}

// refOf is ref for a timer's encoded namespace.
func (o *winOp[K, T, A, U]) refOf(ns []byte) (winRef, bool, error) {
	w, err := decodeNS(ns)
	if err != nil {
		return winRef{}, false, err
	}
	return o.ref(w)
}

// ref is the window a timer's or state's namespace names, with the window
// it stands for now: itself, or the session created as it; ok is false when
// no such session is left.
func (o *winOp[K, T, A, U]) ref(ns TimeWindow) (winRef, bool, error) {
	if o.w.a.kind != sessionWindows {
		return winRef{ns, ns}, true, nil
	}
	set, err := o.getSessions()
	for _, s := range set {
		if s.state == ns {
			return winRef{s.w, s.state}, true, err
		}
	}
	return winRef{}, false, err
}

func (o *winOp[K, T, A, U]) key() (K, error) { return o.w.k.keyCodec.Decode(o.store.key) }

func (o *winOp[K, T, A, U]) now() int64 {
	if o.w.spec.earlyAfter > 0 {
		return o.env.Now().UnixMilli()
	}
	return 0
}

func (o *winOp[K, T, A, U]) record(v T) {
	ts := o.w.k.s.ts(v)
	scopeTo(o.store, o.w.k.keyCodec, o.w.k.key(v))
	var err error
	if o.w.a.kind == sessionWindows {
		err = o.session(v, ts)
	} else {
		err = o.paned(v, ts)
	}
	if err != nil {
		o.env.Fail(err)
	}
}

// lateRecord sends a record too late for window w to the side outputs.
func (o *winOp[K, T, A, U]) lateRecord(v T, ts int64, w TimeWindow) {
	if o.late != nil {
		o.late(v)
	}
	if o.lateRecs != nil {
		o.lateRecs(LateRecord[T]{Value: v, Timestamp: ts, Window: w, Watermark: o.timers.wm})
	}
}

// partial handles what a combiner sent: a record, or the partial
// accumulator of a pane, which merges into the pane as its records would
// have added to it.
func (o *winOp[K, T, A, U]) partial(p partial[K, T, A]) {
	if p.Raw {
		o.record(p.V)
		return
	}
	scopeTo(o.store, o.w.k.keyCodec, p.Key)
	if err := o.pane(p.Pane, p.V, 0, &p.Acc); err != nil {
		o.env.Fail(err)
	}
}

// paned handles a record of tumbling, sliding or global windows.
func (o *winOp[K, T, A, U]) paned(v T, ts int64) error {
	return o.pane(o.w.a.paneOf(ts), v, ts, nil)
}

// pane adds record v at ts to pane p of the current key, or with part
// merges a combiner's partial accumulator of p into it.
func (o *winOp[K, T, A, U]) pane(p TimeWindow, v T, ts int64, part *A) error {
	spec, wm := o.w.spec, o.timers.wm
	var newest TimeWindow
	o.w.a.windowsOf(p, func(w TimeWindow) bool { newest = w; return false })
	if newest == (TimeWindow{}) {
		return nil // in the gap between hopping windows
	}
	if spec.cleanupTime(newest) <= wm {
		if part == nil {
			o.lateRecord(v, ts, newest)
		}
		// A combiner sends no partial this late (it sends the records
		// themselves once their pane is due); only a savepoint taken
		// before the job had a combiner, whose watermark it lacks, can
		// make one, and its records are dropped as late ones are.
		return nil
	}
	acc, ok, err := o.getAcc(p)
	if err != nil {
		return err
	}
	switch {
	case part == nil:
		acc = o.add(acc, ok, v)
	case ok:
		acc = o.merge(acc, *part)
	default:
		acc = *part
	}
	if err := o.putAcc(p, acc); err != nil {
		return err
	}
	if !spec.stateful() {
		if ok {
			return nil
		}
		// A new pane sets the timer of the first live window holding it
		// only: each window's timer sets the next one's (nextWindow), so
		// a pane costs one timer, not one per window sliding over it.
		var first TimeWindow
		o.w.a.windowsOf(p, func(w TimeWindow) bool {
			if spec.cleanupTime(w) <= wm {
				return false // it and every older window are gone
			}
			first = w
			return true
		})
		return o.timers.register(EventTime, first.maxTimestamp(), o.nsOf(first))
	}
	o.w.a.windowsOf(p, func(w TimeWindow) bool {
		if spec.cleanupTime(w) <= wm {
			return false // it and every older window are gone
		}
		err = o.recordInWindow(w, wm)
		return err == nil
	})
	return err
}

// nextWindow sets the on-time timer of the sliding window after w, which
// has just fired, when it holds a pane already: those it shares with w.
// (Its newer panes set it themselves: it is the first window holding
// them.) Windows without a trigger state chain their timers so; the others
// set every window's timer as records come, for their triggers.
func (o *winOp[K, T, A, U]) nextWindow(w TimeWindow) error {
	a := o.w.a
	if a.kind != slidingWindows {
		return nil
	}
	next := TimeWindow{w.Start + a.slide, w.End + a.slide}
	shared := false
	if o.accs.presentOfKey(func(p TimeWindow, _ A) bool {
		in := next.Start <= p.Start && p.Start < w.End
		shared = shared || in
		return in
	}) {
		if !shared {
			return nil
		}
		return o.timers.register(EventTime, next.maxTimestamp(), o.nsOf(next))
	}
	for s := next.Start; s < w.End; s += a.pane {
		_, ok, err := o.getAcc(TimeWindow{s, s + a.pane})
		if err != nil {
			return err
		}
		if ok {
			return o.timers.register(EventTime, next.maxTimestamp(), o.nsOf(next))
		}
	}
	return nil
}

// recordInWindow runs the trigger for a record that went into window w.
func (o *winOp[K, T, A, U]) recordInWindow(w TimeWindow, wm int64) error {
	st, _, err := o.getTrig(w)
	if err != nil {
		return err
	}
	if w.maxTimestamp() > wm {
		if err := o.timers.register(EventTime, w.maxTimestamp(), o.nsOf(w)); err != nil {
			return err
		}
	}
	return o.apply(winRef{w, w}, &st, o.w.spec.record(&st, w, wm, o.now()))
}

// session handles a record of session windows: its [ts, ts+gap) merges
// with the key's sessions it overlaps. The merged session keeps the state
// namespace of the first of them; the others' contents and trigger state
// fold into it, and their last panes are retracted right before its next
// pane. Its on-time timer is not moved as it grows: a timer finding its
// session longer sets the next one (see eventTimer), so a record extending
// a session costs a read and a write of the set and of the accumulator.
// Only a session that had fired on time and grows past the watermark again
// needs a new on-time timer.
func (o *winOp[K, T, A, U]) session(v T, ts int64) error {
	spec, wm := o.w.spec, o.timers.wm
	set, err := o.getSessions()
	if err != nil {
		return err
	}
	nw := TimeWindow{ts, ts + o.w.a.gap}
	merged := session{w: nw, state: nw}
	first := -1
	var grown session // the session the record falls into, as it was
	keep := set[:0]
	var olds []session
	for _, s := range set {
		if s.w.Start < nw.End && nw.Start < s.w.End {
			if first < 0 {
				first = len(keep)
				grown, merged.state = s, s.state
				keep = append(keep, s) // replaced by merged below
			} else {
				olds = append(olds, s)
			}
			merged.w = TimeWindow{min(merged.w.Start, s.w.Start), max(merged.w.End, s.w.End)}
		} else {
			keep = append(keep, s)
		}
	}
	if spec.cleanupTime(merged.w) <= wm {
		o.lateRecord(v, ts, merged.w)
		return nil
	}
	acc, ok, err := o.getAcc(merged.state)
	if err != nil {
		return err
	}
	if first < 0 {
		ok = false // a new session; nothing is kept under its window yet
	}
	acc = o.add(acc, ok, v)
	var st trigState
	if spec.stateful() && first >= 0 {
		if st, _, err = o.getTrig(merged.state); err != nil {
			return err
		}
	}
	for _, old := range olds {
		a, ok, err := o.getAcc(old.state)
		if err != nil {
			return err
		}
		if ok {
			acc = o.merge(acc, a)
		}
		if spec.stateful() {
			ost, _, err := o.getTrig(old.state)
			if err != nil {
				return err
			}
			st.merge(ost) // its last pane is retracted with the next one
		}
		if o.mayHaveTrig() {
			if err := o.trig.del(o.nsOf(old.state)); err != nil {
				return err
			}
		}
		// Its timers find its namespace gone and do nothing.
		if err := o.accs.del(old.state); err != nil {
			return err
		}
	}
	if err := o.putAcc(merged.state, acc); err != nil {
		return err
	}
	var at int64
	timer := true
	switch {
	case first < 0:
		keep = append(keep, merged)
		// Its on-time timer, or for a session late within the allowed
		// lateness (it fires LATE at once) the one that drops it.
		at = merged.w.maxTimestamp()
		if at <= wm {
			at = spec.cleanupTime(merged.w)
		}
	case grown.w.maxTimestamp() <= wm && merged.w.maxTimestamp() > wm:
		// The session whose state it keeps fired on time already, and a
		// record within the lateness grew it to end after the watermark:
		// it fires on time again, as the new window it is.
		keep[first] = merged
		at = merged.w.maxTimestamp()
	default:
		keep[first] = merged
		timer = false
	}
	if timer {
		if err := o.timers.register(EventTime, at, o.nsOf(merged.state)); err != nil {
			return err
		}
	}
	if err := o.putSessions(keep); err != nil {
		return err
	}
	if !spec.stateful() {
		return nil
	}
	if len(olds) > 0 && st.procAt != 0 {
		// The deadline kept may be a merged-away session's, whose timer
		// is under its gone namespace.
		if err := o.timers.register(ProcessingTime, st.procAt, o.nsOf(merged.state)); err != nil {
			return err
		}
	}
	return o.apply(winRef{merged.w, merged.state}, &st, spec.record(&st, merged.w, wm, o.now()))
}

// eventTimer: the watermark reached timer ts of the window namespace ns.
// A session's timer may be older than its session, which grew since: it
// then sets the timer the session needs now instead (fire runs it at once
// when the watermark passed that too).
func (o *winOp[K, T, A, U]) eventTimer(ts int64, ns []byte) error {
	r, ok, err := o.refOf(ns)
	if err != nil || !ok {
		return err
	}
	if mt, ct := r.w.maxTimestamp(), o.w.spec.cleanupTime(r.w); ts != mt && ts != ct {
		switch {
		case ts < mt:
			return o.timers.register(EventTime, mt, ns)
		case ts < ct:
			return o.timers.register(EventTime, ct, ns)
		}
		return nil
	}
	var st trigState
	if o.w.spec.stateful() {
		if st, _, err = o.getTrig(r.state); err != nil {
			return err
		}
	}
	if err := o.apply(r, &st, o.w.spec.eventTime(&st, r.w, ts)); err != nil {
		return err
	}
	if !o.w.spec.stateful() && ts == r.w.maxTimestamp() {
		return o.nextWindow(r.w)
	}
	return nil
}

func (o *winOp[K, T, A, U]) procTimer(now int64, ns []byte) error {
	r, ok, err := o.refOf(ns)
	if err != nil || !ok {
		return err
	}
	st, ok, err := o.getTrig(r.state)
	if err != nil || !ok {
		return err
	}
	return o.apply(r, &st, o.w.spec.procTime(&st, r.w, now, o.timers.wm))
}

// apply carries out a trigger action for window r of the current key.
func (o *winOp[K, T, A, U]) apply(r winRef, st *trigState, a action) error {
	if a.fire {
		if err := o.fire(r, st, a.timing); err != nil {
			return err
		}
	}
	if a.procAt > 0 {
		if err := o.timers.register(ProcessingTime, a.procAt, o.nsOf(r.state)); err != nil {
			return err
		}
	}
	if a.cleanupSet {
		if err := o.timers.register(EventTime, a.cleanupAt, o.nsOf(r.state)); err != nil {
			return err
		}
	}
	if a.cleanup {
		return o.cleanup(r)
	}
	if o.w.spec.stateful() {
		return o.putTrig(r.state, *st)
	}
	return nil
}

// contents combines the panes of r's window (or reads the session).
func (o *winOp[K, T, A, U]) contents(r winRef) (A, bool, error) {
	if o.w.a.kind == sessionWindows {
		return o.getAcc(r.state)
	}
	var acc A
	// One pass over the key's cells, when they hold all it has, instead of
	// a lookup per pane (five for q5's windows); either way the panes are
	// merged in time order, as Merge need not commute.
	o.panes = o.panes[:0]
	if o.w.a.kind == slidingWindows && o.accs.presentOfKey(func(p TimeWindow, a A) bool {
		in := r.w.Start <= p.Start && p.Start < r.w.End
		if in {
			o.panes = append(o.panes, paneAcc[A]{p.Start, a})
		}
		return in
	}) {
		slices.SortFunc(o.panes, func(x, y paneAcc[A]) int { return cmp.Compare(x.start, y.start) })
	} else if err := o.w.a.panesOf(r.w, func(p TimeWindow) error {
		a, ok, err := o.getAcc(p)
		if ok {
			o.panes = append(o.panes, paneAcc[A]{p.Start, a})
		}
		return err
	}); err != nil {
		return acc, false, err
	}
	if len(o.panes) == 0 {
		return acc, false, nil
	}
	acc = o.panes[0].acc
	for _, p := range o.panes[1:] {
		acc = o.merge(acc, p.acc)
	}
	return acc, true, nil
}

// fire emits a pane of r: when retracting, the retractions of the panes it
// replaces go first, and never on their own. A discarding window with
// nothing new emits no pane and uses no pane index.
func (o *winOp[K, T, A, U]) fire(r winRef, st *trigState, timing Timing) error {
	acc, ok, err := o.contents(r)
	if err != nil || !ok {
		return err
	}
	key, err := o.key()
	if err != nil {
		return err
	}
	info := WindowInfo{Start: r.w.Start, End: r.w.End, Timing: timing, Index: st.fires}
	st.fires++
	if o.w.spec.mode != Retracting {
		o.result(key, info, acc, o.emit)
	} else {
		if err := o.retractPrev(st.prev); err != nil {
			return err
		}
		o.captured = o.captured[:0]
		o.result(key, info, acc, func(u U) {
			o.captured = append(o.captured, o.out.Append(nil, u))
			o.emit(u)
		})
		st.prev = append(st.prev[:0], o.captured...)
	}
	if o.w.spec.mode == Discarding {
		return o.accs.del(r.state)
	}
	return nil
}

func (o *winOp[K, T, A, U]) retractPrev(prev [][]byte) error {
	if o.w.spec.mode != Retracting {
		return nil
	}
	for _, b := range prev {
		u, err := o.out.Decode(b)
		if err != nil {
			return err
		}
		o.emit(o.retract(u))
	}
	return nil
}

// cleanup drops window r: its trigger state and the contents no later
// window needs.
func (o *winOp[K, T, A, U]) cleanup(r winRef) error {
	if o.mayHaveTrig() {
		if err := o.trig.del(o.nsOf(r.state)); err != nil {
			return err
		}
	}
	if o.w.a.kind == sessionWindows {
		set, err := o.getSessions()
		if err != nil {
			return err
		}
		keep := set[:0]
		for _, s := range set {
			if s.state != r.state {
				keep = append(keep, s)
			}
		}
		if err := o.putSessions(keep); err != nil {
			return err
		}
		return o.accs.del(r.state)
	}
	return o.w.a.lastPanes(r.w, func(p TimeWindow) error { return o.accs.del(p) })
}
