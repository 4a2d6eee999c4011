package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"log/slog"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/objstore"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// MiniCluster plays, in this process, the parts of a coordinator and a
// worker that a checkpointed job needs: it triggers checkpoints at the
// sources, collects acks into manifests, notifies completion, kills an
// attempt (its context is cancelled mid-stream, as a lost worker's would be)
// and starts the next from the last completed checkpoint. The job's keyed
// state goes through Pebble and an object store under Dir, as in a cluster.
// Tests of checkpointing and recovery use it; job binaries never do.
type MiniCluster struct {
	Dir string
	// Build compiles the job at the given default parallelism; every
	// attempt builds it afresh, as a restarted job process would.
	Build    func(parallelism int) (*Graph, error)
	Interval time.Duration
	// Started, when set, is called once an attempt's subtasks are
	// deployed (they may not run yet), with the attempt's deployment.
	Started func(attempt int64, d *Deployment)
	// Parallelism is the job's default parallelism in the next attempt (2
	// when 0): a restore at another one rescales the job.
	Parallelism int
	// Requests, when set, replaces the periodic checkpoints: the job (its
	// source, say) asks for each checkpoint or savepoint, and for the kill
	// after it. Interval is then how often pending requests are looked at.
	Requests chan CheckpointRequest
	// Logger logs the attempts' subtasks; nil discards.
	Logger *slog.Logger
	// AlignedTimeout, when set, lets checkpoints turn unaligned this long
	// after their trigger (see AssignTasks.aligned_timeout_ms).
	AlignedTimeout *time.Duration
	// OnAck, when set, sees every subtask's checkpoint ack.
	OnAck func(*weirv1.CheckpointAck)
	// CheckpointTimeout is how long a checkpoint may take before it is
	// given up (a second when 0); Abandoned counts those given up.
	CheckpointTimeout time.Duration
	Abandoned         int
	// Completed, when set, is called with each completed checkpoint's
	// manifest, before its completion is notified; returning true kills
	// the attempt after it (the next restores from it).
	Completed func(m *weirv1.CheckpointManifest) (kill bool)

	nextID  int64
	attempt int64
	last    *weirv1.CheckpointManifest // latest completed checkpoint
}

// CheckpointRequest asks a MiniCluster for a checkpoint (or a savepoint)
// and, with Kill, to kill the attempt once it completed; the next attempt
// restores from it at parallelism Rescale (when > 0).
type CheckpointRequest struct {
	Savepoint, Kill bool
	Rescale         int
}

var errKilled = errors.New("killed by the test after a completed checkpoint")

// RunAttempt runs one attempt at c.Parallelism, restoring from the last
// completed checkpoint if any. With kill > 0 the attempt is killed once kill checkpoints completed
// in it; with c.Requests, checkpoints are taken as the job asks and the
// attempt is killed after one asked with kill (or, when that one does not
// complete, a second after it started). It reports whether the job ran to
// its end (not killed).
func (c *MiniCluster) RunAttempt(ctx context.Context, kill int) (finished bool, err error) {
	c.attempt++
	par := c.Parallelism
	if par == 0 {
		par = 2
	}
	g, err := c.Build(par)
	if err != nil {
		return false, err
	}
	store, err := objstore.Open(ctx, filepath.Join(c.Dir, "store"))
	if err != nil {
		return false, err
	}
	defer store.Close()
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	type ackOrDecline struct {
		ack     *weirv1.CheckpointAck
		decline *weirv1.CheckpointDecline
	}
	acks := make(chan ackOrDecline, 64)
	ck := &checkpointer{store: store, bucket: store.Bucket(), jobID: "ckjob", attempt: c.attempt,
		stateRoot: filepath.Join(c.Dir, fmt.Sprintf("state-%d", c.attempt)), restore: c.last,
		interval: c.Interval, logger: logger, alignedTimeout: c.AlignedTimeout,
		ack:     func(a *weirv1.CheckpointAck) { acks <- ackOrDecline{ack: a} },
		decline: func(d *weirv1.CheckpointDecline) { acks <- ackOrDecline{decline: d} }}
	net := exchange.NewNetwork("ckjob", c.attempt, exchange.Options{}, logger)
	defer net.Close()
	net.SetLocalAddr("local")
	d := &Deployment{JobID: "ckjob", Attempt: c.attempt, Net: net, Self: "local", ck: ck, Logger: logger,
		Route: func(SubtaskRef) string { return "local" }}
	refs := g.AllSubtasks()
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	var mu sync.Mutex
	running := map[SubtaskRef]bool{}
	// Each subtask finishes once: the loop below hears of it here.
	finishedCh := make(chan SubtaskRef, len(refs))
	go func() {
		done <- g.Run(actx, d, refs, func(r SubtaskRef, st weirv1.TaskState, _ error) {
			mu.Lock()
			running[r] = st == weirv1.TaskState_TASK_STATE_RUNNING || st == weirv1.TaskState_TASK_STATE_FINISHED
			mu.Unlock()
			if st == weirv1.TaskState_TASK_STATE_FINISHED {
				finishedCh <- r
			}
		})
	}()
	// allRunning: every subtask runs or finished (FLIP-147: checkpoints go
	// on without the finished ones).
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
	ended := map[SubtaskRef]bool{}         // finished subtasks
	var pending *weirv1.CheckpointManifest // the checkpoint in flight
	var acked map[SubtaskRef]bool          // of the pending checkpoint
	// record adds a subtask's snapshot to the pending checkpoint and
	// completes it once every subtask has one.
	var complete func()
	record := func(r SubtaskRef, s *weirv1.SubtaskSnapshot) {
		if acked[r] {
			return
		}
		acked[r] = true
		pending.Subtasks = append(pending.Subtasks, s)
		if len(acked) == len(refs) {
			complete()
		}
	}
	if c.Started != nil {
		c.Started(c.attempt, d)
	}
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	var pendingAt time.Time
	var pendingReq CheckpointRequest // what was asked of it (request mode)
	var queued []CheckpointRequest
	killAfter := func(r CheckpointRequest) {
		if r.Rescale > 0 {
			c.Parallelism = r.Rescale
		}
		cancel(errKilled)
	}
	completed := 0
	ckTimeout := c.CheckpointTimeout
	if ckTimeout == 0 {
		ckTimeout = time.Second
	}
	complete = func() {
		c.last, pending = pending, nil
		hookKill := c.Completed != nil && c.Completed(c.last)
		d.post(control{complete: c.last.CheckpointId})
		completed++
		if hookKill || (kill > 0 && completed >= kill) {
			cancel(errKilled)
		}
		if pendingReq.Kill {
			killAfter(pendingReq)
		}
		pendingReq = CheckpointRequest{}
	}
	for {
		select {
		case err := <-done:
			ck.uploads.Wait()
			if context.Cause(actx) == errKilled {
				return false, nil
			}
			return err == nil, err
		case r := <-c.Requests: // never when nil
			queued = append(queued, r)
		case <-tick.C:
			// One checkpoint at a time; one that did not complete within
			// CheckpointTimeout is abandoned, as the coordinator's timeout
			// would.
			if !allRunning() || len(ended) == len(refs) || (pending != nil && time.Since(pendingAt) < ckTimeout) {
				continue
			}
			if pending != nil && pendingReq.Kill {
				killAfter(pendingReq) // restore from the last completed one
				continue
			}
			if pending != nil {
				c.Abandoned++
			}
			savepoint := false
			if c.Requests != nil {
				switch {
				case len(queued) > 0:
					pendingReq, queued = queued[0], queued[1:]
					savepoint = pendingReq.Savepoint
				case !d.awaitingFinal():
					pending = nil
					continue
				default:
					// A subtask waits for its final checkpoint: take one
					// though the job asked for none, as a coordinator's
					// periodic trigger would.
					pendingReq = CheckpointRequest{}
				}
			}
			pendingAt = time.Now()
			c.nextID++
			pending = &weirv1.CheckpointManifest{JobId: "ckjob", CheckpointId: c.nextID,
				MaxParallelism: int32(g.MaxParallelism), Savepoint: savepoint}
			acked = map[SubtaskRef]bool{}
			for r := range ended {
				acked[r] = true
				pending.Subtasks = append(pending.Subtasks, g.finishedSnapshot(r))
			}
			d.post(control{trigger: &weirv1.TriggerCheckpoint{JobId: "ckjob", Attempt: c.attempt,
				CheckpointId: c.nextID, TimestampUnixMs: time.Now().UnixMilli(), Savepoint: savepoint}})
		case a := <-acks:
			if a.ack != nil && c.OnAck != nil {
				c.OnAck(a.ack)
			}
			if a.decline != nil || pending == nil || a.ack.CheckpointId != pending.CheckpointId {
				continue
			}
			s := a.ack.Snapshot
			record(SubtaskRef{int(s.VertexId), int(s.Subtask)}, s)
		case r := <-finishedCh:
			// Its acks came first (it waits for its uploads): what it
			// did not ack, it never will.
			ended[r] = true
			if pending != nil {
				record(r, g.finishedSnapshot(r))
			}
		}
	}
}
