package coordinator

import (
	"strings"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestForgedReportsChangeNothing: a connected worker that does not host a
// subtask cannot ack, decline or report for it, and the worker that hosts
// it cannot name objects outside the job in its ack. Neither changes the
// job's checkpoints; the genuine ack then completes the checkpoint.
func TestForgedReportsChangeNothing(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	host := h.registered(t, "w1", scriptOpts{holdAcks: true})
	job := h.submit("victim")
	var trig []trigger
	for len(trig) < 2 { // both subtasks of the first checkpoint
		select {
		case tr := <-host.triggers:
			if len(trig) == 0 || tr.id == trig[0].id {
				trig = append(trig, tr)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("no checkpoint was triggered")
		}
	}
	// Only now does the forger connect, so nothing is placed on it.
	forger, err := h.worker("w2", scriptOpts{})
	if err != nil {
		t.Fatal(err)
	}
	ack := func(tr trigger, objects ...string) *weirv1.ProcessMessage {
		snap := &weirv1.SubtaskSnapshot{VertexId: tr.subtask.VertexId, Subtask: tr.subtask.Subtask}
		for _, o := range objects {
			snap.Files = append(snap.Files, &weirv1.StateFile{Name: "000001.sst", Object: o, Sha256: strings.Repeat("a", 64)})
		}
		return &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_CheckpointAck{CheckpointAck: &weirv1.CheckpointAck{CheckpointId: tr.id, Snapshot: snap}}}
	}
	for _, tr := range trig {
		forger.report(tr.key, ack(tr))
		forger.report(tr.key, &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_CheckpointDecline{CheckpointDecline: &weirv1.CheckpointDecline{
			CheckpointId: tr.id, VertexId: tr.subtask.VertexId, Subtask: tr.subtask.Subtask, Reason: "forged"}}})
		forger.report(tr.key, &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TaskState{TaskState: &weirv1.TaskStateUpdate{
			VertexId: tr.subtask.VertexId, Subtask: tr.subtask.Subtask, State: weirv1.TaskState_TASK_STATE_FAILED, Error: "forged", Permanent: true}}})
		// The host itself may not name a binary or another job's savepoint.
		host.report(tr.key, ack(tr, "binaries/"+strings.Repeat("b", 64)))
		host.report(tr.key, ack(tr, "savepoints/other/sp-1/_manifest"))
	}
	checkpoints := func() []*weirv1.CheckpointInfo {
		r, err := h.api.ListCheckpoints(h.ctx, &weirv1.ListCheckpointsRequest{JobId: job})
		if err != nil {
			t.Fatal(err)
		}
		return r.Checkpoints
	}
	time.Sleep(time.Second) // the forgeries reach the loop well within this
	for _, c := range checkpoints() {
		if c.Status != weirv1.CheckpointStatus_CHECKPOINT_STATUS_PENDING {
			t.Fatalf("after forged reports checkpoint %d is %v (%s), want it still pending", c.Id, c.Status, c.Failure)
		}
	}
	st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: job})
	if err != nil || st.State != weirv1.JobState_JOB_STATE_RUNNING || st.Attempt != 1 {
		t.Fatalf("after forged reports the job is %v attempt %d (%v), want RUNNING attempt 1", st.GetState(), st.GetAttempt(), err)
	}
	// The genuine acks complete it.
	for _, tr := range trig {
		host.report(tr.key, ack(tr))
	}
	eventually(t, 30*time.Second, "the genuine acks complete the checkpoint", func() bool {
		for _, c := range checkpoints() {
			if c.Id == trig[0].id && c.Status == weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
				return true
			}
		}
		return false
	})
}
