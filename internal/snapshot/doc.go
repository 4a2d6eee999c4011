// Package snapshot owns the object-store side of keyed-state snapshots: the
// incremental upload of a subtask's Pebble checkpoint directory, its
// download with verification, and restore, including restore onto another
// parallelism (rescale) by key-group range.
//
// Layout in the bucket:
//
//   - Pebble tables (*.sst, and *.blob value files) are immutable, so they
//     are content addressed: storelayout.SharedFile, sharedPrefix +
//     "<sha256>" + the file's extension (".sst"). A checkpoint
//     uploads only the tables neither its Uploader nor the bucket has, which
//     makes its upload proportional to what changed. The set difference is
//     by content, never by Pebble file number: numbers repeat across DB
//     instances (a restored subtask starts counting again).
//   - Every other file of a checkpoint (MANIFEST-*, OPTIONS-*, markers) is
//     small and belongs to that checkpoint alone: privatePrefix + name.
//   - A savepoint (selfContained) puts every file under its private prefix,
//     so it can be copied or moved to another store by itself.
//
// The coordinator reference-counts shared objects over the retained
// checkpoints (Objects) and deletes the unreferenced ones (Delete). The
// Uploader skips the existence check for tables it uploaded or downloaded
// itself, and after each checkpoint upload forgets the tables that
// checkpoint no longer references. That is safe as long as the coordinator
// never deletes an object the latest checkpoint of a subtask referenced,
// completed or not. The coordinator deletes objects of discarded completed
// checkpoints that no retained one references, and sweeps the job's prefix
// for objects no retained checkpoint references (those only aborted
// checkpoints uploaded) only when the last checkpoint it triggered
// completed and none is in flight, with triggers held off meanwhile: every
// subtask's latest upload is then a retained one, and no upload can adopt
// an object it finds in the store while the sweep deletes (see
// docs/decisions.md, "Checkpoint garbage collection").
package snapshot
