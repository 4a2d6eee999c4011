package coordinator

import (
	"context"
	"io"
	"time"

	"gocloud.dev/blob"

	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/storelayout"
)

// Orphaned checkpoint files: objects under a job's checkpoints/<job>/
// prefix that no retained checkpoint references, left by checkpoints that
// were aborted (a declined or timed-out checkpoint, a store write that
// failed, a leader that died before recording one). Retention deletes
// only files of checkpoints it discards, so these are collected by a
// sweep (docs/decisions.md, "Checkpoint garbage collection"):
//
//   - It runs only when the job's checkpoint machine is quiet (Quiet): no
//     checkpoint pending or being allocated, and the last one this leader
//     allocated completed. Every subtask's uploader then remembers only
//     files of that checkpoint, which its retained manifest lists; none
//     can reuse an unlisted object without checking the store again.
//   - It runs on the job's checkpoint lane, which also allocates checkpoint
//     ids: no checkpoint can be triggered until it is done, so no upload
//     can adopt an object (by finding it in the store) between the listing
//     and the deletes.
//   - It deletes only objects the job owns (storelayout.Owns), that no
//     retained manifest lists and that are not a retained manifest, and
//     only objects older than the trigger of the newest completed
//     checkpoint, and not at all while a retained checkpoint's manifest
//     is unknown to the leader.

// DefaultCheckpointGCInterval is how often at most a job's store prefix is
// listed for orphaned files.
const DefaultCheckpointGCInterval = time.Minute

// maybeSweep submits a sweep of j's orphaned checkpoint files if its
// checkpoints are quiet and the last sweep is older than the interval.
func (s *leaderState) maybeSweep(j *jobDriver) {
	every := s.c.cfg.CheckpointGCInterval
	if every < 0 || j.checkpoints == nil || time.Since(j.lastSweep) < every {
		return
	}
	newest, ok := j.checkpoints.Quiet()
	if !ok {
		return
	}
	var before time.Time
	for _, h := range j.checkpoints.History() {
		if h.Id == newest {
			before = time.UnixMilli(h.TriggerUnixMs)
		}
	}
	if before.IsZero() {
		return
	}
	keep := map[string]bool{}
	ids, locations := j.checkpoints.Retained()
	for i, id := range ids {
		m := j.manifests[id]
		if m == nil {
			return // a retained checkpoint's files are unknown: keep everything
		}
		keep[locations[i]] = true
		for _, o := range snapshot.Objects(m.Subtasks) {
			keep[o] = true
		}
	}
	j.lastSweep = time.Now()
	s.submit(j, &j.checkpointIO, sweepOrphans{job: j.rec.Id, keep: keep, before: before, bucket: s.c.store.Bucket()})
}

// sweepOrphans deletes a job's orphaned checkpoint files.
type sweepOrphans struct {
	job    string
	keep   map[string]bool
	before time.Time
	bucket *blob.Bucket
}

// sweepTimeout bounds one sweep; what it does not reach waits for the next.
const sweepTimeout = time.Minute

func (e sweepOrphans) run(ctx context.Context, s *leaderState) event {
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	doomed, err := e.orphans(ctx)
	if err == nil && len(doomed) > 0 {
		err = snapshot.Delete(ctx, e.bucket, doomed)
	}
	if err != nil {
		s.logger.Warn("cannot collect orphaned checkpoint files", "job", e.job, "err", err)
		return nil
	}
	if len(doomed) > 0 {
		s.logger.Info("collected orphaned checkpoint files", "job", e.job, "objects", len(doomed))
	}
	return nil
}

// orphans lists the objects the sweep deletes.
func (e sweepOrphans) orphans(ctx context.Context) ([]string, error) {
	prefixes, err := storelayout.JobPrefixes(e.job, false)
	if err != nil {
		return nil, err
	}
	var doomed []string
	it := e.bucket.List(&blob.ListOptions{Prefix: prefixes[0]})
	for {
		o, err := it.Next(ctx)
		if err != nil {
			if err == io.EOF {
				return doomed, nil
			}
			return nil, err
		}
		if o.IsDir || e.keep[o.Key] || !storelayout.Owns(e.job, o.Key) || !o.ModTime.Before(e.before) {
			continue
		}
		doomed = append(doomed, o.Key)
	}
}
