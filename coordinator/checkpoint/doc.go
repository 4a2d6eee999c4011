// Package checkpoint owns the checkpoint coordinator of one job: when a
// checkpoint or savepoint is triggered, which tasks have acknowledged it,
// when it is complete, which pending ones expire, are declined or are
// subsumed, and which completed ones retention drops. It follows Flink's
// CheckpointCoordinator and PendingCheckpoint.
//
// Machine is a pure state machine in the style of etcd-io/raft: the
// driver feeds it what it observed, with the current time, and performs the
// Actions it returns, in order. It does no I/O, starts no goroutines and
// reads no clock; when it needs time to pass it says so through NextWake,
// and the driver calls Tick. Its state is bounded: the pending checkpoints
// (at most Config.MaxConcurrent periodic ones and one savepoint), the
// retained completed ones and a short history.
//
// The driver's side of the contract:
//   - Call Start when every task of the job's current attempt runs, with
//     those tasks, and Stop when the attempt ends for any reason. Checkpoints
//     are triggered only in between.
//   - AllocateID: take the next checkpoint id from etcd (the counter that
//     keeps ids increasing across leaders) and answer with exactly one
//     IDAllocated or IDFailed, passing the same Savepoint flag. Each
//     AllocateID ends in exactly one Trigger or Abort.
//   - Trigger: send the trigger to the sources of the current attempt.
//   - Feed each task's CheckpointAck to Ack and its CheckpointDecline to
//     Decline; drop reports from older attempts.
//   - Call Finished when a task of the attempt ends after the end of its
//     input (FLIP-147), with the ack that stands for it: a snapshot marked
//     finished. Checkpoints go on without it; a task finished before Start
//     (restored finished) is reported right after it.
//   - Complete: write the manifest (create-if-absent), then record it in
//     etcd under the leader's fencing revision, then call Stored, or
//     StoreFailed if either step failed. Until then the checkpoint stays
//     pending; it does not expire and Stop does not abort it, because its
//     fate is the driver's write, not the tasks'.
//   - Notify: tell every task that the checkpoint is complete (sinks commit).
//     It comes after Stored, so nothing commits before the checkpoint is
//     durable.
//   - Abort: tell the tasks to drop the checkpoint and report the failure.
//     ID 0 means no id was allocated (IDFailed): there is nothing to tell
//     the tasks. An Abort for an id IDAllocated refused may name an id the
//     coordinator still tracks; see IDAllocated.
//   - Discard: retention dropped a completed checkpoint: delete its manifest
//     and the files no retained checkpoint references.
//   - On a new leader or a restart, call Restored for each completed
//     checkpoint found in etcd before Start, so ids never go backwards and
//     retention and Latest see them.
package checkpoint
