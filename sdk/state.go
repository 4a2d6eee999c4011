package sdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// StateStore gives a keyed operator its state. Every state declared on it
// is scoped to the key of the record being processed: each key has its own
// value, list or map. State lives in the subtask's backend (Pebble when the
// job checkpoints) and is part of every checkpoint and savepoint; it moves
// with its key group when a job is rescaled.
//
// Values, lists and maps without a TTL live typed in the operator's memory
// and reach the backend at checkpoints (or when they outgrow memory): Get
// returns the value Set stored, not a copy, so a value whose slices or
// maps are changed in place is changed in state; Set it again for the
// change to last. States with a TTL are read from and written to the
// backend on every call.
type StateStore struct {
	env   *runtime.Env
	key   []byte // encoded key of the record being processed
	group int
	names map[string]bool
	// recordTS is the event time of the record being handled, when
	// inRecord and its stream has event time (WithEventTimeTTL's clock).
	recordTS int64
	inRecord bool
	// watermark is the operator's event-time watermark; nil until an
	// operator that tracks it (one with timers) sets it.
	watermark func() int64
	// eventTTL says a state was declared with WithEventTimeTTL: the
	// operator must then track its watermark.
	eventTTL bool

	// Heap state (heapstate.go): cur is the interned key the store is
	// scoped to (nil: not interned yet), keys the interned keys some cell
	// or timer holds, caches the states whose cells live here, cells how
	// many they hold and cellBudget how many they may.
	cur        *keyRef
	keys       keyIndex
	caches     []heapCache
	cells      int
	cellBudget int
}

func newStateStore(env *runtime.Env) *StateStore {
	return &StateStore{env: env, names: map[string]bool{}, keys: newKeyIndex(), cellBudget: defaultCellBudget}
}

// scopeTo scopes the store to key, encoded with c.
func scopeTo[K any](s *StateStore, c Codec[K], key K) {
	s.key = c.Append(s.key[:0], key)
	s.setScope()
}

// eventNow is the operator's watermark (math.MinInt64 before the first).
func (s *StateStore) eventNow() int64 {
	if s.watermark == nil {
		return math.MinInt64
	}
	return s.watermark()
}

// StateOption configures a declared state.
type StateOption interface{ applyState(*stateConfig) }

type stateConfig struct {
	ttl       time.Duration
	eventTime bool // the TTL counts event time (WithEventTimeTTL)
}

type ttlOption struct {
	d         time.Duration
	eventTime bool
}

func (t ttlOption) applyState(c *stateConfig) { c.ttl, c.eventTime = t.d, t.eventTime }

// WithTTL makes a state's values expire d of wall-clock time after they
// were last written: expired values read as absent (Flink's
// OnCreateAndWrite, NeverReturnExpired). The clock is the machine's, at the
// moment of the write and of the read, whatever the records' event times:
// a job replaying old data (a backfill, a restore after a long outage, a
// job started at the earliest offsets) keeps values its records' times say
// are long expired, and expires values the replayed records still need if
// the replay takes longer than d. WithEventTimeTTL counts event time
// instead. The expiry is stored with each value, so it survives
// checkpoints and restores and keeps counting while the job is down. Each
// element of a ListState and each entry of a MapState expires on its own.
func WithTTL(d time.Duration) StateOption { return ttlOption{d: d} }

// WithEventTimeTTL makes a state's values expire d of event time after
// they were last written. A value written while handling a record expires
// at the record's event time plus d (at the operator's watermark plus d
// when the input has no event time, or in a timer callback), and reads as
// absent once the operator's watermark reaches that time. So expiry follows
// the data, not the clock: a backfill of last month's records at full speed
// expires values exactly as the live job did, and a job whose input stalls
// expires nothing. The watermark is the operator's own (Timers.Watermark),
// restored with its checkpoint.
//
// A state declared with WithEventTimeTTL has another declared type than the
// same state with WithTTL or no TTL: restoring one from a checkpoint of the
// other fails the job, since their stored expiries do not mean the same.
func WithEventTimeTTL(d time.Duration) StateOption { return ttlOption{d: d, eventTime: true} }

// ErrStateDeclared is the panic value's cause when an operator declares two
// states with one name.
var ErrStateDeclared = errors.New("sdk: state declared twice")

// stateHandle is the untyped core of every state: where its entries live and
// how they expire.
type stateHandle struct {
	s      *StateStore
	prefix []byte // uid 0x00 name 0x00
	ttl    time.Duration
	// eventTime: the ttl counts the operator's event time, not the clock.
	eventTime bool
	buf       []byte
	val       []byte
	// restored is restoredKeys' answer once restoredListed.
	restored       map[string]struct{}
	restoredListed bool
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
	var c stateConfig
	for _, o := range opts {
		o.applyState(&c)
	}
	if c.eventTime && c.ttl > 0 {
		typ += " with event-time TTL"
		s.eventTTL = true
	}
	s.env.DeclareState(name, typ)
	h := &stateHandle{s: s, prefix: statePrefix(s.env.UID(), name), ttl: c.ttl, eventTime: c.eventTime}
	if s.env.RestoredParallelism() == 0 {
		h.restored, h.restoredListed = noKeys, true // a fresh subtask restored none
	}
	return h
}

// noKeys is the empty key list (never written to).
var noKeys = map[string]struct{}{}

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
func appendStateKey[B []byte | string](dst []byte, group int, prefix []byte, key B) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(group))
	dst = append(dst, prefix...)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

// entry returns the backend key of the current key's entry (plus suffix).
func (h *stateHandle) entry(suffix []byte) []byte {
	h.buf = append(appendStateKey(h.buf[:0], h.s.group, h.prefix, h.s.key), suffix...)
	return h.buf
}

// now is the time expiries are compared with (unix ms): the operator's
// watermark for an event-time TTL, the clock otherwise.
func (h *stateHandle) now() int64 {
	if h.eventTime {
		return h.s.eventNow()
	}
	return time.Now().UnixMilli()
}

// expiry is when a value written now expires: its write time (the record's
// event time, else the watermark, for an event-time TTL) plus the TTL,
// saturating.
func (h *stateHandle) expiry() int64 {
	at := h.now()
	if h.eventTime && h.s.inRecord {
		at = h.s.recordTS
	}
	if at > math.MaxInt64-h.ttl.Milliseconds() {
		return math.MaxInt64
	}
	return at + h.ttl.Milliseconds()
}

// unwrap strips a value's expiry; ok is false when it expired.
func (h *stateHandle) unwrap(v []byte) ([]byte, bool) {
	if h.ttl == 0 {
		return v, true
	}
	if len(v) < 8 || h.now() >= int64(binary.BigEndian.Uint64(v)) {
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
		h.val = binary.BigEndian.AppendUint64(h.val, uint64(h.expiry()))
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
	if err := h.s.flush(); err != nil {
		return err
	}
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

// errTooMany stops a scan that went past a bound.
var errTooMany = errors.New("too many entries")

// restoredKeys lists the keys this state has entries of from the
// checkpoint the subtask restored (none in a fresh subtask): listKeys
// within the heap state's bounds, listed once per handle, so a list's two
// heap states share the answer. nil means unknown.
func (h *stateHandle) restoredKeys() map[string]struct{} {
	if !h.restoredListed {
		h.restored, h.restoredListed = h.listKeys(maxRestoredKeys, maxRestoredScan), true
	}
	return h.restored
}

// restoredKey says the backend may hold entries of this state for the
// current key from the checkpoint the subtask restored: the key is on the
// state's list of restored keys, or that list is unknown (past its bounds,
// or the backend could not be read).
func (h *stateHandle) restoredKey() bool {
	keys := h.restoredKeys()
	if keys == nil {
		return true
	}
	_, ok := keys[string(h.s.key)]
	return ok
}

// listKeys lists the keys this state has entries of in the backend, or
// returns nil if there are more than maxKeys, more than maxScan entries, or
// the backend cannot be read. It reads only this state's entries: one scan
// per key group, under the group and the state's prefix.
func (h *stateHandle) listKeys(maxKeys, maxScan int) map[string]struct{} {
	keys := map[string]struct{}{}
	scanned := 0
	var prefix []byte
	for g := range h.s.env.MaxParallelism() {
		prefix = append(binary.BigEndian.AppendUint16(prefix[:0], uint16(g)), h.prefix...)
		err := h.s.env.State().Scan(prefix, func(k, _ []byte) error {
			if scanned++; scanned > maxScan {
				return errTooMany
			}
			r := uvarintframe.NewReader(k[len(prefix):])
			key := r.Frame()
			if r.Err() != nil {
				return fmt.Errorf("%w: state key: %w", runtime.ErrCorruptItems, r.Err())
			}
			if _, seen := keys[string(key)]; !seen {
				if len(keys) == maxKeys {
					return errTooMany
				}
				keys[string(key)] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return nil
		}
	}
	return keys
}

// ValueState is one value per key.
type ValueState[V any] struct {
	h *stateHandle
	c Codec[V]
	// hs holds the values in memory (nil with a TTL: the backend does).
	hs *heapState[struct{}, V]
}

// NewValueState declares a value state on the store.
func NewValueState[V any](s *StateStore, name string, opts ...StateOption) *ValueState[V] {
	return newValueState(s, name, stateCodec[V](), opts)
}

func newValueState[V any](s *StateStore, name string, c Codec[V], opts []StateOption) *ValueState[V] {
	v := &ValueState[V]{h: newHandle(s, name, stateType("value", c), opts), c: c}
	if v.h.ttl == 0 {
		v.hs = newHeapState(v.h, c, noNS)
	}
	return v
}

// Get returns the key's value, if it has one.
func (v *ValueState[V]) Get() (V, bool, error) {
	if v.hs != nil {
		return v.hs.get(struct{}{})
	}
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
	if v.hs != nil {
		return v.hs.put(struct{}{}, x)
	}
	return v.h.put(nil, func(dst []byte) []byte { return v.c.Append(dst, x) })
}

// Clear removes the key's value.
func (v *ValueState[V]) Clear() error {
	if v.hs != nil {
		return v.hs.del(struct{}{})
	}
	return v.h.del(nil)
}

// ListState is a list of values per key.
//
// Each element is an entry of its own in the backend, numbered in the
// order added, and a small entry per key holds the range of numbers in
// use. So Add writes one element (and the range) whatever the list's
// length, RemoveIf deletes only what it removes and Update writes only the
// elements that changed; Get reads the elements one by one (point reads),
// never the whole list as one value. With a TTL, each element expires on
// its own, d after it was added.
//
// Without a TTL the range and the elements live typed in heap cells
// (heapstate.go) over those same entries, as ValueState's values do: Add
// encodes nothing, and a checkpoint writes the elements added or changed
// since the last one. (In a subtask that restored a checkpoint, the first
// call for a key may read its entries, and a list written whole by an
// older version, from the backend.) Elements are kept as given: Add(x)
// keeps x, not a copy, and Get returns what is kept, so an element whose
// slices or maps are changed in place (a buffer reused across Adds) is
// changed in state; Update the list for a change to last.
type ListState[V any] struct {
	h         *stateHandle
	c         Codec[V]
	enc, prev []byte
	sfx       [9]byte
	// ranges and elems hold the entries in memory (nil with a TTL).
	ranges *heapState[struct{}, listRange]
	elems  *heapState[uint64, V]
}

// Suffixes of a list's entries after the key's: listMeta holds the range
// of element numbers [first, next) and whether an old whole-list entry may
// exist; an element is listElem and its 8-byte big-endian number. The
// entry without suffix is a whole list in one value, as versions before
// per-element entries wrote it: it reads first, RemoveIf rewrites it,
// Update and Clear delete it. It is never a heap cell: it is read and
// written in the backend directly.
const (
	listMeta = 0x00
	listElem = 0x01
)

// NewListState declares a list state on the store.
func NewListState[V any](s *StateStore, name string, opts ...StateOption) *ListState[V] {
	c := stateCodec[V]()
	l := &ListState[V]{h: newHandle(s, name, stateType("list", c), opts), c: c}
	if l.h.ttl == 0 {
		l.ranges = newHeapState(l.h, Codec[listRange](listRangeCodec{}), func(dst []byte, _ struct{}) []byte { return append(dst, listMeta) })
		l.elems = newHeapState(l.h, c, appendElemSuffix)
	}
	return l
}

// listRange is a key's list entry: element numbers [first, next) may be in
// use, legacy says an old whole-list entry may exist; exp is the entry's
// expiry (with a TTL). ok is false when the key has none.
type listRange struct {
	first, next uint64
	legacy      bool
	exp         int64
	ok          bool
}

// listRangeCodec is the layout of a range entry (after its expiry, with a
// TTL): first, next and legacy as uvarints.
type listRangeCodec struct{}

func (listRangeCodec) Append(dst []byte, r listRange) []byte {
	legacy := uint64(0)
	if r.legacy {
		legacy = 1
	}
	return uvarintframe.AppendUvarints(dst, r.first, r.next, legacy)
}

func (listRangeCodec) Decode(b []byte) (listRange, error) {
	rd := uvarintframe.NewReader(b)
	r := listRange{first: rd.Uvarint(), next: rd.Uvarint(), legacy: rd.Uvarint() == 1, ok: true}
	if err := rd.Done(); err != nil || r.first > r.next {
		return listRange{}, fmt.Errorf("%w: list range", runtime.ErrCorruptItems)
	}
	return r, nil
}

// listEntry is one stored element: its number (legacy: in the old
// whole-list entry), what is stored (with its expiry; none in the heap)
// and its encoding (none in the heap).
type listEntry[V any] struct {
	seq    uint64
	legacy bool
	raw    []byte
	enc    []byte
	v      V
}

var listMetaSuffix = []byte{listMeta}

func appendElemSuffix(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, listElem), seq)
}

func (l *ListState[V]) elemSuffix(seq uint64) []byte { return appendElemSuffix(l.sfx[:0], seq) }

// storedRange reads the key's range entry (ok false when it has none, or
// it expired).
func (l *ListState[V]) storedRange() (listRange, error) {
	if l.ranges != nil {
		r, ok, err := l.ranges.get(struct{}{})
		r.ok = ok
		return r, err
	}
	raw, ok, err := l.h.s.env.State().Get(l.h.entry(listMetaSuffix))
	if err != nil || !ok {
		return listRange{}, err
	}
	var exp int64
	if l.h.ttl > 0 {
		if len(raw) < 8 {
			return listRange{}, fmt.Errorf("%w: list range", runtime.ErrCorruptItems)
		}
		exp, raw = int64(binary.BigEndian.Uint64(raw)), raw[8:]
		// Every element expires no later than the range: all are gone.
		if l.h.now() >= exp {
			return listRange{}, nil
		}
	}
	r, err := listRangeCodec{}.Decode(raw)
	r.exp = exp
	return r, err
}

// readRange reads the key's range. A restored key without one may still
// have a list written whole by an older version.
func (l *ListState[V]) readRange() (listRange, error) {
	r, err := l.storedRange()
	if err != nil || r.ok || !l.h.restoredKey() {
		return r, err
	}
	_, legacy, err := l.h.get(nil)
	return listRange{legacy: legacy}, err
}

// writeRange stores r if it changed from old, or to renew its expiry (an
// element was written: the range must outlive it); a key with no element
// left loses it.
func (l *ListState[V]) writeRange(old, r listRange, renew bool) error {
	if r.first == r.next && !r.legacy {
		switch {
		case !old.ok:
			return nil
		case l.ranges != nil:
			return l.ranges.del(struct{}{})
		}
		return l.h.del(listMetaSuffix)
	}
	renew = renew && l.h.ttl > 0
	if old.ok && !renew && old.first == r.first && old.next == r.next && old.legacy == r.legacy {
		return nil
	}
	if l.ranges != nil {
		return l.ranges.put(struct{}{}, r)
	}
	var val []byte
	if l.h.ttl > 0 {
		exp := r.exp
		if renew || !old.ok {
			exp = max(exp, l.h.expiry())
		}
		val = binary.BigEndian.AppendUint64(val, uint64(exp))
	}
	return l.h.s.env.State().Set(l.h.entry(listMetaSuffix), listRangeCodec{}.Append(val, r))
}

// elem reads element seq; ok is false when it is gone (removed, expired).
func (l *ListState[V]) elem(seq uint64) (e listEntry[V], ok bool, err error) {
	e.seq = seq
	if l.elems != nil {
		e.v, ok, err = l.elems.get(seq)
		return e, ok, err
	}
	st := l.h.s.env.State()
	k := l.h.entry(l.elemSuffix(seq))
	raw, ok, err := st.Get(k)
	if err != nil || !ok {
		return e, false, err
	}
	v, live := l.h.unwrap(raw)
	if !live {
		return e, false, st.Delete(k)
	}
	e.raw = append([]byte(nil), raw...)
	e.enc = e.raw[len(raw)-len(v):]
	e.v, err = l.c.Decode(e.enc)
	return e, true, err
}

// setElem writes x as element seq; enc is its encoding when the caller
// has it already.
func (l *ListState[V]) setElem(seq uint64, x V, enc []byte) error {
	if l.elems != nil {
		return l.elems.put(seq, x)
	}
	if enc == nil {
		enc = l.c.Append(l.enc[:0], x)
		l.enc = enc
	}
	return l.h.put(l.elemSuffix(seq), func(dst []byte) []byte { return append(dst, enc...) })
}

func (l *ListState[V]) delElem(seq uint64) error {
	if l.elems != nil {
		return l.elems.del(seq)
	}
	return l.h.del(l.elemSuffix(seq))
}

// moveElem renumbers e to seq, keeping its expiry.
func (l *ListState[V]) moveElem(e listEntry[V], seq uint64) error {
	if l.elems != nil {
		if err := l.setElem(seq, e.v, nil); err != nil {
			return err
		}
		return l.delElem(e.seq)
	}
	st := l.h.s.env.State()
	if err := st.Set(l.h.entry(l.elemSuffix(seq)), e.raw); err != nil {
		return err
	}
	return st.Delete(l.h.entry(l.elemSuffix(e.seq)))
}

// entries reads the key's range and live elements in order. Numbers at the
// front of the range whose elements are gone (expired) are dropped from it.
func (l *ListState[V]) entries() (listRange, []listEntry[V], error) {
	r, err := l.readRange()
	if err != nil {
		return r, nil, err
	}
	var es []listEntry[V]
	if r.legacy {
		b, ok, err := l.h.get(nil)
		if err != nil {
			return r, nil, err
		}
		if ok {
			items, err := runtime.DecodeItems(b)
			if err != nil {
				return r, nil, err
			}
			for _, it := range items {
				e := listEntry[V]{legacy: true, enc: append([]byte(nil), it...)}
				if e.v, err = l.c.Decode(e.enc); err != nil {
					return r, nil, err
				}
				es = append(es, e)
			}
		}
	}
	for seq := r.first; seq < r.next; seq++ {
		e, ok, err := l.elem(seq)
		if err != nil {
			return r, nil, err
		}
		if ok {
			es = append(es, e)
		}
	}
	return r, es, nil
}

// trimmed is r without the numbers before its first live element of es.
func trimmed[V any](r listRange, es []listEntry[V]) listRange {
	r.first = r.next
	for _, e := range es {
		if !e.legacy {
			r.first = e.seq
			break
		}
	}
	return r
}

// Get returns the key's list (nil when empty).
func (l *ListState[V]) Get() ([]V, error) {
	r, es, err := l.entries()
	if err == nil && r.ok {
		err = l.writeRange(r, trimmed(r, es), false)
	}
	if err != nil || len(es) == 0 {
		return nil, err
	}
	out := make([]V, len(es))
	for i, e := range es {
		out[i] = e.v
	}
	return out, nil
}

// Add appends x to the key's list: one element and the key's range are
// written, the list is not read.
func (l *ListState[V]) Add(x V) error {
	r, err := l.readRange()
	if err != nil {
		return err
	}
	if err := l.setElem(r.next, x, nil); err != nil {
		return err
	}
	nr := r
	nr.next++
	return l.writeRange(r, nr, true)
}

// RemoveIf removes the elements of the key's list for which remove returns
// true and reports how many it removed. Only their entries are deleted:
// the others are neither rewritten nor renewed (their TTL keeps counting),
// except that when removed elements leave more gaps in the numbering than
// there are elements, the rest are renumbered (their expiry kept), so that
// reading a list costs in proportion to its length.
func (l *ListState[V]) RemoveIf(remove func(V) bool) (int, error) {
	r, es, err := l.entries()
	if err != nil {
		return 0, err
	}
	removed, legacyChanged := 0, false
	var keepLegacy [][]byte
	kept := es[:0]
	for _, e := range es {
		gone := remove(e.v)
		switch {
		case gone:
			removed++
			if e.legacy {
				legacyChanged = true
			} else if err := l.delElem(e.seq); err != nil {
				return removed, err
			}
		case e.legacy:
			keepLegacy = append(keepLegacy, e.enc)
		default:
			kept = append(kept, e)
		}
	}
	nr := trimmed(r, kept)
	if legacyChanged {
		if err := l.rewriteLegacy(keepLegacy); err != nil {
			return removed, err
		}
		nr.legacy = len(keepLegacy) > 0
	}
	if len(kept) > 0 && nr.next-nr.first > 2*uint64(len(kept))+16 {
		// Renumber from first: each element moves at most once per
		// doubling of the gaps.
		for i, e := range kept {
			if seq := nr.first + uint64(i); seq != e.seq {
				if err := l.moveElem(e, seq); err != nil {
					return removed, err
				}
			}
		}
		nr.next = nr.first + uint64(len(kept))
	} else if len(kept) > 0 {
		nr.next = kept[len(kept)-1].seq + 1
	}
	if !r.ok {
		return removed, nil // only an old whole-list entry, rewritten above
	}
	return removed, l.writeRange(r, nr, false)
}

// rewriteLegacy replaces the whole-list entry of an older version by the
// elements kept, keeping its expiry.
func (l *ListState[V]) rewriteLegacy(keep [][]byte) error {
	st := l.h.s.env.State()
	k := l.h.entry(nil)
	if len(keep) == 0 {
		return st.Delete(k)
	}
	raw, _, err := st.Get(k)
	if err != nil {
		return err
	}
	var val []byte
	if l.h.ttl > 0 && len(raw) >= 8 {
		val = append(val, raw[:8]...)
	}
	for _, e := range keep {
		val = uvarintframe.AppendBytes(val, e)
	}
	return st.Set(l.h.entry(nil), val)
}

// Update replaces the key's list with xs (Clear when xs is empty). An
// element equal (in its encoding) to the one already at its position is
// left in place, so changing one element of a long list writes one entry;
// with a TTL every element is written, each write renewing its expiry.
func (l *ListState[V]) Update(xs []V) error {
	if len(xs) == 0 {
		return l.Clear()
	}
	r, es, err := l.entries()
	if err != nil {
		return err
	}
	nr := r
	if r.legacy {
		// The old elements move to entries of their own.
		if err := l.h.del(nil); err != nil {
			return err
		}
		es = slices.DeleteFunc(es, func(e listEntry[V]) bool { return e.legacy })
		nr.legacy = false
	}
	for i, x := range xs {
		l.enc = l.c.Append(l.enc[:0], x)
		seq := nr.next
		if i < len(es) {
			if l.unchanged(es[i], l.enc) {
				continue
			}
			seq = es[i].seq
		} else {
			nr.next++
		}
		if err := l.setElem(seq, x, l.enc); err != nil {
			return err
		}
	}
	for _, e := range es[min(len(xs), len(es)):] {
		if err := l.delElem(e.seq); err != nil {
			return err
		}
	}
	if len(xs) < len(es) {
		nr.next = es[len(xs)-1].seq + 1
	}
	nr = trimmed(nr, es[:min(len(xs), len(es))])
	if len(es) == 0 {
		nr.first = r.next
	}
	return l.writeRange(r, nr, true)
}

// unchanged says element e is stored as enc already: Update leaves it, so
// neither Update nor the next checkpoint writes it. With a TTL every
// element is written, its expiry renewed.
func (l *ListState[V]) unchanged(e listEntry[V], enc []byte) bool {
	if l.h.ttl > 0 {
		return false
	}
	stored := e.enc
	if l.elems != nil {
		l.prev = l.c.Append(l.prev[:0], e.v)
		stored = l.prev
	}
	return bytes.Equal(stored, enc)
}

// Clear empties the key's list: it deletes every number of the range
// without reading the elements.
func (l *ListState[V]) Clear() error {
	r, err := l.readRange()
	if err != nil {
		return err
	}
	for seq := r.first; seq < r.next; seq++ {
		if err := l.delElem(seq); err != nil {
			return err
		}
	}
	if r.legacy {
		if err := l.h.del(nil); err != nil {
			return err
		}
	}
	return l.writeRange(r, listRange{}, false)
}

// MapState is a map per key.
type MapState[UK comparable, UV any] struct {
	h  *stateHandle
	kc Codec[UK]
	vc Codec[UV]
	kb []byte
	// hs holds the entries in memory, by map key (nil with a TTL).
	hs *heapState[UK, UV]
}

// NewMapState declares a map state on the store.
func NewMapState[UK comparable, UV any](s *StateStore, name string, opts ...StateOption) *MapState[UK, UV] {
	kc, vc := stateCodec[UK](), stateCodec[UV]()
	m := &MapState[UK, UV]{h: newHandle(s, name, stateType("map key", kc)+", "+stateType("value", vc), opts), kc: kc, vc: vc}
	if m.h.ttl == 0 {
		m.hs = newHeapState(m.h, vc, kc.Append)
	}
	return m
}

func (m *MapState[UK, UV]) mapKey(k UK) []byte {
	m.kb = m.kc.Append(m.kb[:0], k)
	return m.kb
}

// Get returns the value under k in the key's map.
func (m *MapState[UK, UV]) Get(k UK) (UV, bool, error) {
	if m.hs != nil {
		return m.hs.get(k)
	}
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
	if m.hs != nil {
		return m.hs.put(k, v)
	}
	return m.h.put(m.mapKey(k), func(dst []byte) []byte { return m.vc.Append(dst, v) })
}

// Delete removes k from the key's map.
func (m *MapState[UK, UV]) Delete(k UK) error {
	if m.hs != nil {
		return m.hs.del(k)
	}
	return m.h.del(m.mapKey(k))
}

// Entries visits the key's map in the order of the encoded map keys.
func (m *MapState[UK, UV]) Entries(fn func(k UK, v UV) error) error {
	scan := m.h.scan
	if m.hs != nil {
		scan = m.hs.scanKey
	}
	return scan(func(suffix, val []byte) error {
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
	if m.hs == nil {
		return clearEntries(m.h)
	}
	var doomed []UK
	if err := m.hs.scanKey(func(suffix, _ []byte) error {
		k, err := m.kc.Decode(suffix)
		doomed = append(doomed, k)
		return err
	}); err != nil {
		return err
	}
	for _, k := range doomed {
		if err := m.hs.del(k); err != nil {
			return err
		}
	}
	return nil
}

// clearEntries deletes every entry of the current key (a map's, a list's),
// expired ones included.
func clearEntries(h *stateHandle) error {
	var doomed [][]byte
	base := append([]byte(nil), h.entry(nil)...)
	if err := h.s.env.State().Scan(base, func(k, _ []byte) error {
		doomed = append(doomed, append([]byte(nil), k[len(base):]...))
		return nil
	}); err != nil {
		return err
	}
	for _, s := range doomed {
		if err := h.del(s); err != nil {
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
		var run runtime.OpRun
		if store.eventTTL {
			// An event-time TTL needs the operator's watermark, restored
			// with its checkpoint: the timer service keeps both.
			ts, err := newTimerService(env, store)
			if err != nil {
				return runtime.OpRun{}, err
			}
			store.watermark = func() int64 { return ts.wm }
			run = timerRun(env, ts, func(TimeDomain, int64, []byte) error { return nil })
		} else {
			run.Snapshot = store.snapshot
		}
		run.In = keyedIn(env, store, k, process, emit)
		return run, nil
	})
}
