// Package pebblestate owns the durable keyed state of one subtask: a Pebble
// database with a bounded write-back cache in front of it, and the
// synchronous part of its snapshots (Checkpoint).
//
// The write-ahead log is off. Durability comes from checkpoints, which the
// snapshot package uploads; the directory of a running DB is scratch space,
// and Close discards whatever was written since the last Checkpoint.
//
// The hot-state cache absorbs repeated updates of the same keys between
// checkpoints (keyed counters, window accumulators): a Get+Set costs two map
// lookups instead of a Pebble read and a batch commit. It is bounded by a
// byte budget; when the budget is exceeded every dirty entry is written to
// Pebble in one batch and clean entries are evicted with a second-chance
// sweep until the cache is at three quarters of its budget. Checkpoint and
// Scan write the dirty entries back first, so Pebble alone holds the truth
// whenever anyone else looks at it.
//
// Keys are opaque here except in CopyRange, which takes byte bounds; the
// key-group layout is the snapshot package's business.
package pebblestate
