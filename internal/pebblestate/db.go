package pebblestate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/weir-run/weir/internal/state"
)

// DefaultCacheBytes is the hot-state cache budget when Options.CacheBytes is 0.
// A process hosting several subtasks gives each a share of one budget
// instead (the SDK's runtime does), so that its memory does not grow with
// the number of subtasks it hosts.
const DefaultCacheBytes = 64 << 20

const (
	// memTableSize bounds what a checkpoint's Flush has to write beyond the
	// cache's dirty entries, and so how long a checkpoint directory takes.
	// Pebble flushes full memtables in the background.
	memTableSize = 16 << 20
	// blockCacheBytes is Pebble's block cache, one for all the DBs of a
	// process (blockCache). Hot keys live in the hot-state cache, so this
	// only needs to hold index and filter blocks and the recently read data
	// blocks of cold keys.
	blockCacheBytes = 32 << 20
	// maxManifestBytes rolls the MANIFEST early: every checkpoint copies it.
	maxManifestBytes = 4 << 20
	// entryOverhead approximates the memory of a cache entry beyond its key
	// and value bytes: the map slot, the string header, the entry struct,
	// its slot in the dirty list and the allocator's rounding. Measured
	// (TestCacheBytesTrackTheHeap): about 110 bytes per entry of a 40-byte
	// key; 80 had the cache use 30% more than its budget.
	entryOverhead = 112
	// l0CompactionThreshold and lbaseMaxBytes shape the LSM for small
	// incremental checkpoints (see pebbleOptions).
	l0CompactionThreshold = 16
	lbaseMaxBytes         = 512 << 10
	// copyBatchBytes is the batch size CopyRange commits at.
	copyBatchBytes = 4 << 20
)

// Options configure Open.
type Options struct {
	// Dir is the database directory, created if missing.
	Dir string
	// CacheBytes is the hot-state cache budget in bytes: 0 means
	// DefaultCacheBytes, a negative value disables the cache.
	CacheBytes int64
}

// Stats are the DB's cache counters since Open.
type Stats struct {
	// CacheHits and CacheMisses count Gets answered by the cache and by Pebble.
	CacheHits, CacheMisses int64
	// Flushes counts write-backs of dirty entries to Pebble: on budget
	// overflow, before a Scan and before a Checkpoint (when any were dirty).
	Flushes int64
	// CacheBytes is the cache's current estimated memory use.
	CacheBytes int64
}

// entry is a cached key: its value, or the knowledge that it is absent.
type entry struct {
	key   string
	val   []byte
	flags uint8
}

const (
	// dirty: Pebble does not have this value (or deletion) yet.
	dirty uint8 = 1 << iota
	// absent: the key does not exist; with dirty, a pending deletion.
	absent
	// referenced: used since the last eviction sweep (second chance).
	referenced
	// frozen: a checkpoint's writer may still be reading val, so the next
	// Set must not overwrite the buffer in place.
	frozen
	// stored: Pebble may hold a value for the key. Without it, deleting the
	// key needs no tombstone: timers and fired windows create and delete
	// most of their keys between two write-backs.
	stored
)

// DB is the keyed state of one subtask in Pebble. It implements
// state.Backend with that contract: one goroutine, Get's slice valid until
// the next call, Set copies, Scan in ascending order. Every method,
// Checkpoint and Stats included, is called from that goroutine; only
// PendingCheckpoint.Wait may be called from another.
type DB struct {
	pdb *pebble.DB

	// pending is the checkpoint whose writer goroutine may still run. While
	// it does, nothing but that goroutine writes to Pebble: everything that
	// would (a write-back, a write without the cache, Scan, CopyRange, the
	// next checkpoint, Close) waits for it first.
	pending *PendingCheckpoint
	// failed is set when a checkpoint's writer could not apply the frozen
	// dirty entries: the cache already counts them as written, so the DB
	// no longer knows its own content and refuses every further call.
	failed error

	// budget is the cache's byte budget; 0 when the cache is disabled.
	budget int64
	cache  map[string]*entry
	// complete says the cache holds every key Pebble has (it opened empty,
	// nothing was evicted or bulk-copied since), so a key the cache lacks
	// does not exist and a miss needs no Pebble read. Windows and joins
	// look up many keys that were never written (a sliding window's empty
	// panes), and in Pebble each such miss walks every L0 table.
	complete bool
	// dirtyList holds every dirty entry, so that a write-back costs the
	// number of dirty entries, not the size of the cache.
	dirtyList []*entry
	getBuf    []byte // Get's result when the cache is disabled
	stats     Stats
	closed    bool
}

// usable returns the error every call returns once the DB is closed or
// broken, and waits for a pending checkpoint when the caller is about to
// write to Pebble.
func (db *DB) usable(writes bool) error {
	if db.closed {
		return state.ErrClosed
	}
	if writes {
		db.waitPending()
	}
	return db.failed
}

var _ state.Backend = (*DB)(nil)

// Open opens (or creates) the database in opts.Dir.
func Open(opts Options) (*DB, error) {
	if opts.Dir == "" {
		return nil, errors.New("pebblestate: Options.Dir is empty")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pebblestate: %w", err)
	}
	popts, release := pebbleOptions()
	defer release()
	pdb, err := pebble.Open(opts.Dir, popts)
	if err != nil {
		return nil, fmt.Errorf("pebblestate: open %s: %w", opts.Dir, err)
	}
	db := &DB{pdb: pdb}
	switch {
	case opts.CacheBytes == 0:
		db.budget = DefaultCacheBytes
	case opts.CacheBytes > 0:
		db.budget = opts.CacheBytes
	}
	if db.budget > 0 {
		db.cache = make(map[string]*entry)
		if db.complete, err = isEmpty(pdb); err != nil {
			pdb.Close()
			return nil, err
		}
	}
	return db, nil
}

func isEmpty(pdb *pebble.DB) (bool, error) {
	it, err := pdb.NewIter(nil)
	if err != nil {
		return false, fmt.Errorf("pebblestate: %w", err)
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return false, fmt.Errorf("pebblestate: %w", err)
	}
	return empty, nil
}

// pebbleOptions returns the options of every DB this package opens and a
// func releasing the caller's reference to the block cache once Open has
// taken its own.
func pebbleOptions() (*pebble.Options, func()) {
	c := blockCache()
	c.Ref()
	o := &pebble.Options{
		FS: noSyncFS{vfs.Default},
		// Durability comes from checkpoints; a WAL would only double the
		// write volume. It is also why Checkpoint must Flush.
		DisableWAL:          true,
		MemTableSize:        memTableSize,
		Cache:               c,
		FormatMajorVersion:  pebble.FormatNewest,
		MaxManifestFileSize: maxManifestBytes,
		// Every checkpoint flushes a small L0 table, and the keys a job
		// updates are spread evenly over the key space (key groups are
		// hashes). Pebble's defaults (compact L0 at 4 tables into an Lbase
		// of up to 64 MiB) would rewrite the whole bottom level every few
		// checkpoints at this size, and the incremental upload would carry
		// it. A small Lbase puts shallow levels above the bottom that absorb
		// the changes, and a higher L0 threshold compacts less often; with
		// 1M keys and 1% changed per checkpoint that cuts the new table
		// bytes per checkpoint from ~45% to ~5% of the state and compaction
		// work by 10x (measured; see the snapshot benchmarks). The cost is
		// read amplification on cache misses, which bloom filters keep low.
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: 3 * l0CompactionThreshold,
		LBaseMaxBytes:         lbaseMaxBytes,
		Logger:                quietLogger{},
	}
	// Most Gets look for a key in L0 tables that do not have it (the tables
	// flushed by recent checkpoints hold the keys updated since).
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o, c.Unref
}

// blockCache is the process's Pebble block cache, shared by its DBs as
// Pebble allows: one per DB grew a process by 32 MiB per stateful subtask
// it hosted. Each Open takes a reference; the package's own is never
// released, so the cache lives as long as the process once used.
var blockCache = sync.OnceValue(func() *pebble.Cache { return pebble.NewCache(blockCacheBytes) })

// quietLogger drops Pebble's informational messages (one per flush and
// compaction) and keeps its errors on the standard logger, which is where
// Pebble would have put them.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

// Get returns the value of key. The slice is owned by the DB and valid until
// the next call.
func (db *DB) Get(key []byte) ([]byte, bool, error) {
	// Reads from Pebble need not wait for a pending checkpoint: its writer
	// only adds the frozen entries, which the cache answers for itself.
	if err := db.usable(false); err != nil {
		return nil, false, err
	}
	if db.cache == nil {
		v, closer, err := db.pdb.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("pebblestate: get: %w", err)
		}
		db.getBuf = append(db.getBuf[:0], v...)
		_ = closer.Close() // releases a reference; never fails
		return db.getBuf, true, nil
	}
	if e, ok := db.cache[string(key)]; ok {
		db.stats.CacheHits++
		e.flags |= referenced
		if e.flags&absent != 0 {
			return nil, false, nil
		}
		return e.val, true, nil
	}
	if db.complete {
		db.stats.CacheHits++
		return nil, false, nil
	}
	db.stats.CacheMisses++
	// Remember what Pebble said, absence included: the usual next call is a
	// Set of the same key, and a missing key is read again and again by
	// windows and joins that have not seen it yet.
	e := &entry{key: string(key), flags: referenced}
	v, closer, err := db.pdb.Get(key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		e.flags |= absent
	case err != nil:
		return nil, false, fmt.Errorf("pebblestate: get: %w", err)
	default:
		e.val = bytes.Clone(v)
		e.flags |= stored
		_ = closer.Close()
	}
	db.cache[e.key] = e
	db.stats.CacheBytes += int64(len(e.key)+cap(e.val)) + entryOverhead
	if err := db.maybeEvict(); err != nil {
		return nil, false, err
	}
	if e.flags&absent != 0 {
		return nil, false, nil
	}
	// Eviction may have dropped e from the cache; its value is still ours to
	// hand out until the next call.
	return e.val, true, nil
}

// Set sets key to val, copying both.
func (db *DB) Set(key, val []byte) error {
	if err := db.usable(db.cache == nil); err != nil {
		return err
	}
	if db.cache == nil {
		if err := db.pdb.Set(key, val, pebble.NoSync); err != nil {
			return fmt.Errorf("pebblestate: set: %w", err)
		}
		return nil
	}
	e, _ := db.entryFor(key)
	oldCap := cap(e.val)
	if oldCap >= len(val) && e.flags&frozen == 0 {
		// Counters rewrite the same key millions of times: reuse the buffer.
		e.val = append(e.val[:0], val...)
	} else {
		e.val = bytes.Clone(val)
		if e.val == nil {
			e.val = []byte{}
		}
	}
	db.stats.CacheBytes += int64(cap(e.val) - oldCap)
	e.flags &^= absent | frozen
	db.markDirty(e)
	return db.maybeEvict()
}

// Delete removes key. Deleting a missing key is not an error.
func (db *DB) Delete(key []byte) error {
	if err := db.usable(db.cache == nil); err != nil {
		return err
	}
	if db.cache == nil {
		if err := db.pdb.Delete(key, pebble.NoSync); err != nil {
			return fmt.Errorf("pebblestate: delete: %w", err)
		}
		return nil
	}
	e, created := db.entryFor(key)
	if !created && e.flags&(absent|dirty) == absent {
		return nil // known to be absent from Pebble too
	}
	db.stats.CacheBytes -= int64(cap(e.val))
	e.val = nil // a frozen buffer stays with the checkpoint's writer
	if e.flags&stored == 0 {
		// Pebble never had it: forget the pending write instead of
		// writing a tombstone (the dirty list skips entries no longer
		// dirty). A complete cache need not even remember the absence.
		e.flags = e.flags&^(frozen|dirty) | absent
		if db.complete {
			delete(db.cache, e.key)
			db.stats.CacheBytes -= int64(len(e.key)) + entryOverhead
		}
		return nil
	}
	e.flags = e.flags&^frozen | absent
	db.markDirty(e)
	return db.maybeEvict()
}

// entryFor returns key's cache entry. A created one is marked absent but
// says nothing about Pebble until the caller makes it dirty.
func (db *DB) entryFor(key []byte) (e *entry, created bool) {
	e, ok := db.cache[string(key)]
	if !ok {
		e = &entry{key: string(key), flags: absent}
		if !db.complete {
			e.flags |= stored // unknown: as if Pebble had it
		}
		db.cache[e.key] = e
		db.stats.CacheBytes += int64(len(e.key)) + entryOverhead
	}
	e.flags |= referenced
	return e, !ok
}

// storedAfterWrite is the stored flag of an entry once its dirty value
// (or deletion) is in Pebble.
func storedAfterWrite(flags uint8) uint8 {
	if flags&absent != 0 {
		return 0
	}
	return stored
}

func (db *DB) markDirty(e *entry) {
	if e.flags&dirty == 0 {
		e.flags |= dirty
		db.dirtyList = append(db.dirtyList, e)
	}
}

// forgetDeleted drops e from the cache when it is a deletion that has just
// been handed to Pebble (written back, or frozen for a checkpoint): Pebble
// now answers for the key by itself. Timers and windows delete every key
// they create and almost never look it up again, so remembering each
// absence until the cache overflowed grew a job process by its whole
// budget of dead keys, slowly, at any rate (a checkpoint hands most keys
// to Pebble before they are deleted). A key that is deleted before it ever
// reached Pebble is dropped by Delete itself.
func (db *DB) forgetDeleted(e *entry) {
	if e.flags&absent == 0 || db.cache[e.key] != e {
		return
	}
	delete(db.cache, e.key)
	db.stats.CacheBytes -= int64(len(e.key)) + entryOverhead
}

// maybeEvict writes back and evicts when the cache exceeds its budget.
func (db *DB) maybeEvict() error {
	if db.stats.CacheBytes <= db.budget {
		return nil
	}
	// Frozen entries must stay cached until their checkpoint has written
	// them, and the write-back must not reach that checkpoint.
	db.waitPending()
	if db.failed != nil {
		return db.failed
	}
	if err := db.writeBack(); err != nil {
		return err
	}
	// Evict to three quarters of the budget so that the next write-back is
	// a quarter of the budget of new keys away, not one key away.
	target := db.budget - db.budget/4
	evict := func(k string, e *entry) {
		delete(db.cache, k)
		db.stats.CacheBytes -= int64(len(e.key)+cap(e.val)) + entryOverhead
		if e.flags&absent == 0 {
			db.complete = false
		}
	}
	// While the cache is complete, a deleted key's entry says nothing a
	// miss would not: drop them all first. Windows and timers delete every
	// key they create, so in a complete cache these are most of the bytes,
	// and keeping them would evict live state and end completeness.
	if db.complete {
		for k, e := range db.cache {
			if e.flags&absent != 0 {
				evict(k, e)
			}
		}
	}
	// Second chance: the first pass spares entries used since the last
	// sweep and clears their mark; the second takes anything.
	for pass := 0; pass < 2 && db.stats.CacheBytes > target; pass++ {
		for k, e := range db.cache {
			if db.stats.CacheBytes <= target {
				break
			}
			if pass == 0 && e.flags&referenced != 0 {
				e.flags &^= referenced
				continue
			}
			evict(k, e)
		}
	}
	return nil
}

// writeBack commits every dirty entry to Pebble in one batch. No checkpoint
// may be pending.
func (db *DB) writeBack() error {
	if len(db.dirtyList) == 0 {
		return nil
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	for _, e := range db.dirtyList {
		// Batch.Set and Delete copy; they fail only on a closed batch.
		switch {
		case e.flags&dirty == 0: // a write undone before it reached Pebble
		case e.flags&absent != 0:
			_ = b.Delete([]byte(e.key), nil)
		default:
			_ = b.Set([]byte(e.key), e.val, nil)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestate: write back %d entries: %w", len(db.dirtyList), err)
	}
	for i, e := range db.dirtyList {
		if e.flags&dirty != 0 {
			e.flags = e.flags&^dirty | storedAfterWrite(e.flags)
			db.forgetDeleted(e)
		}
		db.dirtyList[i] = nil
	}
	db.dirtyList = db.dirtyList[:0]
	db.stats.Flushes++
	return nil
}

// Scan calls fn for every key with the prefix, in ascending order.
func (db *DB) Scan(prefix []byte, fn func(key, val []byte) error) error {
	if err := db.usable(true); err != nil {
		return err
	}
	// Merging the cache into the iteration would need a sorted view of it;
	// writing the dirty entries back makes Pebble the whole truth instead.
	if err := db.writeBack(); err != nil {
		return err
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: bound(prefix), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("pebblestate: scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("pebblestate: scan: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("pebblestate: scan: %w", err)
	}
	return nil
}

// bound turns an empty bound into no bound: Pebble's invariant checks (on
// in race builds) index into a non-nil one.
func bound(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// prefixEnd returns the smallest key greater than every key with the
// prefix, or nil if there is none (an empty or all-0xff prefix).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Stats returns the cache counters.
func (db *DB) Stats() Stats { return db.stats }

// Close closes the database. Writes since the last Checkpoint are lost.
func (db *DB) Close() error {
	if db.closed {
		return state.ErrClosed
	}
	db.waitPending()
	db.closed = true
	db.cache, db.dirtyList, db.getBuf = nil, nil, nil
	if err := db.pdb.Close(); err != nil {
		return fmt.Errorf("pebblestate: close: %w", err)
	}
	return nil
}

// CopyRange copies the keys in [lower, upper) of the Pebble database at
// srcDir (a checkpoint directory, opened read-only and left unchanged) into
// db, and returns how many it copied. A nil upper means no upper bound. Keys
// already in db are overwritten; others stay. Restore uses it to rebuild a
// subtask's state from the snapshots of another parallelism.
func (db *DB) CopyRange(srcDir string, lower, upper []byte) (int64, error) {
	if err := db.usable(true); err != nil {
		return 0, err
	}
	// The copy goes to Pebble directly: cached values for the same keys
	// would be stale, and a bulk load has no hot set to cache.
	if err := db.writeBack(); err != nil {
		return 0, err
	}
	if db.cache != nil {
		clear(db.cache)
		db.stats.CacheBytes = 0
		db.complete = false
	}
	popts, release := pebbleOptions()
	popts.ReadOnly = true
	src, err := pebble.Open(srcDir, popts)
	release()
	if err != nil {
		return 0, fmt.Errorf("pebblestate: open %s: %w", srcDir, err)
	}
	defer src.Close()
	it, err := src.NewIter(&pebble.IterOptions{LowerBound: bound(lower), UpperBound: bound(upper)})
	if err != nil {
		return 0, fmt.Errorf("pebblestate: copy from %s: %w", srcDir, err)
	}
	defer it.Close()
	var n int64
	b := db.pdb.NewBatch()
	commit := func() error {
		err := b.Commit(pebble.NoSync)
		_ = b.Close()
		b = db.pdb.NewBatch()
		return err
	}
	defer func() { _ = b.Close() }()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return n, fmt.Errorf("pebblestate: copy from %s: %w", srcDir, err)
		}
		_ = b.Set(it.Key(), v, nil)
		n++
		if b.Len() >= copyBatchBytes {
			if err := commit(); err != nil {
				return n, fmt.Errorf("pebblestate: copy from %s: %w", srcDir, err)
			}
		}
	}
	if err := it.Error(); err != nil {
		return n, fmt.Errorf("pebblestate: copy from %s: %w", srcDir, err)
	}
	if err := commit(); err != nil {
		return n, fmt.Errorf("pebblestate: copy from %s: %w", srcDir, err)
	}
	return n, nil
}
