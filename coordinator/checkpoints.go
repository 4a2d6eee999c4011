package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Checkpoint defaults for jobs that set none: on by default, as safe
// defaults matter more than throughput for the teams weir is for.
const (
	DefaultCheckpointInterval = 10 * time.Second
	DefaultCheckpointTimeout  = 10 * time.Minute
)

// checkpointConfig turns a job's policy into the machine's config.
func checkpointConfig(p *weirv1.CheckpointPolicy) checkpoint.Config {
	if p == nil {
		return checkpoint.Config{Interval: DefaultCheckpointInterval, Timeout: DefaultCheckpointTimeout}
	}
	return checkpoint.Config{
		Interval: time.Duration(p.IntervalMs) * time.Millisecond, Timeout: time.Duration(p.TimeoutMs) * time.Millisecond,
		MinPause: time.Duration(p.MinPauseMs) * time.Millisecond, MaxConcurrent: int(p.MaxConcurrent), Retained: int(p.Retained),
	}
}

// savepointFailure says why savepoint id was aborted, in the words of
// what happened to the job: an attempt that stops while the job restarts
// means a task failed, while it is cancelled that it was cancelled. The
// checkpoint machine's reason follows in other cases. The job's state when
// the caller hears of it is added by TriggerSavepoint.
func savepointFailure(id int64, reason string, state weirv1.JobState) error {
	cause := reason
	switch {
	case strings.HasPrefix(reason, "job stopped: region "):
		cause = "a task failed during it (" + strings.TrimPrefix(reason, "job stopped: ") + ")"
	case strings.HasPrefix(reason, "job stopped: ") || reason == "job not running":
		// The attempt stopped while the savepoint was pending (or before
		// its id was allocated): the job's state says why.
		switch state {
		case weirv1.JobState_JOB_STATE_RESTARTING, weirv1.JobState_JOB_STATE_FAILED:
			cause = "a task failed during it"
		case weirv1.JobState_JOB_STATE_CANCELING, weirv1.JobState_JOB_STATE_CANCELED:
			cause = "the job was cancelled during it"
		case weirv1.JobState_JOB_STATE_FINISHED:
			cause = "the job finished during it"
		}
	}
	return fmt.Errorf("savepoint %d failed: %s", id, cause)
}

// savepointResult answers a TriggerSavepoint call.
type savepointResult struct {
	location string
	id       int64
	err      error
}

func checkpointIDKey(job string) string { return etcdkeys.CheckpointIDs + job }
func checkpointKey(job string, id int64) string {
	return fmt.Sprintf("%s%s/%020d", etcdkeys.Checkpoints, job, id)
}

// checkpointWarning is what a job's status says when checkpointing is on
// and its checkpoints keep failing: a user must learn that before a crash
// finds nothing recent to restore.
func checkpointWarning(j *jobDriver) string {
	if checkpointConfig(j.rec.Spec.GetCheckpoints()).Interval <= 0 || j.checkpoints == nil {
		return ""
	}
	n, reason := j.checkpointsFailedSince, oneLine(errors.New(j.lastCheckpointFailure))
	_, _, any := j.checkpoints.Latest()
	switch {
	case n > 0 && !any:
		return fmt.Sprintf("no checkpoint has completed: %d failed, the last: %s", n, reason)
	case n >= 2:
		return fmt.Sprintf("the last %d checkpoints failed, the last: %s", n, reason)
	}
	return ""
}

// applyCheckpointActions carries out the checkpoint machine's actions for
// job j (on the loop, from drain). I/O goes to the job's checkpoint lane;
// its results come back as events (driver.go).
func (s *leaderState) applyCheckpointActions(ctx context.Context, j *jobDriver, acts []checkpoint.Action) {
	failing := false
	for _, a := range acts {
		switch a := a.(type) {
		case checkpoint.AllocateID:
			s.submit(j, &j.checkpointIO, allocateID{job: j.rec.Id, savepoint: a.Savepoint})
		case checkpoint.Trigger:
			s.checkpointTriggered(j, a)
			s.sendProcs(j, func(int32) *weirv1.ProcessCommand {
				return &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_Trigger{Trigger: &weirv1.TriggerCheckpoint{
					CheckpointId: a.ID, TimestampUnixMs: a.Timestamp.UnixMilli(), Savepoint: a.Savepoint,
				}}}
			})
		case checkpoint.Complete:
			s.submit(j, &j.checkpointIO, s.storeEffect(j, a))
		case checkpoint.Notify:
			s.notifyComplete(j, a.ID)
		case checkpoint.Abort:
			s.logger.Warn("checkpoint aborted", "job", j.rec.Id, "checkpoint", a.ID, "savepoint", a.Savepoint, "reason", a.Reason)
			s.checkpointFinished(j, a.ID, a.Reason)
			// Aborts of a stopping attempt are not failures of checkpointing.
			if limit := j.rec.Spec.GetCheckpoints().GetFailAfterFailures(); !a.Savepoint && j.checkpointing {
				j.checkpointsFailedInRow++
				j.checkpointsFailedSince++
				j.lastCheckpointFailure = a.Reason
				if limit > 0 && j.checkpointsFailedInRow >= int(limit) && !failing {
					// Applied after these actions (drain queues it).
					failing = true
					reason := fmt.Sprintf("%d checkpoints in a row failed (--fail-on-checkpoint-errors %d), the last: %s", j.checkpointsFailedInRow, limit, a.Reason)
					s.logger.Error("failing the job", "job", j.rec.Id, "reason", reason)
					s.failed(ctx, j, -1, reason, false)
				}
			}
			if a.Savepoint && j.savepointWaiter != nil {
				j.savepointWaiter <- savepointResult{id: a.ID, err: savepointFailure(a.ID, a.Reason, j.m.State())}
				j.savepointWaiter = nil
			}
		case checkpoint.Discard:
			s.discard(j, a.ID, a.Location)
		}
	}
}

// sendProcs sends every running process of the current attempt the command
// cmd makes for its region (nil: none), addressed to the attempt the region
// runs. cmd must return a new command each call: each gets its own key.
func (s *leaderState) sendProcs(j *jobDriver, cmd func(region int32) *weirv1.ProcessCommand) {
	for _, id := range j.attemptProcs() {
		if wc := s.workers[id.worker]; wc != nil && !j.procs[id].exited {
			if c := cmd(id.region); c != nil {
				s.commandJob(j, wc, j.procKey(id.region), c)
			}
		}
	}
}

// notifyComplete tells every process that checkpoint id is complete.
func (s *leaderState) notifyComplete(j *jobDriver, id int64) {
	s.sendProcs(j, func(int32) *weirv1.ProcessCommand {
		return &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_Complete{Complete: &weirv1.CheckpointComplete{CheckpointId: id}}}
	})
}

// completedCheckpointInfo is the checkpoint's row as the machine reports it, completed.
func completedCheckpointInfo(j *jobDriver, id int64, location string) *weirv1.CheckpointInfo {
	for _, h := range j.checkpoints.History() {
		if h.Id == id {
			info := proto.Clone(h).(*weirv1.CheckpointInfo)
			info.Status = weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED
			info.Location = location
			info.DurationMs = time.Now().UnixMilli() - info.TriggerUnixMs
			return info
		}
	}
	return &weirv1.CheckpointInfo{Id: id, Status: weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED, Location: location}
}

// discard deletes a checkpoint retention dropped: its manifest, its record,
// and the files no retained checkpoint references. Shared files a future
// checkpoint could reuse are always referenced by the newest one, which is
// retained, so this never deletes a file still needed.
func (s *leaderState) discard(j *jobDriver, id int64, location string) {
	m := j.manifests[id]
	delete(j.manifests, id)
	var doomed []string
	if m != nil {
		keep := map[string]bool{}
		for _, other := range j.manifests {
			for _, o := range snapshot.Objects(other.Subtasks) {
				keep[o] = true
			}
		}
		for _, o := range snapshot.Objects(m.Subtasks) {
			// A manifest read back from the store could name anything:
			// retention deletes only the job's own files.
			if !keep[o] && storelayout.Owns(j.rec.Id, o) {
				doomed = append(doomed, o)
			}
		}
	}
	if storelayout.Owns(j.rec.Id, location) {
		doomed = append(doomed, location)
	}
	s.submit(j, &j.checkpointIO, deleteCheckpoint{job: j.rec.Id, id: id, doomed: doomed, bucket: s.c.store.Bucket()})
}

// loadCheckpoints seeds a job's checkpoint machine from etcd and reads the
// manifests retention needs (on a new leader).
func (s *leaderState) loadCheckpoints(ctx context.Context, j *jobDriver) error {
	recs, err := s.store.List(ctx, etcdkeys.Checkpoints+j.rec.Id+"/")
	if err != nil {
		return err
	}
	var infos []*weirv1.CheckpointInfo
	for _, b := range recs {
		var info weirv1.CheckpointInfo
		if proto.Unmarshal(b, &info) == nil {
			infos = append(infos, &info)
		}
	}
	sort.Slice(infos, func(a, b int) bool { return infos[a].Id < infos[b].Id })
	for _, info := range infos {
		j.checkpoints.Restored(info.Id, info.Location, info)
		if b, err := s.c.store.Bucket().ReadAll(ctx, info.Location); err == nil {
			if b, err = j.key.OpenBytes(b, info.Location); err != nil {
				s.logger.Error("a checkpoint manifest does not open", "job", j.rec.Id, "checkpoint", info.Id, "err", err)
				continue
			}
			var m weirv1.CheckpointManifest
			if proto.Unmarshal(b, &m) == nil {
				j.manifests[info.Id] = &m
			}
		}
	}
	return nil
}

// restoreFor picks the state the next attempt starts from: the newest
// completed checkpoint that has not failed to restore, else the savepoint
// the job was submitted with (a savepoint that fails to restore fails the
// job: see taskState), else nothing.
func (j *jobDriver) restoreFor() *weirv1.Restore {
	for _, h := range j.checkpoints.History() {
		if h.Status == weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED && !j.badCheckpoints[h.Id] {
			return &weirv1.Restore{Manifest: h.Location, CheckpointId: h.Id, DataKey: j.key.Bytes()}
		}
	}
	if sp := j.rec.Spec.FromSavepoint; sp != "" {
		store, key, err := storelayout.Split(sp)
		if err == nil {
			return &weirv1.Restore{Manifest: key, Store: store, CheckpointId: -1, DataKey: j.savepointKey.Bytes()}
		}
	}
	return nil
}

// checkpointTasks lists every subtask of the job for the checkpoint machine.
func (j *jobDriver) checkpointTasks() []checkpoint.TaskID {
	ts := make([]checkpoint.TaskID, len(j.subtasks))
	for i, st := range j.subtasks {
		ts[i] = checkpoint.TaskID{Vertex: st.VertexID, Subtask: st.Index}
	}
	return ts
}

// startCheckpoints starts checkpointing for the current attempt once every
// task runs or finished, unless it runs already. Tasks already finished
// (restored finished, or ended in a region that did not restart) are
// reported to the machine at once, so that no checkpoint waits for them.
func (s *leaderState) startCheckpoints(ctx context.Context, j *jobDriver) {
	if j.m.State() != weirv1.JobState_JOB_STATE_RUNNING || j.checkpointing {
		return
	}
	j.checkpointing, j.checkpointsFailedInRow = true, 0
	s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action {
		acts := j.checkpoints.Start(j.checkpointTasks(), now)
		hurry := false
		j.awaitingTaken = 0
		for _, id := range j.checkpointTasks() {
			t := j.tasks[jobgraph.Subtask{VertexID: id.Vertex, Index: id.Subtask}]
			switch {
			case t == nil:
			case t.state == weirv1.TaskState_TASK_STATE_FINISHED:
				acts = append(acts, j.checkpoints.Finished(id, j.finishedAck(id), now)...)
			case t.awaiting:
				// It said so before checkpoints started (another subtask
				// was still restoring), or to the leader before this one.
				hurry = true
				j.awaitingTaken = max(j.awaitingTaken, t.taken)
			}
		}
		if hurry && j.sourcesDrained() {
			acts = append(acts, j.hurry(now)...)
		}
		return acts
	})
}

// finishedAck is what a checkpoint records for a task that ended before
// it acked it: no state, marked finished, with the chain's uids so that a
// restore finds its vertex and starts the subtask finished (Flink's
// FinishedOperatorSubtaskState).
func (j *jobDriver) finishedAck(id checkpoint.TaskID) *weirv1.CheckpointAck {
	snap := &weirv1.SubtaskSnapshot{VertexId: id.Vertex, Subtask: id.Subtask, Finished: true}
	for _, v := range j.rec.Spec.GetGraph().GetVertices() {
		if v.Id != id.Vertex {
			continue
		}
		snap.Parallelism = v.Parallelism
		for _, op := range v.Operators {
			snap.Uids = append(snap.Uids, op.Uid)
		}
	}
	return &weirv1.CheckpointAck{Snapshot: snap}
}

// stopCheckpoints ends checkpointing for the current attempt.
func (s *leaderState) stopCheckpoints(ctx context.Context, j *jobDriver, reason string) {
	if j.checkpointing {
		j.checkpointing = false
		s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action { return j.checkpoints.Stop(reason, now) })
	}
}
