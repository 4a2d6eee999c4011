package sdk

import (
	"fmt"

	"github.com/weir-run/weir/internal/keygroup"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// Map applies f to every record.
//
// When the output type is the input type, the output keeps the input's
// codec and event time, as Filter does. Event time is a function of the
// record (AssignTimestamps, WithTimestamps), so it is read from the output
// record by the same function: a Map that changes what that function reads,
// or one to another type, declares the output's event time with
// WithTimestamps after it (watermarks travel on unchanged either way).
func Map[T, U any](s Stream[T], f func(T) U, opts ...Option) Stream[U] {
	out := transform(s, "map", "Map", opts, func(_ *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		return runtime.OpRun{In: func(v T) { emit(f(v)) }}, nil
	})
	out.n.stateless = true
	return keepEventTime(s, out)
}

// Filter keeps the records for which keep returns true. Its output has its
// input's codec and event time.
func Filter[T any](s Stream[T], keep func(T) bool, opts ...Option) Stream[T] {
	out := transform(s, "filter", "Filter", opts, func(_ *runtime.Env, emit func(T)) (runtime.OpRun, error) {
		return runtime.OpRun{In: func(v T) {
			if keep(v) {
				emit(v)
			}
		}}, nil
	})
	out.n.stateless = true
	out.ts = s.ts
	return out
}

// FlatMap calls f with every record and a function that emits any number of
// results. Like Map, it keeps the input's codec and event time when the
// output type is the input type.
func FlatMap[T, U any](s Stream[T], f func(v T, emit func(U)), opts ...Option) Stream[U] {
	out := transform(s, "flatmap", "FlatMap", opts, func(_ *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		return runtime.OpRun{In: func(v T) { f(v, emit) }}, nil
	})
	out.n.stateless = true
	return keepEventTime(s, out)
}

// keepEventTime gives out the event time of in when their record types are
// the same; records do not carry event time through the runtime (it is read
// from the value by Stream.ts), so a stream of another type cannot keep it.
func keepEventTime[T, U any](in Stream[T], out Stream[U]) Stream[U] {
	if ts, ok := any(in.ts).(func(U) int64); ok {
		out.ts = ts
	}
	return out
}

// transform adds a one-input operator whose instance for a subtask is built
// by newRun from the function that emits downstream. Its output stream has
// the input's codec when the types match and no WithCodec says otherwise:
// the input's may be one the type's default cannot replace (a connector's,
// a WithCodec'd one).
func transform[T, U any](s Stream[T], kind, name string, opts []Option, newRun func(*runtime.Env, func(U)) (runtime.OpRun, error)) Stream[U] {
	cfg := config(opts)
	if c, ok := any(s.codec).(Codec[U]); ok && cfg.codec == nil {
		cfg.codec = c
	}
	n, codec := addNode[U](s.p, kind, name, cfg, true)
	connect(s, n)
	n.NewOp = func(env *runtime.Env, emit any) (runtime.OpRun, error) { return newRun(env, emit.(func(U))) }
	return newStream(s.p, n, codec)
}

// KeyedStream is a stream partitioned by key: every record with the same key
// goes to the same subtask of the next operator, which may keep state per key.
type KeyedStream[K comparable, T any] struct {
	s        Stream[T]
	key      func(T) K
	keyCodec Codec[K]
}

// KeyBy partitions s by the key that key extracts. The key's codec (CodecFor[K])
// determines its key group, so it must be deterministic.
func KeyBy[K comparable, T any](s Stream[T], key func(T) K) KeyedStream[K, T] {
	kc := CodecFor[K]()
	if err := checkJSONSafe(kc); err != nil {
		s.p.fail(fmt.Errorf("KeyBy: key %w", err))
	}
	return KeyedStream[K, T]{s: s, key: key, keyCodec: kc}
}

// keyHasher returns a fresh function hashing a record's key. Each subtask
// gets its own, so the scratch buffer is never shared.
func (k KeyedStream[K, T]) keyHasher() func(T) uint64 {
	var buf []byte
	return func(v T) uint64 {
		buf = k.keyCodec.Append(buf[:0], k.key(v))
		return keygroup.Hash(buf)
	}
}

// emitFinal marks keyed aggregations that emit once per key at end of input.
type emitFinal struct{}

func (emitFinal) apply(*opConfig) {}

// EmitFinal makes a keyed Reduce or Aggregate emit one result per key when
// its input ends, instead of an updated result for every record. It suits
// bounded jobs (a word count over a file); an unbounded job never emits.
func EmitFinal() Option { return emitFinal{} }

func hasEmitFinal(opts []Option) bool {
	for _, o := range opts {
		if _, ok := o.(emitFinal); ok {
			return true
		}
	}
	return false
}

// Reduce combines the records of each key with f, keeping the running result
// in keyed state. It emits the updated result for every record (a changelog,
// as Flink and Kafka Streams do), or with EmitFinal one result per key at end.
func Reduce[K comparable, T any](k KeyedStream[K, T], f func(acc, v T) T, opts ...Option) Stream[T] {
	return fold(k, "reduce", "Reduce", "reduce", k.s.codec, opts,
		func(acc T, ok bool, v T) T {
			if ok {
				return f(acc, v)
			}
			return v
		},
		func(_ K, acc T) T { return acc })
}

// AggregateFunc folds records of type T into an accumulator A and reads a
// result R from it (Flink's AggregateFunction).
type AggregateFunc[T, A, R any] struct {
	Init   func() A
	Add    func(acc A, v T) A
	Result func(acc A) R
	// Merge combines two accumulators: sliding windows combine their panes
	// and sessions merge with it, and with it WindowAggregate pre-aggregates
	// before the shuffle (a combiner; NoCombiner opts out), so it must agree
	// with Add: merging the fold of some records into an accumulator is
	// adding them to it. Optional elsewhere.
	Merge func(a, b A) A
}

// Count is an AggregateFunc counting records.
func Count[T any]() AggregateFunc[T, int64, int64] {
	return AggregateFunc[T, int64, int64]{
		Init:   func() int64 { return 0 },
		Add:    func(n int64, _ T) int64 { return n + 1 },
		Result: func(n int64) int64 { return n },
		Merge:  func(a, b int64) int64 { return a + b },
	}
}

// Aggregate folds the records of each key with agg, keeping the accumulator
// in keyed state, and emits (key, result) pairs: one per record, or with
// EmitFinal one per key at end of input.
func Aggregate[K comparable, T, A, R any](k KeyedStream[K, T], agg AggregateFunc[T, A, R], opts ...Option) Stream[KV[K, R]] {
	ac := CodecFor[A]()
	if err := checkJSONSafe(ac); err != nil {
		k.s.p.fail(fmt.Errorf("Aggregate: accumulator %w", err))
	}
	opts = append([]Option{WithCodec[KV[K, R]](KVCodec[K, R]{K: k.keyCodec, V: CodecFor[R]()})}, opts...)
	return fold(k, "aggregate", "Aggregate", "acc", ac, opts,
		func(acc A, ok bool, v T) A {
			if !ok {
				acc = agg.Init()
			}
			return agg.Add(acc, v)
		},
		func(key K, acc A) KV[K, R] { return KV[K, R]{Key: key, Value: agg.Result(acc)} })
}

// fold is the one keyed aggregation behind Reduce and Aggregate: an
// accumulator per key in a ValueState, updated by add for every record (ok
// says whether the key had one); out says what to emit, for every record or,
// with EmitFinal, once per key at end of input.
func fold[K comparable, T, A, U any](k KeyedStream[K, T], kind, name, state string, ac Codec[A], opts []Option,
	add func(acc A, ok bool, v T) A, out func(key K, acc A) U) Stream[U] {
	final := hasEmitFinal(opts)
	return keyedTransform(k, kind, name, opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		store := newStateStore(env)
		acc := newValueState(store, state, ac, nil)
		run := runtime.OpRun{Snapshot: store.snapshot, In: func(v T) {
			key := k.key(v)
			scopeTo(store, k.keyCodec, key)
			a, ok, err := acc.Get()
			if err == nil {
				a = add(a, ok, v)
				err = acc.Set(a)
			}
			if err != nil {
				env.Fail(err)
				return
			}
			if !final {
				emit(out(key, a))
			}
		}}
		if final {
			run.Finish = func() error {
				return acc.h.scanAll(func(key, val []byte) error {
					kk, err := k.keyCodec.Decode(key)
					if err != nil {
						return err
					}
					a, err := ac.Decode(val)
					if err != nil {
						return err
					}
					emit(out(kk, a))
					return nil
				})
			}
		}
		return run, nil
	})
}

// keyedTransform adds an operator fed by a HASH link of a keyed stream.
func keyedTransform[K comparable, T, U any](k KeyedStream[K, T], kind, name string, opts []Option, newRun func(*runtime.Env, func(U)) (runtime.OpRun, error)) Stream[U] {
	out := transform(k.s, kind, name, opts, newRun)
	out.n.Keyed = true
	l := out.n.inputs[len(out.n.inputs)-1]
	l.part = weirv1.Partitioning_PARTITIONING_HASH
	l.keyHash = func() any { return k.keyHasher() }
	return out
}
