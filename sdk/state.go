package sdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// StateStore gives a keyed operator its state. Every state declared on it
// is scoped to the key of the record being processed: each key has its own
// value, list or map. State lives in the subtask's backend (Pebble when the
// job checkpoints) and is part of every checkpoint and savepoint; it moves
// with its key group when a job is rescaled.
type StateStore struct {
	env   *runtime.Env
	key   []byte // encoded key of the record being processed
	group int
	names map[string]bool
}

func newStateStore(env *runtime.Env) *StateStore {
	return &StateStore{env: env, names: map[string]bool{}}
}

// scopeTo scopes the store to key, encoded with c.
func scopeTo[K any](s *StateStore, c Codec[K], key K) {
	s.key = c.Append(s.key[:0], key)
	s.group = keygroup.Of(keygroup.Hash(s.key), s.env.MaxParallelism())
}

// StateOption configures a declared state.
type StateOption interface{ applyState(*stateConfig) }

type stateConfig struct{ ttl time.Duration }

type ttlOption time.Duration

func (t ttlOption) applyState(c *stateConfig) { c.ttl = time.Duration(t) }

// WithTTL makes a state's values expire d after they were last written:
// expired values read as absent (Flink's OnCreateAndWrite, NeverReturnExpired).
func WithTTL(d time.Duration) StateOption { return ttlOption(d) }

// ErrStateDeclared is the panic value's cause when an operator declares two
// states with one name.
var ErrStateDeclared = errors.New("sdk: state declared twice")

// stateHandle is the untyped core of every state: where its entries live and
// how they expire.
type stateHandle struct {
	s      *StateStore
	prefix []byte // uid 0x00 name 0x00
	ttl    time.Duration
	buf    []byte
	val    []byte
}

// newHandle declares state name of s's operator; typ says what its entries
// hold and how they are encoded (see stateType). The declaration goes into
// the subtask's snapshots, and a restored one with another type fails the
// task for good: reading state as something else would silently corrupt it.
func newHandle(s *StateStore, name, typ string, opts []StateOption) *stateHandle {
	if s.names[name] {
		panic(fmt.Errorf("%w: %q in operator %s", ErrStateDeclared, name, s.env.UID()))
	}
	s.names[name] = true
	s.env.DeclareState(name, typ)
	var c stateConfig
	for _, o := range opts {
		o.applyState(&c)
	}
	return &stateHandle{s: s, prefix: statePrefix(s.env.UID(), name), ttl: c.ttl}
}

// stateType describes a state of kind holding V encoded with c, e.g.
// "value int64 (sdk.int64Codec)".
func stateType[V any](kind string, c Codec[V]) string {
	return fmt.Sprintf("%s %s (%s)", kind, typeName(reflect.TypeFor[V]()), typeName(reflect.TypeOf(c)))
}

func statePrefix(uid, name string) []byte {
	return append(append(append([]byte(uid), 0), name...), 0)
}

// appendStateKey lays out a state key: key group, operator uid and state
// name, then the length-prefixed user key, so all entries of one key (a
// map's) share a prefix.
func appendStateKey(dst []byte, group int, prefix, key []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(group))
	dst = append(dst, prefix...)
	return uvarintframe.AppendBytes(dst, key)
}

// entry returns the backend key of the current key's entry (plus suffix).
func (h *stateHandle) entry(suffix []byte) []byte {
	h.buf = append(appendStateKey(h.buf[:0], h.s.group, h.prefix, h.s.key), suffix...)
	return h.buf
}

// unwrap strips a value's expiry; ok is false when it expired.
func (h *stateHandle) unwrap(v []byte) ([]byte, bool) {
	if h.ttl == 0 {
		return v, true
	}
	if len(v) < 8 || time.Now().UnixMilli() >= int64(binary.BigEndian.Uint64(v)) {
		return nil, false
	}
	return v[8:], true
}

func (h *stateHandle) get(suffix []byte) ([]byte, bool, error) {
	k := h.entry(suffix)
	v, ok, err := h.s.env.State().Get(k)
	if err != nil || !ok {
		return nil, false, err
	}
	v, live := h.unwrap(v)
	if !live {
		return nil, false, h.s.env.State().Delete(k)
	}
	return v, true, nil
}

func (h *stateHandle) put(suffix []byte, val func([]byte) []byte) error {
	h.val = h.val[:0]
	if h.ttl > 0 {
		h.val = binary.BigEndian.AppendUint64(h.val, uint64(time.Now().Add(h.ttl).UnixMilli()))
	}
	h.val = val(h.val)
	return h.s.env.State().Set(h.entry(suffix), h.val)
}

func (h *stateHandle) del(suffix []byte) error { return h.s.env.State().Delete(h.entry(suffix)) }

// scan visits the current key's entries (a map's) that have not expired.
func (h *stateHandle) scan(fn func(suffix, val []byte) error) error {
	base := append([]byte(nil), h.entry(nil)...)
	return h.s.env.State().Scan(base, func(k, v []byte) error {
		if v, live := h.unwrap(v); live {
			return fn(k[len(base):], v)
		}
		return nil
	})
}

// scanAll visits every key's entry of this state held by the subtask, with
// the encoded user key (the built-in aggregations emit them at end of input).
func (h *stateHandle) scanAll(fn func(key, val []byte) error) error {
	return h.scanEntries(func(key, suffix, val []byte) error {
		if len(suffix) > 0 {
			return runtime.ErrCorruptItems
		}
		return fn(key, val)
	})
}

// scanEntries visits every entry of this state held by the subtask, with its
// encoded user key and suffix (a map key, a timer, a window).
func (h *stateHandle) scanEntries(fn func(key, suffix, val []byte) error) error {
	return h.s.env.State().Scan(nil, func(k, v []byte) error {
		if len(k) < 2+len(h.prefix) || string(k[2:2+len(h.prefix)]) != string(h.prefix) {
			return nil
		}
		r := uvarintframe.NewReader(k[2+len(h.prefix):])
		key := r.Frame()
		suffix := r.Rest()
		if r.Err() != nil {
			return fmt.Errorf("%w: state key: %w", runtime.ErrCorruptItems, r.Err())
		}
		if v, live := h.unwrap(v); live {
			return fn(key, suffix, v)
		}
		return nil
	})
}

// ValueState is one value per key.
type ValueState[V any] struct {
	h *stateHandle
	c Codec[V]
}

// NewValueState declares a value state on the store.
func NewValueState[V any](s *StateStore, name string, opts ...StateOption) *ValueState[V] {
	c := stateCodec[V]()
	return &ValueState[V]{h: newHandle(s, name, stateType("value", c), opts), c: c}
}

// Get returns the key's value, if it has one.
func (v *ValueState[V]) Get() (V, bool, error) {
	var zero V
	b, ok, err := v.h.get(nil)
	if err != nil || !ok {
		return zero, false, err
	}
	x, err := v.c.Decode(b)
	return x, err == nil, err
}

// Set replaces the key's value.
func (v *ValueState[V]) Set(x V) error {
	return v.h.put(nil, func(dst []byte) []byte { return v.c.Append(dst, x) })
}

// Clear removes the key's value.
func (v *ValueState[V]) Clear() error { return v.h.del(nil) }

// ListState is a list of values per key.
type ListState[V any] struct {
	h *stateHandle
	c Codec[V]
}

// NewListState declares a list state on the store.
func NewListState[V any](s *StateStore, name string, opts ...StateOption) *ListState[V] {
	c := stateCodec[V]()
	return &ListState[V]{h: newHandle(s, name, stateType("list", c), opts), c: c}
}

// Get returns the key's list (nil when empty).
func (l *ListState[V]) Get() ([]V, error) {
	b, ok, err := l.h.get(nil)
	if err != nil || !ok {
		return nil, err
	}
	items, err := runtime.DecodeItems(b)
	if err != nil {
		return nil, err
	}
	out := make([]V, len(items))
	for i, it := range items {
		if out[i], err = l.c.Decode(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Add appends x to the key's list.
func (l *ListState[V]) Add(x V) error {
	old, _, err := l.h.get(nil)
	if err != nil {
		return err
	}
	old = append([]byte(nil), old...)
	elem := l.c.Append(nil, x)
	return l.h.put(nil, func(dst []byte) []byte {
		return uvarintframe.AppendBytes(append(dst, old...), elem)
	})
}

// Clear empties the key's list.
func (l *ListState[V]) Clear() error { return l.h.del(nil) }

// MapState is a map per key.
type MapState[UK comparable, UV any] struct {
	h  *stateHandle
	kc Codec[UK]
	vc Codec[UV]
	kb []byte
}

// NewMapState declares a map state on the store.
func NewMapState[UK comparable, UV any](s *StateStore, name string, opts ...StateOption) *MapState[UK, UV] {
	kc, vc := stateCodec[UK](), stateCodec[UV]()
	return &MapState[UK, UV]{h: newHandle(s, name, stateType("map key", kc)+", "+stateType("value", vc), opts), kc: kc, vc: vc}
}

func (m *MapState[UK, UV]) mapKey(k UK) []byte {
	m.kb = m.kc.Append(m.kb[:0], k)
	return m.kb
}

// Get returns the value under k in the key's map.
func (m *MapState[UK, UV]) Get(k UK) (UV, bool, error) {
	var zero UV
	b, ok, err := m.h.get(m.mapKey(k))
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := m.vc.Decode(b)
	return v, err == nil, err
}

// Put sets k to v in the key's map.
func (m *MapState[UK, UV]) Put(k UK, v UV) error {
	return m.h.put(m.mapKey(k), func(dst []byte) []byte { return m.vc.Append(dst, v) })
}

// Delete removes k from the key's map.
func (m *MapState[UK, UV]) Delete(k UK) error { return m.h.del(m.mapKey(k)) }

// Entries visits the key's map in the order of the encoded map keys.
func (m *MapState[UK, UV]) Entries(fn func(k UK, v UV) error) error {
	return m.h.scan(func(suffix, val []byte) error {
		k, err := m.kc.Decode(suffix)
		if err != nil {
			return err
		}
		v, err := m.vc.Decode(val)
		if err != nil {
			return err
		}
		return fn(k, v)
	})
}

// Clear empties the key's map.
func (m *MapState[UK, UV]) Clear() error {
	var doomed [][]byte
	if err := m.h.scan(func(suffix, _ []byte) error {
		doomed = append(doomed, append([]byte(nil), suffix...))
		return nil
	}); err != nil {
		return err
	}
	for _, s := range doomed {
		if err := m.h.del(s); err != nil {
			return err
		}
	}
	return nil
}

// ReducingState folds the values added for a key with a reduce function.
type ReducingState[V any] struct {
	v      *ValueState[V]
	reduce func(acc, x V) V
}

// NewReducingState declares a reducing state on the store.
func NewReducingState[V any](s *StateStore, name string, reduce func(acc, x V) V, opts ...StateOption) *ReducingState[V] {
	return &ReducingState[V]{v: NewValueState[V](s, name, opts...), reduce: reduce}
}

// Add folds x into the key's value.
func (r *ReducingState[V]) Add(x V) error {
	acc, ok, err := r.v.Get()
	if err != nil {
		return err
	}
	if ok {
		x = r.reduce(acc, x)
	}
	return r.v.Set(x)
}

// Get returns the key's folded value.
func (r *ReducingState[V]) Get() (V, bool, error) { return r.v.Get() }

// Clear removes the key's value.
func (r *ReducingState[V]) Clear() error { return r.v.Clear() }

// AggregatingState folds the values added for a key with an AggregateFunc.
type AggregatingState[T, A, R any] struct {
	v   *ValueState[A]
	agg AggregateFunc[T, A, R]
}

// NewAggregatingState declares an aggregating state on the store.
func NewAggregatingState[T, A, R any](s *StateStore, name string, agg AggregateFunc[T, A, R], opts ...StateOption) *AggregatingState[T, A, R] {
	return &AggregatingState[T, A, R]{v: NewValueState[A](s, name, opts...), agg: agg}
}

// Add folds x into the key's accumulator.
func (a *AggregatingState[T, A, R]) Add(x T) error {
	acc, ok, err := a.v.Get()
	if err != nil {
		return err
	}
	if !ok {
		acc = a.agg.Init()
	}
	return a.v.Set(a.agg.Add(acc, x))
}

// Get returns the result for the key's accumulator.
func (a *AggregatingState[T, A, R]) Get() (R, bool, error) {
	var zero R
	acc, ok, err := a.v.Get()
	if err != nil || !ok {
		return zero, false, err
	}
	return a.agg.Result(acc), true, nil
}

// Clear removes the key's accumulator.
func (a *AggregatingState[T, A, R]) Clear() error { return a.v.Clear() }

// stateCodec is CodecFor[T], refusing types JSON would corrupt. Declaring
// state happens in an operator's open function, where a panic fails the
// task with this message.
func stateCodec[T any]() Codec[T] {
	c := CodecFor[T]()
	if err := checkJSONSafe(c); err != nil {
		panic(err)
	}
	return c
}

// KeyedProcess runs process for every record of k. open runs once per
// subtask: it declares the operator's state on the store and returns the
// function that handles a record. While it runs, the store is scoped to the
// record's key. An error from process fails the task (and the job restarts
// from its last checkpoint).
func KeyedProcess[K comparable, T, U any](k KeyedStream[K, T], open func(s *StateStore) (func(key K, v T, emit func(U)) error, error), opts ...Option) Stream[U] {
	return keyedTransform(k, "process", "KeyedProcess", opts, func(env *runtime.Env, emit func(U)) (runtime.OpRun, error) {
		store := newStateStore(env)
		process, err := open(store)
		if err != nil {
			return runtime.OpRun{}, err
		}
		return runtime.OpRun{In: keyedIn(env, store, k, process, emit)}, nil
	})
}
