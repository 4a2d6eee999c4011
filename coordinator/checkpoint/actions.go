package checkpoint

import (
	"cmp"
	"fmt"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TaskID names one subtask of the job: a vertex of the job graph and the
// subtask's index in it.
type TaskID struct{ Vertex, Subtask int32 }

// String is how reasons and tests name a task, e.g. "v2/0".
func (t TaskID) String() string { return fmt.Sprintf("v%d/%d", t.Vertex, t.Subtask) }

func compareTasks(a, b TaskID) int {
	if c := cmp.Compare(a.Vertex, b.Vertex); c != 0 {
		return c
	}
	return cmp.Compare(a.Subtask, b.Subtask)
}

// AckResult is what became of an acknowledgement, as in Flink's
// PendingCheckpoint.TaskAcknowledgeResult. Only AckSuccess keeps the ack;
// for the others the checkpoint does not reference the ack's files (though
// other checkpoints may share them).
type AckResult int

const (
	// AckSuccess: the ack was recorded.
	AckSuccess AckResult = iota
	// AckDuplicate: this task already acknowledged this checkpoint (which
	// may have completed since).
	AckDuplicate
	// AckUnknown: no such checkpoint is pending and none is remembered,
	// or the task is not one of the checkpoint's: a late or foreign ack.
	AckUnknown
	// AckDiscarded: the checkpoint was aborted (declined, expired,
	// subsumed, stopped or not stored) and is still remembered.
	AckDiscarded
)

func (r AckResult) String() string {
	switch r {
	case AckSuccess:
		return "success"
	case AckDuplicate:
		return "duplicate"
	case AckUnknown:
		return "unknown"
	case AckDiscarded:
		return "discarded"
	}
	return fmt.Sprintf("AckResult(%d)", int(r))
}

// Action is something the driver must do, in the order returned.
type Action interface{ isAction() }

// AllocateID asks the driver for a fresh checkpoint id from etcd. The driver
// answers with IDAllocated or IDFailed, passing Savepoint back.
type AllocateID struct{ Savepoint bool }

// Trigger asks the driver to trigger checkpoint ID at the sources of the
// current attempt. Timestamp is the checkpoint's time, for the trigger
// message and the manifest.
type Trigger struct {
	ID        int64
	Timestamp time.Time
	Savepoint bool
}

// Complete says every task acknowledged checkpoint ID. The driver writes the
// manifest from Acks (create-if-absent), records it in etcd, then calls
// Stored, or StoreFailed. Acks are sorted by task (vertex, then subtask);
// the slice is the driver's, the acks are shared and must not be modified.
type Complete struct {
	ID        int64
	Savepoint bool
	Acks      []*weirv1.CheckpointAck
}

// Notify asks the driver to tell every task of the current attempt that
// checkpoint ID is complete, so sinks commit.
type Notify struct{ ID int64 }

// Abort says checkpoint ID failed: the driver tells the tasks to drop it and
// reports Reason. ID 0 means no id was allocated.
type Abort struct {
	ID        int64
	Savepoint bool
	Reason    string
}

// Discard says retention dropped completed checkpoint ID: the driver deletes
// the manifest at Location and the files no retained checkpoint references.
type Discard struct {
	ID       int64
	Location string
}

func (AllocateID) isAction() {}
func (Trigger) isAction()    {}
func (Complete) isAction()   {}
func (Notify) isAction()     {}
func (Abort) isAction()      {}
func (Discard) isAction()    {}
