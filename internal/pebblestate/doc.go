// Package pebblestate owns the durable keyed state of one subtask: a Pebble
// database with a bounded write-back cache in front of it, and the
// synchronous part of its snapshots (Checkpoint, BeginCheckpoint).
//
// Durability comes from checkpoints, which the snapshot package uploads; the
// directory of a running DB is scratch space that is never recovered from.
// So the write-ahead log is off, fsync is a no-op (noSyncFS), and Close
// discards whatever was written since the last checkpoint.
//
// The hot-state cache absorbs repeated updates of the same keys between
// checkpoints: a Get+Set costs two map lookups instead of a Pebble read and
// a batch commit. (The SDK keeps values, maps, window contents and timers
// typed in memory and writes them here at checkpoints and spills; lists and
// states with a TTL come here on every access.) It is bounded by a
// byte budget (Options.CacheBytes: the caller gives each subtask its share
// of its process's); when the budget is exceeded every dirty entry is written to
// Pebble in one batch and clean entries are evicted with a second-chance
// sweep until the cache is at three quarters of its budget. Scan writes the
// dirty entries back first, so that Pebble alone answers it. Until the
// first eviction, a DB that opened empty has every key in the cache, and a
// key the cache lacks is known absent without a Pebble read. A deleted key
// leaves the cache as soon as Pebble has its tombstone (or never needed
// one): timers and fired windows delete nearly every key they create, and
// keeping those absences would fill the budget with dead keys.
//
// A checkpoint freezes the dirty entries on the subtask's goroutine and
// leaves writing them, the memtable flush and the hard links to a goroutine
// of its own (BeginCheckpoint); Checkpoint is the same and waits. While that
// goroutine runs the DB keeps serving from the cache, and whatever would
// write to Pebble waits for it, which keeps the checkpoint consistent.
//
// All the DBs of a process share one Pebble block cache.
//
// The LSM is shaped for incremental checkpoints (small Lbase, higher L0
// compaction threshold, bloom filters): see pebbleOptions.
//
// Keys are opaque here except in CopyRange, which takes byte bounds; the
// key-group layout is the snapshot package's business.
package pebblestate
