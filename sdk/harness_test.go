package sdk

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/objstore"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// ckCluster plays, in this process, the parts of a coordinator and a worker
// that a checkpointed job needs: it triggers checkpoints at the sources,
// collects acks into manifests, notifies completion, kills an attempt (its
// context is cancelled mid-stream, as a lost worker's would be) and starts
// the next from the last completed checkpoint. The job's keyed state goes
// through Pebble and an object store under dir, as in a cluster.
type ckCluster struct {
	dir      string
	build    func(p *Pipeline)
	interval time.Duration
	nextID   int64
	attempt  int64
	last     *weirv1.CheckpointManifest // latest completed checkpoint
	// started, when set, is called once an attempt's subtasks are
	// deployed (they may not run yet), with the attempt's deployment.
	started func(attempt int64, d *deployment)
	// parallelism is the pipeline's default parallelism in the next
	// attempt (2 when 0): a restore at another one rescales the job.
	parallelism int
	// requests, when set, replaces the periodic checkpoints: the job (its
	// source, say) asks for each checkpoint or savepoint, and for the kill
	// after it. interval is then how often pending requests are looked at.
	requests chan ckRequest
}

// ckRequest asks a ckCluster for a checkpoint (or a savepoint) and, with
// kill, to kill the attempt once it completed; the next attempt restores
// from it at parallelism rescale (when > 0).
type ckRequest struct {
	savepoint, kill bool
	rescale         int
}

var errKilled = errors.New("killed by the test after a completed checkpoint")

// runAttempt runs one attempt at c.parallelism, restoring from c.last if
// set. With kill > 0 the attempt is killed once kill checkpoints completed
// in it; with c.requests, checkpoints are taken as the job asks and the
// attempt is killed after one asked with kill (or, when that one does not
// complete, a second after it started). It reports whether the job ran to
// its end (not killed).
func (c *ckCluster) runAttempt(ctx context.Context, kill int) (finished bool, err error) {
	c.attempt++
	par := c.parallelism
	if par == 0 {
		par = 2
	}
	p := NewPipeline("ckjob", par)
	c.build(p)
	pl, err := p.buildPlan()
	if err != nil {
		return false, err
	}
	store, err := objstore.Open(ctx, filepath.Join(c.dir, "store"))
	if err != nil {
		return false, err
	}
	defer store.Close()
	logger := testLogger()
	type ackOrDecline struct {
		ack     *weirv1.CheckpointAck
		decline *weirv1.CheckpointDecline
	}
	acks := make(chan ackOrDecline, 64)
	ck := &checkpointer{store: store, bucket: store.Bucket(), jobID: "ckjob", attempt: c.attempt,
		stateRoot: filepath.Join(c.dir, fmt.Sprintf("state-%d", c.attempt)), restore: c.last,
		interval: c.interval, logger: logger,
		ack:     func(a *weirv1.CheckpointAck) { acks <- ackOrDecline{ack: a} },
		decline: func(d *weirv1.CheckpointDecline) { acks <- ackOrDecline{decline: d} }}
	net := exchange.NewNetwork("ckjob", c.attempt, exchange.Options{}, logger)
	defer net.Close()
	net.SetLocalAddr("local")
	d := &deployment{jobID: "ckjob", attempt: c.attempt, net: net, self: "local", ck: ck, logger: logger,
		route: func(subtaskRef) string { return "local" }}
	var refs []subtaskRef
	for _, v := range pl.vertices {
		for i := range v.parallelism {
			refs = append(refs, subtaskRef{v.id, i})
		}
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	var mu sync.Mutex
	running := map[subtaskRef]bool{}
	go func() {
		done <- pl.run(actx, d, refs, func(r subtaskRef, st weirv1.TaskState, _ error) {
			mu.Lock()
			running[r] = st == weirv1.TaskState_TASK_STATE_RUNNING
			mu.Unlock()
		})
	}()
	allRunning := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range refs {
			if !running[r] {
				return false
			}
		}
		return true
	}
	if c.started != nil {
		c.started(c.attempt, d)
	}
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	var pending *weirv1.CheckpointManifest // the checkpoint in flight
	var pendingAt time.Time
	var pendingReq ckRequest // what was asked of it (request mode)
	var queued []ckRequest
	killAfter := func(r ckRequest) {
		if r.rescale > 0 {
			c.parallelism = r.rescale
		}
		cancel(errKilled)
	}
	completed := 0
	for {
		select {
		case err := <-done:
			ck.uploads.Wait()
			if context.Cause(actx) == errKilled {
				return false, nil
			}
			return err == nil, err
		case r := <-c.requests: // never when nil
			queued = append(queued, r)
		case <-tick.C:
			// One checkpoint at a time; one that did not complete within
			// a second (a subtask finished before its barrier) is
			// abandoned, as the coordinator's timeout would.
			if !allRunning() || (pending != nil && time.Since(pendingAt) < time.Second) {
				continue
			}
			if pending != nil && pendingReq.kill {
				killAfter(pendingReq) // restore from the last completed one
				continue
			}
			savepoint := false
			if c.requests != nil {
				if len(queued) == 0 {
					pending = nil
					continue
				}
				pendingReq, queued = queued[0], queued[1:]
				savepoint = pendingReq.savepoint
			}
			pendingAt = time.Now()
			c.nextID++
			pending = &weirv1.CheckpointManifest{JobId: "ckjob", CheckpointId: c.nextID,
				MaxParallelism: int32(pl.maxParallelism), Savepoint: savepoint}
			d.post(control{trigger: &weirv1.TriggerCheckpoint{JobId: "ckjob", Attempt: c.attempt,
				CheckpointId: c.nextID, TimestampUnixMs: time.Now().UnixMilli(), Savepoint: savepoint}})
		case a := <-acks:
			if a.decline != nil || pending == nil || a.ack.CheckpointId != pending.CheckpointId {
				continue
			}
			pending.Subtasks = append(pending.Subtasks, a.ack.Snapshot)
			if len(pending.Subtasks) < len(refs) {
				continue
			}
			c.last, pending = pending, nil
			d.post(control{complete: c.last.CheckpointId})
			completed++
			if kill > 0 && completed >= kill {
				cancel(errKilled)
			}
			if pendingReq.kill {
				killAfter(pendingReq)
			}
			pendingReq = ckRequest{}
		}
	}
}
