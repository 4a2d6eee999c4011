package coordinator

import (
	"context"
	"fmt"
	"io"
	"time"

	"gocloud.dev/blob"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Deleting a job (weir delete, or --job-retention) removes its objects
// from the store, then its keys from etcd in one fenced transaction, then
// forgets it: objects first, so a failure halfway leaves a record to
// delete again, never objects nobody knows of. The deletion runs on the
// job's record lane, after the record writes already queued, so no later
// write of the job brings its record back.

// deleteTimeout bounds one job's deletion.
const deleteTimeout = 5 * time.Minute

// deleteResult answers a deletion.
type deleteResult struct {
	objects int64
	err     error
}

// deleteJob starts deleting j (on the loop) and returns where the result
// will come, or a gRPC error saying why j cannot be deleted now.
func (s *leaderState) deleteJob(j *jobDriver, withSavepoints bool, why string) (<-chan deleteResult, error) {
	id := j.rec.Id
	if st := j.m.State(); !jobmaster.Terminal(st) {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s is %s: only a FINISHED, FAILED or CANCELED job can be deleted (weir cancel %s first)", id, shortState(st), id)
	}
	if j.deleting != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s is being deleted already", id)
	}
	if j.checkpointIO.busy || len(j.checkpointIO.queue) > 0 {
		return nil, status.Errorf(codes.Unavailable, "job %s is still writing checkpoint records; retry in a moment", id)
	}
	prefixes, err := storelayout.JobPrefixes(id, withSavepoints)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	ch := make(chan deleteResult, 1)
	j.deleting = ch
	s.logger.Info("deleting job", "job", id, "why", why, "with_savepoints", withSavepoints)
	s.submit(j, &j.recordIO, deleteJobEffect{job: id, prefixes: prefixes, bucket: s.c.store.Bucket(), withKey: withSavepoints})
	return ch, nil
}

// deleteJobEffect deletes a job's objects and keys.
type deleteJobEffect struct {
	job      string
	prefixes []string
	bucket   *blob.Bucket
	// withKey: nothing of the job stays, so its data key goes too; kept
	// savepoints keep it, or they could not be read.
	withKey bool
}

func (d deleteJobEffect) run(ctx context.Context, s *leaderState) event {
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	n, err := d.deleteObjects(ctx)
	if err == nil {
		keys := []string{etcdkeys.Jobs + d.job, checkpointIDKey(d.job)}
		if d.withKey {
			keys = append(keys, etcdkeys.JobKeys+d.job)
		}
		err = s.store.DeleteAll(ctx, keys, []string{etcdkeys.Checkpoints + d.job + "/"})
		if s.fenced(err) {
			return nil
		}
	}
	return jobDeleted{objects: n, err: err}
}

// deleteObjects deletes every object under the job's prefixes, checking
// each key against the job's ownership once more.
func (d deleteJobEffect) deleteObjects(ctx context.Context) (int64, error) {
	var keys []string
	for _, p := range d.prefixes {
		it := d.bucket.List(&blob.ListOptions{Prefix: p})
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, fmt.Errorf("list %s: %w", p, err)
			}
			if !o.IsDir && storelayout.Owns(d.job, o.Key) {
				keys = append(keys, o.Key)
			}
		}
	}
	if err := snapshot.Delete(ctx, d.bucket, keys); err != nil {
		return 0, err
	}
	return int64(len(keys)), nil
}

// jobDeleted: the job's objects and keys are gone (err: not all of them;
// the job stays, and may be deleted again).
type jobDeleted struct {
	objects int64
	err     error
}

func (r jobDeleted) apply(_ context.Context, s *leaderState, j *jobDriver) {
	ch := j.deleting
	j.deleting = nil
	if r.err != nil {
		s.logger.Error("cannot delete job", "job", j.rec.Id, "err", r.err)
	} else {
		delete(s.jobs, j.rec.Id)
		s.logger.Info("job deleted", "job", j.rec.Id, "objects", r.objects)
	}
	ch <- deleteResult{objects: r.objects, err: r.err}
}

// expireJobs deletes the terminal jobs that last changed more than the
// retention ago (--job-retention; 0 keeps them), sweeping once a minute
// (or once per retention, if shorter). Savepoints are kept.
func (s *leaderState) expireJobs(now time.Time) {
	keep := s.c.cfg.JobRetention
	if keep <= 0 || now.Sub(s.expiredAt) < min(retentionSweep, keep) || s.reconcile != nil {
		return
	}
	s.expiredAt = now
	cut := now.Add(-keep).UnixMilli()
	for _, j := range s.jobs {
		if jobmaster.Terminal(j.m.State()) && j.deleting == nil && j.rec.UpdatedUnixMs < cut {
			// A refusal (checkpoint I/O in flight) is retried next sweep.
			_, _ = s.deleteJob(j, false, fmt.Sprintf("older than --job-retention %v", keep))
		}
	}
}

// retentionSweep is how often the leader looks for expired jobs.
const retentionSweep = time.Minute

func (s *jobService) DeleteJob(ctx context.Context, r *weirv1.DeleteJobRequest) (*weirv1.DeleteJobResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := call(ctx, st, func() (<-chan deleteResult, error) {
		j := st.jobs[r.JobId]
		if j == nil {
			return nil, status.Errorf(codes.NotFound, "no job %s", r.JobId)
		}
		return st.deleteJob(j, r.WithSavepoints, "weir delete")
	})
	if err != nil {
		return nil, err
	}
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, status.Errorf(codes.Unavailable, "job %s is not deleted: %v", r.JobId, oneLine(res.err))
		}
		return &weirv1.DeleteJobResponse{DeletedObjects: res.objects}, nil
	case <-st.done:
		return nil, errNotLeader
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}
