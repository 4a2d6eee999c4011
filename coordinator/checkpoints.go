package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"gocloud.dev/blob"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/leader"
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
func checkpointWarning(j *job) string {
	if checkpointConfig(j.rec.Spec.GetCheckpoints()).Interval <= 0 || j.ckpt == nil {
		return ""
	}
	n, reason := j.ckFailedSince, oneLine(errors.New(j.ckLastFailure))
	_, _, any := j.ckpt.Latest()
	switch {
	case n > 0 && !any:
		return fmt.Sprintf("no checkpoint has completed: %d failed, the last: %s", n, reason)
	case n >= 2:
		return fmt.Sprintf("the last %d checkpoints failed, the last: %s", n, reason)
	}
	return ""
}

// ckApply carries out the checkpoint machine's actions for job j.
func (s *leaderState) ckApply(ctx context.Context, j *job, acts []checkpoint.Action) {
	var failJob string
	defer func() {
		// After the actions: failing the attempt re-enters the machine.
		if failJob != "" {
			s.logger.Error("failing the job", "job", j.rec.Id, "reason", failJob)
			s.failed(ctx, j, -1, failJob, false)
		}
	}()
	for _, a := range acts {
		switch a := a.(type) {
		case checkpoint.AllocateID:
			id, err := s.store.NextID(ctx, checkpointIDKey(j.rec.Id))
			if errors.Is(err, leader.ErrFenced) {
				s.fence(err)
				return
			}
			now := time.Now()
			if err != nil {
				s.ckApply(ctx, j, j.ckpt.IDFailed(a.Savepoint, err.Error(), now))
			} else {
				s.ckApply(ctx, j, j.ckpt.IDAllocated(id, a.Savepoint, now))
			}
		case checkpoint.Trigger:
			s.ckTriggered(j, a)
			s.sendProcs(j, func(int32) *weirv1.ProcessCommand {
				return &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_Trigger{Trigger: &weirv1.TriggerCheckpoint{
					CheckpointId: a.ID, TimestampUnixMs: a.Timestamp.UnixMilli(), Savepoint: a.Savepoint,
				}}}
			})
		case checkpoint.Complete:
			loc, m, err := s.storeCheckpoint(ctx, j, a)
			if errors.Is(err, leader.ErrFenced) {
				s.fence(err)
				return
			}
			now := time.Now()
			if err != nil {
				s.logger.Error("cannot record checkpoint", "job", j.rec.Id, "checkpoint", a.ID, "err", err)
				s.ckApply(ctx, j, j.ckpt.StoreFailed(a.ID, err.Error(), now))
				continue
			}
			j.manifests[a.ID] = m
			if !a.Savepoint {
				j.ckFailedInRow, j.ckFailedSince = 0, 0
			}
			s.ckApply(ctx, j, j.ckpt.Stored(a.ID, loc, now))
			s.ckFinished(j, a.ID, "")
			if a.Savepoint && j.savepointWaiter != nil {
				j.savepointWaiter <- savepointResult{location: storelayout.URL(s.c.cfg.Store, loc), id: a.ID}
				j.savepointWaiter = nil
			}
		case checkpoint.Notify:
			s.notifyComplete(j, a.ID)
		case checkpoint.Abort:
			s.logger.Warn("checkpoint aborted", "job", j.rec.Id, "checkpoint", a.ID, "savepoint", a.Savepoint, "reason", a.Reason)
			s.ckFinished(j, a.ID, a.Reason)
			// Aborts of a stopping attempt are not failures of checkpointing.
			if limit := j.rec.Spec.GetCheckpoints().GetFailAfterFailures(); !a.Savepoint && j.ckStarted {
				j.ckFailedInRow++
				j.ckFailedSince++
				j.ckLastFailure = a.Reason
				if limit > 0 && j.ckFailedInRow >= int(limit) && failJob == "" {
					failJob = fmt.Sprintf("%d checkpoints in a row failed (--fail-on-checkpoint-errors %d), the last: %s", j.ckFailedInRow, limit, a.Reason)
				}
			}
			if a.Savepoint && j.savepointWaiter != nil {
				j.savepointWaiter <- savepointResult{err: fmt.Errorf("savepoint %d failed: %s", a.ID, a.Reason)}
				j.savepointWaiter = nil
			}
		case checkpoint.Discard:
			s.discard(ctx, j, a.ID, a.Location)
		}
	}
}

// sendProcs sends every running process of the current attempt the command
// cmd makes for its region (nil: none), addressed to the attempt the region
// runs. cmd must return a new command each call: each gets its own key.
func (s *leaderState) sendProcs(j *job, cmd func(region int32) *weirv1.ProcessCommand) {
	for _, id := range j.procIDs() {
		if wc := s.workers[id.worker]; wc != nil && !j.procs[id].exited {
			if c := cmd(id.region); c != nil {
				wc.command(j.procKey(id.region), c)
			}
		}
	}
}

// notifyComplete tells every process that checkpoint id is complete.
func (s *leaderState) notifyComplete(j *job, id int64) {
	s.sendProcs(j, func(int32) *weirv1.ProcessCommand {
		return &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_Complete{Complete: &weirv1.CheckpointComplete{CheckpointId: id}}}
	})
}

// storeCheckpoint writes the manifest create-if-absent, then records the
// checkpoint in etcd under this leader's fence: a checkpoint is complete
// only once both exist, and a deposed leader cannot record one.
func (s *leaderState) storeCheckpoint(ctx context.Context, j *job, c checkpoint.Complete) (string, *weirv1.CheckpointManifest, error) {
	m := &weirv1.CheckpointManifest{JobId: j.rec.Id, CheckpointId: c.ID, TimestampUnixMs: time.Now().UnixMilli(),
		MaxParallelism: j.rec.Spec.Graph.MaxParallelism, Savepoint: c.Savepoint}
	for _, a := range c.Acks {
		m.Subtasks = append(m.Subtasks, a.Snapshot)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return "", nil, err
	}
	key := storelayout.Manifest(j.rec.Id, c.ID, c.Savepoint)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := s.c.store.Bucket().NewWriter(wctx, key, &blob.WriterOptions{IfNotExist: true, ContentType: "application/x-protobuf"})
	if err != nil {
		return "", nil, err
	}
	if _, err := w.Write(b); err != nil {
		cancel()
		w.Close()
		return "", nil, err
	}
	if err := w.Close(); err != nil {
		return "", nil, fmt.Errorf("write manifest %s: %w", key, err)
	}
	info := ckInfo(j, c.ID, key)
	rec, _ := proto.Marshal(info)
	if err := s.store.Put(ctx, checkpointKey(j.rec.Id, c.ID), rec); err != nil {
		return "", nil, err
	}
	return key, m, nil
}

// ckInfo is the checkpoint's row as the machine reports it, completed.
func ckInfo(j *job, id int64, location string) *weirv1.CheckpointInfo {
	for _, h := range j.ckpt.History() {
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
func (s *leaderState) discard(ctx context.Context, j *job, id int64, location string) {
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
			if !keep[o] {
				doomed = append(doomed, o)
			}
		}
	}
	doomed = append(doomed, location)
	if err := s.store.Delete(ctx, checkpointKey(j.rec.Id, id)); errors.Is(err, leader.ErrFenced) {
		s.fence(err)
		return
	}
	bucket := s.c.store.Bucket()
	go func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := snapshot.Delete(dctx, bucket, doomed); err != nil {
			s.logger.Warn("cannot delete discarded checkpoint files", "job", j.rec.Id, "checkpoint", id, "err", err)
		}
	}()
}

// loadCheckpoints seeds a job's checkpoint machine from etcd and reads the
// manifests retention needs (on a new leader).
func (s *leaderState) loadCheckpoints(ctx context.Context, j *job) error {
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
		j.ckpt.Restored(info.Id, info.Location, info)
		if b, err := s.c.store.Bucket().ReadAll(ctx, info.Location); err == nil {
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
func (j *job) restoreFor() *weirv1.Restore {
	for _, h := range j.ckpt.History() {
		if h.Status == weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED && !j.badCheckpoints[h.Id] {
			return &weirv1.Restore{Manifest: h.Location, CheckpointId: h.Id}
		}
	}
	if sp := j.rec.Spec.FromSavepoint; sp != "" {
		store, key, err := storelayout.Split(sp)
		if err == nil {
			return &weirv1.Restore{Manifest: key, Store: store, CheckpointId: -1}
		}
	}
	return nil
}

// ckTasks lists every subtask of the job for the checkpoint machine.
func (j *job) ckTasks() []checkpoint.TaskID {
	ts := make([]checkpoint.TaskID, len(j.subtasks))
	for i, st := range j.subtasks {
		ts[i] = checkpoint.TaskID{Vertex: st.VertexID, Subtask: st.Index}
	}
	return ts
}

// ckStop ends checkpointing for the current attempt.
func (s *leaderState) ckStop(ctx context.Context, j *job, reason string) {
	if j.ckStarted {
		j.ckStarted = false
		s.ckApply(ctx, j, j.ckpt.Stop(reason, time.Now()))
	}
}
