package sdk

import (
	"slices"

	"github.com/weir-run/weir/internal/keygroup"
)

// Heap state: the typed values of a subtask's keyed state live in cells in
// the operator, held by their interned keys, and reach the backend (Pebble
// when the job checkpoints) only when the operator snapshots, when the cells
// outgrow their budget, or before something scans the backend. A record
// that reads and updates a value costs a lookup of its key (interned, by
// the store) and a scan of that key's few cells of the state: no backend
// key is built, nothing is encoded, and a value that stays in memory is
// never decoded again. The backend's entries keep their layout
// (appendStateKey, the state's codec), so checkpoints, savepoints and
// rescaling by key group read exactly what the byte path wrote. A subtask
// that restored state lists the keys the backend had (restoredKeys), so
// that a miss on any other key needs no backend read.
//
// A value is kept as given: Get returns the value Set stored, not a copy.
// One whose slices or maps are changed in place after a Set is changed in
// state too (as in Flink's heap backend); Set it again to make that count.

// defaultCellBudget bounds the cells a StateStore keeps in memory: past it,
// every dirty cell is written to the backend and clean ones are dropped
// (second chance) down to three quarters of it. A cell costs about 100 bytes
// plus its value.
const defaultCellBudget = 1 << 20

// keyRef is an encoded key interned by its StateStore while some cell or
// timer holds it, so that cells are found by pointer and a timer scopes the
// store without hashing the key again.
type keyRef struct {
	enc   string
	group int
	refs  int
	// timers are the key's timers set.
	timers keySet[timerSlot, *timer]
	// cells holds, by heap state (heapState.slot), that state's cells of
	// the key: nil (none), its one *cell, or a *keySet of them.
	cells []any
}

// keySet holds a key's items of one kind by their slot: its cells of one
// state (by namespace), its timers (by domain, time and namespace). Most
// keys have a few (a value, a window's panes, a window's timer), which a
// scan of a short list finds faster than hashing (key, slot) into a map of
// every key's items, and adding or dropping one touches no map; a key with
// more than keySetScanMax indexes them in a map of its own.
type keySet[S comparable, T slotted[S]] struct {
	few  []T
	many map[S]T
}

// slotted is an item of a keySet.
type slotted[S comparable] interface {
	comparable
	slot() S
}

const keySetScanMax = 8

func (ks *keySet[S, T]) find(s S) (T, bool) {
	if ks.many != nil {
		x, ok := ks.many[s]
		return x, ok
	}
	for _, x := range ks.few {
		if x.slot() == s {
			return x, true
		}
	}
	var zero T
	return zero, false
}

// add adds x, whose slot the set does not hold.
func (ks *keySet[S, T]) add(x T) {
	if ks.many == nil && len(ks.few) < keySetScanMax {
		ks.few = append(ks.few, x)
		return
	}
	if ks.many == nil {
		ks.many = make(map[S]T, 2*keySetScanMax)
		for _, y := range ks.few {
			ks.many[y.slot()] = y
		}
		ks.few = nil
	}
	ks.many[x.slot()] = x
}

func (ks *keySet[S, T]) remove(x T) {
	if ks.many != nil {
		if delete(ks.many, x.slot()); len(ks.many) == 0 {
			ks.many = nil
		}
		return
	}
	if i := slices.Index(ks.few, x); i >= 0 {
		// Order does not matter: the last item takes its place.
		last := len(ks.few) - 1
		var zero T
		ks.few[i], ks.few[last] = ks.few[last], zero
		ks.few = ks.few[:last]
	}
}

func (ks *keySet[S, T]) len() int { return len(ks.few) + len(ks.many) }

// each calls fn with every item until fn returns false, and reports
// whether it went through all; fn may remove the item it is given.
func (ks *keySet[S, T]) each(fn func(T) bool) bool {
	if ks.many != nil {
		for _, x := range ks.many {
			if !fn(x) {
				return false
			}
		}
		return true
	}
	// Backwards: a removal moves the last item, already visited, into the
	// place of the one removed.
	for i := len(ks.few) - 1; i >= 0; i-- {
		if !fn(ks.few[i]) {
			return false
		}
	}
	return true
}

// ref is the interned key the store is scoped to. It is registered only
// when something retains it: a lookup of a key that holds nothing leaves no
// trace.
func (s *StateStore) ref() *keyRef {
	if s.cur == nil {
		s.cur = &keyRef{enc: string(s.key), group: s.group}
	}
	return s.cur
}

func (s *StateStore) retain(k *keyRef) {
	if k.refs == 0 {
		s.keys.put(k)
	}
	k.refs++
}

func (s *StateStore) release(k *keyRef) {
	k.refs--
	if k.refs == 0 {
		s.keys.del(k)
	}
}

// keyIndex finds the interned keys by their encoding. Most encodings are
// short (an int key's varint takes at most 7 bytes below 2^48), and a map
// keyed by a word, which such an encoding packs into with its length,
// hashes and compares one word where a string-keyed map hashes and
// compares bytes: scoping to a key was 5–7% of the keyed queries' CPU.
type keyIndex struct {
	short map[uint64]*keyRef
	long  map[string]*keyRef
}

func newKeyIndex() keyIndex {
	return keyIndex{short: map[uint64]*keyRef{}, long: map[string]*keyRef{}}
}

// shortKeyMax is the longest encoding a keyIndex packs into a word: the
// top byte holds the length, so that "a" and "a\x00" stay apart.
const shortKeyMax = 7

// packKey is enc and its length in one word, if enc is short enough.
func packKey[B ~string | ~[]byte](enc B) (uint64, bool) {
	if len(enc) > shortKeyMax {
		return 0, false
	}
	w := uint64(len(enc)) << (8 * shortKeyMax)
	for i := range len(enc) {
		w |= uint64(enc[i]) << (8 * i)
	}
	return w, true
}

func (x *keyIndex) get(enc []byte) (*keyRef, bool) {
	if w, ok := packKey(enc); ok {
		k, ok := x.short[w]
		return k, ok
	}
	k, ok := x.long[string(enc)]
	return k, ok
}

func (x *keyIndex) put(k *keyRef) {
	if w, ok := packKey(k.enc); ok {
		x.short[w] = k
		return
	}
	x.long[k.enc] = k
}

func (x *keyIndex) del(k *keyRef) {
	if w, ok := packKey(k.enc); ok {
		delete(x.short, w)
		return
	}
	delete(x.long, k.enc)
}

// all yields every interned key, in no particular order.
func (x *keyIndex) all(yield func(*keyRef) bool) {
	for _, k := range x.short {
		if !yield(k) {
			return
		}
	}
	for _, k := range x.long {
		if !yield(k) {
			return
		}
	}
}

// scopeToBytes scopes the store to an already encoded key.
func (s *StateStore) scopeToBytes(key []byte) {
	s.key = append(s.key[:0], key...)
	s.setScope()
}

// scopeToRef scopes the store to an interned key (a timer's).
func (s *StateStore) scopeToRef(k *keyRef) {
	s.key = append(s.key[:0], k.enc...)
	s.group, s.cur = k.group, k
}

// setScope finishes scoping the store to the key in s.key: the interned
// key if there is one (its group is known), else a new key group hash.
func (s *StateStore) setScope() {
	if k, ok := s.keys.get(s.key); ok {
		s.group, s.cur = k.group, k
		return
	}
	s.cur = nil
	s.group = keygroup.Of(keygroup.Hash(s.key), s.env.MaxParallelism())
}

// heapCache is what the store asks of each heap state.
type heapCache interface {
	// writeBack writes every dirty cell to the backend.
	writeBack() error
	// sweep drops clean cells until the store holds at most target; the
	// first pass spares cells used since the last sweep (and clears their
	// mark), the second takes any.
	sweep(target int, spare bool)
}

// flush writes every heap state's dirty cells to the backend: before a
// snapshot and before a scan of the backend.
func (s *StateStore) flush() error {
	for _, c := range s.caches {
		if err := c.writeBack(); err != nil {
			return err
		}
	}
	return nil
}

// snapshot is the OpRun.Snapshot of an operator whose only state is keyed:
// the runtime checkpoints the backend right after.
func (s *StateStore) snapshot(int64) ([][]byte, error) { return nil, s.flush() }

// maybeEvict keeps the cells within their budget: the state spills to the
// backend.
func (s *StateStore) maybeEvict() error {
	if s.cells <= s.cellBudget {
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	target := s.cellBudget - s.cellBudget/4
	for _, spare := range []bool{true, false} {
		for _, c := range s.caches {
			if s.cells <= target {
				return nil
			}
			c.sweep(target, spare)
		}
	}
	return nil
}

type cellFlags uint8

const (
	// cellPresent: the cell holds a value; without it the key has none.
	cellPresent cellFlags = 1 << iota
	// cellDirty: the backend does not have this value (or deletion) yet.
	cellDirty
	// cellStored: the backend may hold an entry for the cell. Without it a
	// deletion needs no tombstone.
	cellStored
	// cellReferenced: used since the last sweep (second chance).
	cellReferenced
)

type cellKey[N comparable] struct {
	k  *keyRef
	ns N
}

type cell[N comparable, V any] struct {
	key   cellKey[N]
	v     V
	flags cellFlags
	di    int // index in the dirty list while cellDirty
}

func (c *cell[N, V]) dirtyIndex() *int { return &c.di }

// listed is an item of a dirty list that knows its index in it, so that
// an item that no longer needs writing (a window's pane created and
// deleted between two checkpoints, a timer set and fired) leaves the list
// at once instead of piling up until the next write-back, which a job that
// does not checkpoint never has.
type listed interface{ dirtyIndex() *int }

func listAdd[T listed](l []T, x T) []T {
	*x.dirtyIndex() = len(l)
	return append(l, x)
}

// listRemove takes x out of l by moving the last item to its place: a
// dirty list has no order.
func listRemove[T listed](l []T, x T) []T {
	i, n := *x.dirtyIndex(), len(l)-1
	l[i] = l[n]
	*l[i].dirtyIndex() = i
	var zero T
	l[n] = zero
	return l[:n]
}

// heapState is one state's cells: a value per key and namespace N (none,
// a map key, a window). Each cell is held by its interned key only
// (keyRef.cells), so adding or dropping one touches no map of every cell;
// walks over every cell go through the store's interned keys.
type heapState[N comparable, V any] struct {
	h   *stateHandle
	c   Codec[V]
	sfx func(dst []byte, ns N) []byte // the entry suffix of a namespace
	// slot is the state's index in its keys' keyRef.cells.
	slot int
	// last is the cell used last: a Get then a Set of the same value finds
	// it without a second lookup.
	last *cell[N, V]
	// complete says the cells hold every entry the backend has for this
	// state (the subtask restored nothing and no present cell was dropped
	// since), so a missing cell is a missing value without a backend read,
	// and deleting one needs no tombstone.
	complete bool
	// byRestoredList, in a subtask that restored state, says the handle's
	// list of restored keys (stateHandle.restoredKey) still tells which
	// keys the cells hold whole: any key not on it has no entry the cells
	// lack, as if complete, until a sweep drops a present cell.
	byRestoredList bool
	// checked is the interned key keyComplete last asked the list about,
	// and checkedComplete its answer: a window's firing asks it of one key
	// for each of its panes.
	checked         *keyRef
	checkedComplete bool
	dirty           []*cell[N, V]
	buf, enc        []byte
}

// maxRestoredKeys bounds the keys a restored heap state lists to know the
// others complete, and maxRestoredScan the backend entries it reads to
// list them; past either it treats every key as possibly in the backend.
const (
	maxRestoredKeys = 1 << 18
	maxRestoredScan = 1 << 21
)

func newHeapState[N comparable, V any](h *stateHandle, c Codec[V], sfx func([]byte, N) []byte) *heapState[N, V] {
	hs := &heapState[N, V]{h: h, c: c, sfx: sfx,
		complete: h.s.env.RestoredParallelism() == 0, slot: len(h.s.caches)}
	h.s.caches = append(h.s.caches, hs)
	if !hs.complete {
		// Without the list, every key that the cells lack is read from
		// the backend and every deletion of one writes a tombstone: after
		// a restore, a sliding window's empty panes cost a Pebble read per
		// firing and a tombstone per cleanup, for as long as the attempt
		// runs (q5 at p=2 fell below half its rate). A backend that
		// cannot be read leaves the list unknown, and the reads that need
		// it report the failure. Listed now, before this attempt writes.
		h.restoredKeys()
		hs.byRestoredList = true
	}
	return hs
}

// keyComplete says the cells hold every entry of the current key.
func (hs *heapState[N, V]) keyComplete() bool {
	if hs.complete {
		return true
	}
	if !hs.byRestoredList {
		return false
	}
	k := hs.h.s.cur
	if k != nil && k == hs.checked {
		return hs.checkedComplete
	}
	complete := !hs.h.restoredKey()
	if k != nil {
		hs.checked, hs.checkedComplete = k, complete
	}
	return complete
}

// keyCell finds k's cell of ns.
func (hs *heapState[N, V]) keyCell(k *keyRef, ns N) *cell[N, V] {
	if hs.slot >= len(k.cells) {
		return nil
	}
	switch x := k.cells[hs.slot].(type) {
	case *cell[N, V]:
		if x.key.ns == ns {
			return x
		}
	case *keySet[N, *cell[N, V]]:
		c, _ := x.find(ns)
		return c
	}
	return nil
}

// listCell adds new cell c to its key's cells.
func (hs *heapState[N, V]) listCell(c *cell[N, V]) {
	k := c.key.k
	if hs.slot >= len(k.cells) {
		// Room for every state of the store at once.
		cells := make([]any, len(hs.h.s.caches))
		copy(cells, k.cells)
		k.cells = cells
	}
	switch x := k.cells[hs.slot].(type) {
	case nil:
		k.cells[hs.slot] = c
	case *cell[N, V]:
		k.cells[hs.slot] = &keySet[N, *cell[N, V]]{few: []*cell[N, V]{x, c}}
	case *keySet[N, *cell[N, V]]:
		x.add(c)
	}
}

// unlistCell takes c from its key's cells.
func (hs *heapState[N, V]) unlistCell(c *cell[N, V]) {
	k := c.key.k
	switch x := k.cells[hs.slot].(type) {
	case *cell[N, V]:
		if x == c {
			k.cells[hs.slot] = nil
		}
	case *keySet[N, *cell[N, V]]:
		if x.remove(c); x.len() == 0 {
			k.cells[hs.slot] = nil
		}
	}
}

// eachCell calls fn with every cell of the state until fn returns false;
// fn may drop the cell it is given.
func (hs *heapState[N, V]) eachCell(fn func(*cell[N, V]) bool) {
	for k := range hs.h.s.keys.all {
		if hs.slot >= len(k.cells) {
			continue
		}
		more := true
		switch x := k.cells[hs.slot].(type) {
		case *cell[N, V]:
			more = fn(x)
		case *keySet[N, *cell[N, V]]:
			more = x.each(fn)
		}
		if !more {
			return
		}
	}
}

func (c *cell[N, V]) slot() N { return c.key.ns }

// noNS is the namespace of a state with one value per key.
func noNS(dst []byte, _ struct{}) []byte { return dst }

// find returns the current key's cell of ns, or nil.
func (hs *heapState[N, V]) find(ns N) *cell[N, V] {
	ck := cellKey[N]{hs.h.s.cur, ns}
	if ck.k == nil {
		return nil // the key holds nothing
	}
	if c := hs.last; c != nil && c.key == ck {
		return c
	}
	c := hs.keyCell(ck.k, ns)
	if c != nil {
		hs.last = c
	}
	return c
}

// load returns the current key's cell of ns, reading the backend when the
// cells may not have it; nil when the value is known absent.
func (hs *heapState[N, V]) load(ns N) (*cell[N, V], error) {
	if c := hs.find(ns); c != nil || hs.keyComplete() {
		return c, nil
	}
	c := hs.add(ns, 0)
	b, ok, err := hs.h.get(hs.sfx(hs.buf[:0], ns))
	if err != nil {
		return nil, err
	}
	if ok {
		if c.v, err = hs.c.Decode(b); err != nil {
			return nil, err
		}
		c.flags |= cellPresent | cellStored
	}
	// c stays valid for the caller even if this drops it.
	return c, hs.h.s.maybeEvict()
}

// presentOfKey calls fn with the namespace and value of each of the
// current key's cells that holds one, in no order, and marks those fn used
// (returned true) as referenced. It calls nothing and reports false when
// the cells may not hold all the key has (keyComplete), or when the key
// has so many that they are in a map (a lookup of each value the caller
// wants is then cheaper than a walk over them all): the caller then looks
// each value up instead.
func (hs *heapState[N, V]) presentOfKey(fn func(ns N, v V) bool) bool {
	if !hs.keyComplete() {
		return false
	}
	k := hs.h.s.cur
	if k == nil || hs.slot >= len(k.cells) {
		return true // the key holds nothing
	}
	visit := func(c *cell[N, V]) {
		if c.flags&cellPresent != 0 && fn(c.key.ns, c.v) {
			c.flags |= cellReferenced
		}
	}
	switch x := k.cells[hs.slot].(type) {
	case *cell[N, V]:
		visit(x)
	case *keySet[N, *cell[N, V]]:
		if x.many != nil {
			return false
		}
		for _, c := range x.few {
			visit(c)
		}
	}
	return true
}

// add creates the current key's cell of ns.
func (hs *heapState[N, V]) add(ns N, flags cellFlags) *cell[N, V] {
	s := hs.h.s
	k := s.ref()
	s.retain(k)
	s.cells++
	c := &cell[N, V]{key: cellKey[N]{k, ns}, flags: flags | cellReferenced}
	hs.listCell(c)
	hs.last = c
	return c
}

func (hs *heapState[N, V]) drop(c *cell[N, V]) {
	hs.unlistCell(c)
	if hs.last == c {
		hs.last = nil
	}
	hs.clean(c)
	hs.h.s.cells--
	hs.h.s.release(c.key.k)
}

func (hs *heapState[N, V]) get(ns N) (V, bool, error) {
	var zero V
	c, err := hs.load(ns)
	if err != nil || c == nil {
		return zero, false, err
	}
	c.flags |= cellReferenced
	if c.flags&cellPresent == 0 {
		return zero, false, nil
	}
	return c.v, true, nil
}

func (hs *heapState[N, V]) put(ns N, v V) error {
	c := hs.find(ns)
	if c == nil {
		// Unknown to the cells: the backend may have an entry, unless
		// complete; the write replaces it either way.
		var f cellFlags
		if !hs.keyComplete() {
			f = cellStored
		}
		c = hs.add(ns, f)
	}
	c.v = v
	c.flags |= cellPresent | cellReferenced
	hs.markDirty(c)
	return hs.h.s.maybeEvict()
}

func (hs *heapState[N, V]) del(ns N) error {
	c := hs.find(ns)
	if c == nil {
		if hs.keyComplete() {
			return nil // never written: nothing to do
		}
		c = hs.add(ns, cellStored)
	}
	var zero V
	c.v = zero
	c.flags &^= cellPresent
	switch {
	case c.flags&cellStored != 0:
		hs.markDirty(c) // a tombstone for the backend
	case hs.keyComplete():
		hs.drop(c)
	default:
		hs.clean(c) // known absent from the backend as well
	}
	return hs.h.s.maybeEvict()
}

func (hs *heapState[N, V]) markDirty(c *cell[N, V]) {
	if c.flags&cellDirty != 0 {
		return
	}
	c.flags |= cellDirty
	hs.dirty = listAdd(hs.dirty, c)
}

// clean takes c off the dirty list: the backend needs nothing of it.
func (hs *heapState[N, V]) clean(c *cell[N, V]) {
	if c.flags&cellDirty != 0 {
		c.flags &^= cellDirty
		hs.dirty = listRemove(hs.dirty, c)
	}
}

// entryKey is the backend key of cell c.
func (hs *heapState[N, V]) entryKey(c *cell[N, V]) []byte {
	hs.buf = appendStateKey(hs.buf[:0], c.key.k.group, hs.h.prefix, c.key.k.enc)
	return hs.sfx(hs.buf, c.key.ns)
}

func (hs *heapState[N, V]) writeBack() error {
	st := hs.h.s.env.State()
	for len(hs.dirty) > 0 {
		c := hs.dirty[len(hs.dirty)-1]
		k := hs.entryKey(c)
		var err error
		if c.flags&cellPresent != 0 {
			hs.enc = hs.c.Append(hs.enc[:0], c.v)
			err = st.Set(k, hs.enc)
		} else {
			err = st.Delete(k)
		}
		if err != nil {
			return err
		}
		hs.clean(c)
		c.flags |= cellStored
		if c.flags&cellPresent == 0 {
			// A deleted value is rarely read again (a fired window's
			// pane): its cell goes, and a read of it asks the backend,
			// unless complete.
			hs.drop(c)
		}
	}
	return nil
}

func (hs *heapState[N, V]) sweep(target int, spare bool) {
	s := hs.h.s
	hs.eachCell(func(c *cell[N, V]) bool {
		switch {
		case s.cells <= target:
			return false
		case c.flags&cellDirty != 0:
			// Written after the write-back that came before.
		case spare && c.flags&cellReferenced != 0:
			c.flags &^= cellReferenced
		default:
			if c.flags&cellPresent != 0 {
				hs.complete, hs.byRestoredList = false, false
			}
			hs.drop(c)
		}
		return true
	})
}

// scanKey visits the suffixes of the current key's entries in the backend,
// after writing back every cell: a map's entries, which its cells alone do
// not list.
func (hs *heapState[N, V]) scanKey(fn func(suffix, val []byte) error) error {
	if err := hs.h.s.flush(); err != nil {
		return err
	}
	return hs.h.scan(fn)
}
