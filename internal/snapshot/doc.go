// Package snapshot owns moving a subtask's keyed-state checkpoints between
// local Pebble checkpoint directories and the object store: incremental
// upload (SST files are content addressed and shared, so a checkpoint
// uploads only the files the store does not hold), verified download, and
// restore at the same or another parallelism by key-group range.
package snapshot
