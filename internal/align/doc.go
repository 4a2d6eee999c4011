// Package align owns barrier alignment for one subtask: which of its input
// channels must be held back while a checkpoint barrier is in flight, and when
// the subtask may snapshot its state and forward the barrier.
//
// This is step 3 of Asynchronous Barrier Snapshotting (Carbone et al. 2015;
// docs/architecture.md describes checkpoints): a subtask with several input channels blocks each
// channel that has delivered barrier n until every channel has, so that the
// snapshot reflects exactly the records before barrier n on every input.
//
// Aligner is a pure state machine: the task runtime feeds it the barriers and
// end-of-input events it reads, with the current time, and acts on the
// Decision it returns. It does no I/O, starts no goroutines and reads no
// clock. It is not safe for concurrent use; the subtask's input goroutine
// owns it.
//
// The caller's side of the contract:
//   - Stop reading a channel when a Decision says Block, until a later
//     Decision lists it in Unblock. A blocked channel delivers nothing, so
//     records after the barrier are not processed before the snapshot.
//   - On Aligned: snapshot, forward barrier ID downstream, then unblock the
//     channels in Unblock. The snapshot must come before any record of an
//     unblocked channel is processed.
//   - On Abandoned > 0: the alignment of that older checkpoint was given up
//     because a newer barrier overtook it (the coordinator has moved on);
//     unblock Unblock and decline or forget that checkpoint. The newer
//     alignment continues from the same Decision.
//   - Call End once a channel reaches end of input, so it stops holding
//     alignments back.
//
// Unaligned checkpoints (Flink's unaligned checkpoints with its
// aligned-checkpoint-timeout): an alignment turns unaligned when a barrier
// arrives marked unaligned, or when the caller calls Timeout because the
// checkpoint is older than its aligned timeout. The Decision then says
// Unaligned: snapshot at once, forward the barrier as an unaligned one,
// free the blocked channels, and store with the snapshot every record that
// the channels in Record deliver before their own barrier (and the records
// each barrier overtook), which is the data that was in flight across the
// cut. Complete says that data is whole; only then may the snapshot be
// acknowledged.
package align
