package coordinator

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestCheckpointsGoOnAfterATaskFinished (FLIP-147): once the source of the
// harness's two-vertex job reports FINISHED, the leader keeps triggering
// checkpoints and completes them with the sink's ack alone; the manifest
// records the source finished, with its uids, so a restore starts it
// finished. When the sink finishes too, the job is FINISHED.
func TestCheckpointsGoOnAfterATaskFinished(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	w := h.registered(t, "w1", scriptOpts{holdAcks: true})
	job := h.submit("flip147")
	ack := func(tr trigger) {
		w.report(tr.key, &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_CheckpointAck{CheckpointAck: &weirv1.CheckpointAck{
			CheckpointId: tr.id, Snapshot: &weirv1.SubtaskSnapshot{VertexId: tr.subtask.VertexId, Subtask: tr.subtask.Subtask}}}})
	}
	finish := func(tr trigger) {
		w.report(tr.key, &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TaskState{TaskState: &weirv1.TaskStateUpdate{
			VertexId: tr.subtask.VertexId, Subtask: tr.subtask.Subtask, State: weirv1.TaskState_TASK_STATE_FINISHED}}})
	}
	// next returns the triggers of the first checkpoint after id, by
	// vertex: the scripted worker hands one to each subtask of the
	// process, finished or not.
	next := func(id int64) map[int32]trigger {
		got := map[int32]trigger{}
		deadline := time.After(60 * time.Second)
		for len(got) < 2 {
			select {
			case tr := <-w.triggers:
				if tr.id > id && (len(got) == 0 || tr.id == got[1].id || tr.id == got[2].id) {
					got[tr.subtask.VertexId] = tr
				}
			case <-deadline:
				t.Fatalf("no checkpoint after %d was triggered at both subtasks", id)
			}
		}
		return got
	}
	state := func() weirv1.JobState {
		st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: job})
		if err != nil {
			t.Fatal(err)
		}
		return st.State
	}

	// Checkpoint a: both subtasks ack, then the source finishes.
	first := next(0)
	src := first[1]
	ack(src)
	ack(first[2])
	eventually(t, 30*time.Second, "the first checkpoint to complete", func() bool { return w.completed(job) >= src.id })
	finish(src)

	// The next ones complete with the sink's ack alone.
	last := src.id
	for range 2 {
		sink := next(last)[2]
		ack(sink)
		eventually(t, 30*time.Second, "a checkpoint without the finished source", func() bool { return w.completed(job) >= sink.id })
		last = sink.id
	}
	if s := state(); s != weirv1.JobState_JOB_STATE_RUNNING {
		t.Fatalf("the job is %v with its source finished, want RUNNING", s)
	}
	r, err := h.api.ListCheckpoints(h.ctx, &weirv1.ListCheckpointsRequest{JobId: job})
	if err != nil {
		t.Fatal(err)
	}
	loc := ""
	for _, c := range r.Checkpoints {
		if c.Id == last && c.Status == weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
			loc = c.Location
		}
	}
	if loc == "" {
		t.Fatalf("checkpoint %d is not listed completed: %v", last, r.Checkpoints)
	}
	b, err := h.store.Bucket().ReadAll(h.ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	var m weirv1.CheckpointManifest
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest %s: %v", loc, err)
	}
	var found bool
	for _, s := range m.Subtasks {
		if s.VertexId == 1 {
			found = true
			if !s.Finished || len(s.Uids) != 1 || s.Uids[0] != "src" || s.Parallelism != 1 {
				t.Fatalf("checkpoint %d records the finished source as %v, want finished with uid src", last, s)
			}
		}
	}
	if !found || len(m.Subtasks) != 2 {
		t.Fatalf("checkpoint %d has subtasks %v, want the sink's and the finished source's", last, m.Subtasks)
	}

	// The sink takes its final checkpoint, then finishes: the job ends.
	sink := next(last)[2]
	ack(sink)
	eventually(t, 30*time.Second, "the sink's final checkpoint", func() bool { return w.completed(job) >= sink.id })
	finish(sink)
	eventually(t, 30*time.Second, "the job to finish", func() bool { return state() == weirv1.JobState_JOB_STATE_FINISHED })
}

// drainJob runs a job whose source has two subtasks (vertex 1, rebalanced
// into a sink) on a scripted worker that holds acks, with checkpoints an
// hour apart so that only a hurry triggers one; report sends a task state
// update of source subtask i.
func drainJob(t *testing.T) (w *scriptedWorker, report func(i int32, u *weirv1.TaskStateUpdate), job string) {
	h := startLeaderHarness(t, harnessOpts{})
	w = h.registered(t, "w1", scriptOpts{holdAcks: true})
	spec := h.spec("drain")
	spec.Parallelism = 2
	spec.Checkpoints.IntervalMs = 3_600_000
	spec.Graph.Vertices[0].Parallelism = 2
	spec.Graph.Edges[0].Partitioning = weirv1.Partitioning_PARTITIONING_REBALANCE
	r, err := h.api.SubmitJob(h.ctx, &weirv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	// Every task's first RUNNING is in before the test's reports, which it
	// would otherwise overwrite.
	var key *weirv1.ProcessKey
	eventually(t, 30*time.Second, "the job to run", func() bool {
		st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: r.JobId})
		if err != nil || st.State != weirv1.JobState_JOB_STATE_RUNNING {
			return false
		}
		deploys, _ := w.seen()
		key = deploys[0].Key
		return true
	})
	return w, func(i int32, u *weirv1.TaskStateUpdate) {
		u.VertexId, u.Subtask = 1, i
		w.report(key, &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TaskState{TaskState: u}})
	}, r.JobId
}

// TestFinalCheckpointHurriedOnceEverySourceEnded: a source subtask that
// waits for its final checkpoint while another source subtask still reads
// gets no checkpoint of its own (the job cannot end before the other one
// does); once the other one ends its input, the checkpoint is triggered at
// once, not at the next interval (an hour here): when it says it waits, and
// when it finishes without saying so (it took a checkpoint triggered
// before as its final one).
func TestFinalCheckpointHurriedOnceEverySourceEnded(t *testing.T) {
	for _, last := range []*weirv1.TaskStateUpdate{
		{State: weirv1.TaskState_TASK_STATE_RUNNING, AwaitingFinalCheckpoint: true},
		{State: weirv1.TaskState_TASK_STATE_FINISHED},
	} {
		t.Run(last.State.String(), func(t *testing.T) {
			w, report, _ := drainJob(t)
			report(0, &weirv1.TaskStateUpdate{State: weirv1.TaskState_TASK_STATE_RUNNING, AwaitingFinalCheckpoint: true})
			select {
			case tr := <-w.triggers:
				t.Fatalf("checkpoint %d was triggered while source subtask 1 still reads", tr.id)
			case <-time.After(2 * time.Second):
			}
			report(1, last)
			select {
			case <-w.triggers:
			case <-time.After(30 * time.Second):
				t.Fatal("no checkpoint was triggered once both source subtasks ended their input")
			}
		})
	}
}

// bothSourcesWait has drainJob's two source subtasks say they wait for
// their final checkpoint and returns its held triggers: both source
// subtasks' and the sink's.
func bothSourcesWait(t *testing.T, w *scriptedWorker, report func(int32, *weirv1.TaskStateUpdate)) []trigger {
	t.Helper()
	for i := range int32(2) {
		report(i, &weirv1.TaskStateUpdate{State: weirv1.TaskState_TASK_STATE_RUNNING, AwaitingFinalCheckpoint: true})
	}
	var trs []trigger
	for range 3 {
		select {
		case tr := <-w.triggers:
			trs = append(trs, tr)
		case <-time.After(30 * time.Second):
			t.Fatal("no final checkpoint was triggered once both source subtasks waited for it")
		}
	}
	return trs
}

// TestNoCheckpointAfterTheFinalOne: source subtasks that said they wait
// got their final checkpoint; when they finish because it completed, no
// other is triggered (it would wait for nothing and be aborted as the job
// ends, a failed checkpoint on every bounded job).
func TestNoCheckpointAfterTheFinalOne(t *testing.T) {
	w, report, job := drainJob(t)
	trs := bothSourcesWait(t, w, report)
	final := trs[0].id
	for _, tr := range trs {
		w.report(tr.key, ackOf(tr.id, tr.subtask))
	}
	eventually(t, 30*time.Second, "the final checkpoint to complete", func() bool { return w.completed(job) >= final })
	for i := range int32(2) {
		report(i, &weirv1.TaskStateUpdate{State: weirv1.TaskState_TASK_STATE_FINISHED})
	}
	select {
	case tr := <-w.triggers:
		t.Fatalf("checkpoint %d was triggered after the final checkpoint %d, with no subtask waiting", tr.id, final)
	case <-time.After(2 * time.Second):
	}
}

// TestFinalCheckpointPendingServesLateWaiters: the sink says it waits for
// its final checkpoint while the one its sources hurried is pending. If it
// had not taken that one (its input ended before the barrier reached it),
// it takes it after its end: that is its final checkpoint, and none other is
// triggered once it completes (one would be aborted as the job ends). If it
// had taken it before its end, it needs the next, at once.
func TestFinalCheckpointPendingServesLateWaiters(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tookFinal bool
	}{{"not taken yet", false}, {"taken before the end", true}} {
		t.Run(tc.name, func(t *testing.T) {
			w, report, job := drainJob(t)
			trs := bothSourcesWait(t, w, report)
			final := trs[0].id
			var sink *weirv1.SubtaskRef
			for _, tr := range trs {
				if tr.subtask.VertexId != 1 {
					sink = tr.subtask
				}
			}
			var taken int64
			if tc.tookFinal {
				taken = final
			}
			w.report(trs[0].key, &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TaskState{TaskState: &weirv1.TaskStateUpdate{
				VertexId: sink.VertexId, Subtask: sink.Subtask, State: weirv1.TaskState_TASK_STATE_RUNNING,
				AwaitingFinalCheckpoint: true, CheckpointTaken: taken}}})
			for _, tr := range trs {
				w.report(tr.key, ackOf(tr.id, tr.subtask))
			}
			eventually(t, 30*time.Second, "the final checkpoint to complete", func() bool { return w.completed(job) >= final })
			select {
			case tr := <-w.triggers:
				if !tc.tookFinal {
					t.Fatalf("checkpoint %d was triggered after %d, which the sink took after its end", tr.id, final)
				}
			case <-time.After(2 * time.Second):
				if tc.tookFinal {
					t.Fatalf("no checkpoint after %d, which the sink took before its end", final)
				}
			}
		})
	}
}
