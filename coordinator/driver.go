package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gocloud.dev/blob"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/coordinator/leader"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/sealing"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// The leader loop drives each job's two machines, its lifecycle
// (jobmaster.Machine) and its checkpoints (checkpoint.Machine), the way
// etcd-io/raft's Ready/Advance driver drives raft: the loop only feeds the
// machines inputs and applies their actions. An action that needs I/O
// (allocate a checkpoint id, write a manifest and record it, persist the job
// record, delete a checkpoint record) becomes an effect, which one of the
// job's lanes runs off the loop; its result comes back to the loop as an
// event (idAllocated, checkpointStored, persisted; each carries a failure
// too) and is fed to the machine like any other input. A deleted
// checkpoint record reports nothing. A slow object store or etcd
// therefore stalls only the job that waits on it: heartbeats, API calls
// and other jobs go on.
//
// Ordering:
//   - A job's inputs are applied one at a time from its inbox. An input
//     produced while another is applied (a Deploy that finds no slots, a
//     checkpoint failure that fails the job) is queued behind it: no machine
//     is re-entered from its own apply.
//   - Each lane runs its effects one at a time, in order: the job's record
//     writes land in the order they were made, and its checkpoint I/O (ids,
//     manifests, records, deletions) too.
//   - A checkpoint is reported Stored only once its manifest is written and
//     its etcd record is put; the next effect of the lane starts after that.
//   - The record comes before the effects it describes (jobmaster's
//     contract): messages for a job's processes made while one of its record
//     writes is out are held until that write is done (sendJob).
//   - Fencing: every etcd write goes through the leader's fenced store. A
//     write refused as fenced ends the term (s.fence); its result is never
//     applied, so nothing that waited on it (held messages, a checkpoint's
//     completion) happens.

// input is one thing for a job's machines, queued on its inbox.
type input struct {
	ev jobmaster.Event                         // for the lifecycle machine, or
	ck func(now time.Time) []checkpoint.Action // a call of the checkpoint machine
}

// lane runs a job's effects of one kind one at a time, in order. It is
// touched only on the loop: an effect's result, applied on the loop, starts
// the next.
type lane struct {
	queue []effect
	busy  bool
}

// effect is I/O a job's machines asked for. run is called off the loop and
// must not touch the leader's state; it returns the event to apply on the
// loop, or nil when there is none (nothing to report, or the write was
// fenced: the term ends).
type effect interface {
	run(ctx context.Context, s *leaderState) event
}

// event is an effect's result, applied on the loop to the job it was for.
type event interface {
	apply(ctx context.Context, s *leaderState, j *jobDriver)
}

// heldMessage is a message for a job's process waiting for the job's
// record write number after to be done.
type heldMessage struct {
	after uint64
	w     *workerConn
	m     *weirv1.CoordinatorMessage
}

// persistWaiter is closed once the job's record write number seq is done.
type persistWaiter struct {
	seq uint64
	ch  chan struct{}
}

// step feeds ev to the job's lifecycle machine, after whatever is queued.
func (s *leaderState) step(ctx context.Context, j *jobDriver, ev jobmaster.Event) {
	j.inbox = append(j.inbox, input{ev: ev})
	s.drain(ctx, j)
}

// checkpointInput feeds the job's checkpoint machine: f calls it.
func (s *leaderState) checkpointInput(ctx context.Context, j *jobDriver, f func(now time.Time) []checkpoint.Action) {
	j.inbox = append(j.inbox, input{ck: f})
	s.drain(ctx, j)
}

// drain applies the job's queued inputs in order, unless it is already
// doing so further up the stack: then the input waits its turn.
func (s *leaderState) drain(ctx context.Context, j *jobDriver) {
	if j.draining {
		return
	}
	j.draining = true
	defer func() { j.draining = false }()
	for len(j.inbox) > 0 {
		in := j.inbox[0]
		j.inbox[0] = input{}
		j.inbox = j.inbox[1:]
		if in.ev != nil {
			s.applyJobEvent(ctx, j, in.ev)
		} else {
			s.applyCheckpointActions(ctx, j, in.ck(time.Now()))
		}
	}
}

// submit queues e on the job's lane l.
func (s *leaderState) submit(j *jobDriver, l *lane, e effect) {
	s.effectsOut++
	l.queue = append(l.queue, e)
	if !l.busy {
		s.startNext(j, l)
	}
}

// startNext runs the lane's next effect off the loop.
func (s *leaderState) startNext(j *jobDriver, l *lane) {
	if len(l.queue) == 0 {
		l.busy = false
		return
	}
	e := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	l.busy = true
	ctx := s.ctx
	go func() {
		ev := e.run(ctx, s)
		// Dropped when the term is over: its effects no longer matter.
		s.do(ctx, func() {
			s.effectsOut--
			if ev != nil && s.jobs[j.rec.Id] == j {
				ev.apply(ctx, s, j)
			}
			s.startNext(j, l)
		})
	}()
}

// fenced ends the term if err says a write was refused as fenced.
func (s *leaderState) fenced(err error) bool {
	if errors.Is(err, leader.ErrFenced) {
		s.fence(err)
		return true
	}
	return false
}

// sendJob sends m to w for job j, unless a record write of j is out: then
// m waits for it (the record comes before the effects it describes).
func (s *leaderState) sendJob(j *jobDriver, w *workerConn, m *weirv1.CoordinatorMessage) {
	if j.persistedSeq < j.persistSeq {
		j.held = append(j.held, heldMessage{after: j.persistSeq, w: w, m: m})
		return
	}
	w.send(m)
}

// commandJob sends c to j's process key on w (see sendJob).
func (s *leaderState) commandJob(j *jobDriver, w *workerConn, key procKey, c *weirv1.ProcessCommand) {
	c.Key = key.proto()
	s.sendJob(j, w, &weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Process{Process: c}})
}

// persist records the job in etcd under this leader's fence, after the
// job's earlier record writes.
func (s *leaderState) persist(j *jobDriver) {
	e, err := s.persistEffect(j)
	if err != nil {
		s.logger.Error("cannot encode job record", "job", j.rec.Id, "err", err)
		return
	}
	j.persistSeq++
	e.seq = j.persistSeq
	s.submit(j, &j.recordIO, e)
}

// wait waits for ch, the term's end or ctx.
func (s *leaderState) wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-s.done:
		return errNotLeader
	case <-ctx.Done():
		return ctx.Err()
	}
}

// persisted is closed once the job's record writes made so far are done.
func (j *jobDriver) persisted() <-chan struct{} {
	ch := make(chan struct{})
	if j.persistedSeq >= j.persistSeq {
		close(ch)
		return ch
	}
	j.persistWaiters = append(j.persistWaiters, persistWaiter{seq: j.persistSeq, ch: ch})
	return ch
}

func (s *leaderState) persistEffect(j *jobDriver) (persistJob, error) {
	rec := proto.Clone(j.rec).(*weirv1.JobStatus)
	rec.Tasks = nil
	b, err := proto.Marshal(rec)
	return persistJob{job: j.rec.Id, rec: b}, err
}

// persistJob writes a job record.
type persistJob struct {
	job string
	rec []byte
	seq uint64
}

func (p persistJob) run(ctx context.Context, s *leaderState) event {
	err := s.store.Put(ctx, etcdkeys.Jobs+p.job, p.rec)
	if s.fenced(err) {
		return nil
	}
	return persisted{seq: p.seq, err: err}
}

// persisted: the job's record write seq is done (err: it failed, which is
// logged; the record is written again on its next change).
type persisted struct {
	seq uint64
	err error
}

func (r persisted) apply(ctx context.Context, s *leaderState, j *jobDriver) {
	if r.err != nil {
		s.logger.Error("cannot record job", "job", j.rec.Id, "err", r.err)
	}
	j.persistedSeq = r.seq
	for len(j.held) > 0 && j.held[0].after <= r.seq {
		h := j.held[0]
		j.held[0] = heldMessage{}
		j.held = j.held[1:]
		if s.workers[h.w.id] == h.w {
			h.w.send(h.m)
		}
	}
	keep := j.persistWaiters[:0]
	for _, w := range j.persistWaiters {
		if w.seq <= r.seq {
			close(w.ch)
		} else {
			keep = append(keep, w)
		}
	}
	j.persistWaiters = keep
}

// allocateID takes the job's next checkpoint id from etcd.
type allocateID struct {
	job       string
	savepoint bool
}

func (a allocateID) run(ctx context.Context, s *leaderState) event {
	id, err := s.store.NextID(ctx, checkpointIDKey(a.job))
	if s.fenced(err) {
		return nil
	}
	return idAllocated{savepoint: a.savepoint, id: id, err: err}
}

// idAllocated answers AllocateID.
type idAllocated struct {
	savepoint bool
	id        int64
	err       error
}

func (r idAllocated) apply(ctx context.Context, s *leaderState, j *jobDriver) {
	s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action {
		if r.err != nil {
			return j.checkpoints.IDFailed(r.savepoint, r.err.Error(), now)
		}
		return j.checkpoints.IDAllocated(r.id, r.savepoint, now)
	})
}

// manifestTimeout bounds a manifest write.
const manifestTimeout = 30 * time.Second

// storeCheckpoint writes a completed checkpoint's manifest create-if-absent,
// then records the checkpoint in etcd under this leader's fence: a
// checkpoint is complete only once both exist, and a deposed leader cannot
// record one.
type storeCheckpoint struct {
	job      string
	c        checkpoint.Complete
	key      string // the manifest's
	manifest *weirv1.CheckpointManifest
	info     *weirv1.CheckpointInfo // the record, but for its duration
	bucket   *blob.Bucket
	seal     *sealing.JobKey // the job's: the manifest is sealed like its files
}

// storeEffect is the effect storing checkpoint c of j.
func (s *leaderState) storeEffect(j *jobDriver, c checkpoint.Complete) storeCheckpoint {
	m := &weirv1.CheckpointManifest{JobId: j.rec.Id, CheckpointId: c.ID, TimestampUnixMs: time.Now().UnixMilli(),
		MaxParallelism: j.rec.Spec.GetGraph().GetMaxParallelism(), Savepoint: c.Savepoint}
	for _, a := range c.Acks {
		m.Subtasks = append(m.Subtasks, a.Snapshot)
	}
	key := storelayout.Manifest(j.rec.Id, c.ID, c.Savepoint)
	return storeCheckpoint{job: j.rec.Id, c: c, key: key, manifest: m, info: completedCheckpointInfo(j, c.ID, key), bucket: s.c.store.Bucket(), seal: j.key}
}

func (e storeCheckpoint) run(ctx context.Context, s *leaderState) event {
	err := e.write(ctx, s)
	if s.fenced(err) {
		return nil
	}
	return checkpointStored{c: e.c, location: e.key, manifest: e.manifest, err: err}
}

func (e storeCheckpoint) write(ctx context.Context, s *leaderState) error {
	b, err := proto.Marshal(e.manifest)
	if err != nil {
		return err
	}
	if b, err = e.seal.SealBytes(b, e.key); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, manifestTimeout)
	defer cancel()
	w, err := e.bucket.NewWriter(wctx, e.key, &blob.WriterOptions{IfNotExist: true, ContentType: "application/x-protobuf"})
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		cancel()
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write manifest %s: %w", e.key, err)
	}
	info := proto.Clone(e.info).(*weirv1.CheckpointInfo)
	if info.TriggerUnixMs > 0 {
		info.DurationMs = time.Now().UnixMilli() - info.TriggerUnixMs
	}
	rec, _ := proto.Marshal(info)
	return s.store.Put(ctx, checkpointKey(e.job, e.c.ID), rec)
}

// checkpointStored: checkpoint c's manifest is written and recorded in
// etcd (err: it is not).
type checkpointStored struct {
	c        checkpoint.Complete
	location string
	manifest *weirv1.CheckpointManifest
	err      error
}

func (r checkpointStored) apply(ctx context.Context, s *leaderState, j *jobDriver) {
	a := r.c
	if r.err != nil {
		s.logger.Error("cannot record checkpoint", "job", j.rec.Id, "checkpoint", a.ID, "err", r.err)
		s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action {
			return j.checkpoints.StoreFailed(a.ID, r.err.Error(), now)
		})
		return
	}
	j.manifests[a.ID] = r.manifest
	if !a.Savepoint {
		j.checkpointsFailedInRow, j.checkpointsFailedSince = 0, 0
	}
	s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action {
		return j.checkpoints.Stored(a.ID, r.location, now)
	})
	s.checkpointFinished(j, a.ID, "")
	s.maybeSweep(j)
	if a.Savepoint && j.savepointWaiter != nil {
		j.savepointWaiter <- savepointResult{location: storelayout.URL(s.c.cfg.Store, r.location), id: a.ID}
		j.savepointWaiter = nil
	}
}

// deleteCheckpoint removes a discarded checkpoint's record from etcd, then
// (in the background) its files.
type deleteCheckpoint struct {
	job    string
	id     int64
	doomed []string
	bucket *blob.Bucket
}

func (d deleteCheckpoint) run(ctx context.Context, s *leaderState) event {
	if err := s.store.Delete(ctx, checkpointKey(d.job, d.id)); s.fenced(err) {
		return nil
	}
	go func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := snapshot.Delete(dctx, d.bucket, d.doomed); err != nil {
			s.logger.Warn("cannot delete discarded checkpoint files", "job", d.job, "checkpoint", d.id, "err", err)
		}
	}()
	return nil
}
