package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/coordinator/leader"
	"github.com/weir-run/weir/coordinator/scheduler"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// errNotLeader is returned to callers whose request reached a leader term
// that has ended.
var errNotLeader = status.Error(codes.Unavailable, "coordinator lost leadership; retry")

// tickInterval paces heartbeat checks and restart backoff.
const tickInterval = 100 * time.Millisecond

// leaderState is everything the leader knows. Only the loop goroutine (run)
// touches it; others submit closures through do.
type leaderState struct {
	c *Coordinator
	// clusterSecret derives attempts' data-channel secrets (channelSecret).
	clusterSecret []byte
	store         *leader.Store
	logger        *slog.Logger
	events        chan func()
	done          chan struct{}
	fence         context.CancelCauseFunc // ends the term when a fenced write is refused

	workers map[string]*workerConn
	jobs    map[string]*jobDriver
	// describes are the DescribeBinary calls waiting for a worker, by
	// request id.
	describes map[string]*pendingDescribe

	// ctx is the term's (set by run): effects run under it and their
	// results are dropped once it ends.
	ctx context.Context
	// effectsOut counts the effects whose results are not applied yet.
	effectsOut int

	live      map[string]bool // workers with a liveness key at load
	liveRev   int64           // the revision live was read at
	reconcile *reconcile      // the takeover in progress; nil once decided
	sampledAt time.Time       // last throughput sample of the jobs
	expiredAt time.Time       // last sweep for jobs past --job-retention
	// reserved are submits admitted under a quota whose job does not
	// exist yet (quota.go).
	reserved map[string]usage
}

func newLeaderState(c *Coordinator, store *leader.Store) *leaderState {
	return &leaderState{
		c: c, store: store, logger: c.logger, ctx: context.Background(),
		events:  make(chan func(), 256),
		done:    make(chan struct{}),
		workers: make(map[string]*workerConn),
		jobs:    make(map[string]*jobDriver),

		describes: make(map[string]*pendingDescribe),
		reserved:  make(map[string]usage),
	}
}

// do runs fn on the loop goroutine.
func (s *leaderState) do(ctx context.Context, fn func()) error {
	select {
	case s.events <- fn:
		return nil
	case <-s.done:
		return errNotLeader
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call runs fn on the loop goroutine and returns its result.
func call[T any](ctx context.Context, s *leaderState, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	var zero T
	if err := s.do(ctx, func() { v, err := fn(); ch <- result{v, err} }); err != nil {
		return zero, err
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-s.done:
		return zero, errNotLeader
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (s *leaderState) run(ctx context.Context) {
	ctx, s.fence = context.WithCancelCause(ctx)
	s.ctx = ctx
	defer close(s.done)
	go s.watchLiveness(ctx)
	s.beginReconcile(ctx, time.Now())
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, w := range s.workers {
				w.close(errors.New("coordinator is no longer the leader"))
			}
			return
		case fn := <-s.events:
			fn()
		case now := <-tick.C:
			s.tick(ctx, now)
		}
	}
}

func (s *leaderState) tick(ctx context.Context, now time.Time) {
	s.maybeReconciled(ctx, now)
	for _, w := range s.workers {
		if now.Sub(w.lastBeat) > s.c.cfg.WorkerTimeout {
			s.workerGone(ctx, w, fmt.Errorf("no heartbeat for %v", now.Sub(w.lastBeat).Round(time.Second)))
		}
	}
	for _, j := range s.jobs {
		if wake, ok := j.m.NextWake(); ok && !now.Before(wake) {
			s.step(ctx, j, jobmaster.Tick{})
		}
		if wake, ok := j.checkpoints.NextWake(); ok && !now.Before(wake) {
			s.checkpointInput(ctx, j, j.checkpoints.Tick)
		}
	}
	s.expireJobs(now)
	if now.Sub(s.sampledAt) >= time.Second {
		s.sampledAt = now
		for _, j := range s.jobs {
			if j.m.State() == weirv1.JobState_JOB_STATE_RUNNING {
				j.metrics.sample(j.sources())
			}
		}
	}
}

// load reads the jobs a previous leader recorded and the live workers.
func (s *leaderState) load(ctx context.Context) error {
	var err error
	if s.clusterSecret, err = loadClusterSecret(ctx, s.c.etcd); err != nil {
		return err
	}
	if s.live, s.liveRev, err = s.liveWorkers(ctx); err != nil {
		return err
	}
	recs, err := s.store.List(ctx, etcdkeys.Jobs)
	if err != nil {
		return err
	}
	for key, b := range recs {
		var rec weirv1.JobStatus
		if err := proto.Unmarshal(b, &rec); err != nil {
			s.logger.Error("skipping unreadable job record", "key", key, "err", err)
			continue
		}
		j := newJob(&rec, jobmaster.Restore(jobmaster.Snapshot{
			State: rec.State, Attempt: rec.Attempt, Restarts: int(rec.Restarts),
			Error: rec.Error, Message: rec.Message,
		}, rec.Spec.GetRestart(), jobmaster.WithRand(rand.Float64)))
		if err := s.loadKeys(ctx, j); err != nil {
			// Running it would write its state unsealed, or fail to
			// restore it: it stays down on this leader, and its record
			// in etcd as it was, for a leader with the right KEK.
			s.logger.Error("job cannot run: its data key or a secret does not unwrap", "job", rec.Id, "err", err)
			j = newJob(&rec, jobmaster.Restore(jobmaster.Snapshot{
				State: weirv1.JobState_JOB_STATE_FAILED, Attempt: rec.Attempt, Restarts: int(rec.Restarts),
				Error: oneLine(err),
			}, rec.Spec.GetRestart(), jobmaster.WithRand(rand.Float64)))
		}
		if err := s.loadCheckpoints(ctx, j); err != nil {
			return fmt.Errorf("checkpoints of job %s: %w", rec.Id, err)
		}
		s.jobs[rec.Id] = j
	}
	return nil
}

// workerConn is a registered worker's stream.
type workerConn struct {
	id     string
	host   string
	slots  int
	rss    int64
	memory *weirv1.MemoryStats // the worker process's, from its last heartbeat
	// noLimits says why the worker cannot enforce memory limits; empty
	// when it can.
	noLimits string
	// goos and goarch are the worker's platform; empty when it did not
	// report it.
	goos, goarch string
	lastBeat     time.Time
	out          chan *weirv1.CoordinatorMessage
	close        context.CancelCauseFunc
	// reported is what the worker runs as of its registration, kept until
	// the takeover is decided.
	reported map[procKey]*weirv1.RunningProcess
}

// send queues a message for the worker without blocking the loop; a worker
// too slow to drain its queue is disconnected and its tasks fail over.
func (w *workerConn) send(m *weirv1.CoordinatorMessage) {
	select {
	case w.out <- m:
	default:
		w.close(errors.New("worker is not reading its messages"))
	}
}

// command sends c to the job process key names on this worker, which
// forwards it as is (see control.proto).
func (w *workerConn) command(key procKey, c *weirv1.ProcessCommand) {
	c.Key = key.proto()
	w.send(&weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Process{Process: c}})
}

func cancelCommand() *weirv1.ProcessCommand {
	return &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_Cancel{Cancel: &weirv1.CancelProcess{}}}
}

// freeSlots lists workers with their unreserved slots, in ID order.
func (s *leaderState) freeSlots() []scheduler.Worker {
	used := make(map[string]int)
	for _, j := range s.jobs {
		for _, w := range j.placement {
			used[w]++
		}
	}
	ws := make([]scheduler.Worker, 0, len(s.workers))
	for id, w := range s.workers {
		ws = append(ws, scheduler.Worker{ID: id, Free: max(w.slots-used[id], 0)})
	}
	sort.Slice(ws, func(i, k int) bool { return ws[i].ID < ws[k].ID })
	return ws
}

func (s *leaderState) addWorker(ctx context.Context, w *workerConn) {
	if old := s.workers[w.id]; old != nil {
		// The same worker reconnected: its old stream is dead or dying.
		s.workerGone(ctx, old, errors.New("worker reconnected"))
	}
	s.workers[w.id] = w
	s.logger.Info("worker registered", "worker", w.id, "host", w.host, "slots", w.slots, "processes", len(w.reported))
	w.send(&weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Registered{Registered: &weirv1.Registered{
		Coordinator: s.c.cfg.ID, HeartbeatIntervalMs: s.c.cfg.HeartbeatInterval.Milliseconds(),
		WorkerTimeoutMs: s.c.cfg.WorkerTimeout.Milliseconds(),
	}}})
	if s.reconcile != nil {
		delete(s.reconcile.waiting, w.id)
		s.maybeReconciled(ctx, time.Now())
		return
	}
	// Outside a takeover nothing this worker still runs is wanted: had it
	// stayed connected, its attempts would not have been failed over.
	s.cancelStrays(w, nil)
}

// watchLiveness declares a worker dead as soon as its liveness lease
// expires, which a half-open stream would hide until the worker timeout.
func (s *leaderState) watchLiveness(ctx context.Context) {
	rev := s.liveRev
	for ctx.Err() == nil {
		// RequireLeader: a watch on a member cut off from its quorum fails
		// rather than falling silent; it is then resumed where it stopped.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range s.c.etcd.Watch(wctx, etcdkeys.Workers, clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithRev(rev+1)) {
			if wr.CompactRevision != 0 {
				rev = wr.CompactRevision - 1 // missed deletes: their workers' streams or heartbeats tell
			}
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				rev = max(rev, ev.Kv.ModRevision)
				id := strings.TrimPrefix(string(ev.Kv.Key), etcdkeys.Workers)
				s.do(ctx, func() { s.livenessExpired(ctx, id) })
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// livenessExpired: worker id's liveness key is gone, so the worker is dead
// or cut off from etcd. A takeover stops waiting for it.
func (s *leaderState) livenessExpired(ctx context.Context, id string) {
	if w := s.workers[id]; w != nil {
		s.workerGone(ctx, w, errors.New("its liveness lease in etcd expired"))
	}
	if r := s.reconcile; r != nil && r.waiting[id] {
		delete(r.waiting, id)
		s.logger.Info("stopped waiting for a worker whose liveness lease expired", "worker", id)
		s.maybeReconciled(ctx, time.Now())
	}
}

// workerGone forgets a worker and fails over whatever ran on it.
func (s *leaderState) workerGone(ctx context.Context, w *workerConn, cause error) {
	if s.workers[w.id] != w {
		return
	}
	delete(s.workers, w.id)
	w.close(cause)
	s.failDescribes(w, cause)
	s.logger.Warn("worker lost", "worker", w.id, "err", cause)
	for _, j := range s.sortedJobs() {
		for _, id := range j.attemptProcs() {
			if p := j.procs[id]; p != nil && id.worker == w.id && !p.exited {
				s.processExited(ctx, j, id, fmt.Sprintf("worker %s was lost: %v", w.id, cause), true)
			}
		}
	}
}

func (s *leaderState) sortedJobs() []*jobDriver {
	js := make([]*jobDriver, 0, len(s.jobs))
	for _, j := range s.jobs {
		js = append(js, j)
	}
	sort.Slice(js, func(i, k int) bool { return js[i].rec.CreatedUnixMs < js[k].rec.CreatedUnixMs })
	return js
}

// onWorkerMessage handles everything a worker reports.
func (s *leaderState) onWorkerMessage(ctx context.Context, w *workerConn, m *weirv1.WorkerMessage) {
	if s.workers[w.id] != w {
		return
	}
	w.lastBeat = time.Now()
	if s.reconcileReport(w, m) {
		return
	}
	switch m := m.Msg.(type) {
	case *weirv1.WorkerMessage_Heartbeat:
		w.rss, w.memory = m.Heartbeat.RssBytes, m.Heartbeat.Memory
	case *weirv1.WorkerMessage_ProcessReady:
		key := keyOf(m.ProcessReady.Key)
		if j := s.current(key); j != nil {
			s.processReady(ctx, j, w.id, key.region, m.ProcessReady)
		}
	case *weirv1.WorkerMessage_ProcessExited:
		key := keyOf(m.ProcessExited.Key)
		if j := s.current(key); j != nil {
			e := m.ProcessExited
			reason := fmt.Sprintf("job process on worker %s exited with code %d", w.id, e.ExitCode)
			if e.Error != "" {
				reason += ": " + e.Error
			}
			s.processExited(ctx, j, attemptProc{w.id, key.region}, reason, false)
		}
	case *weirv1.WorkerMessage_Process:
		s.onProcessMessage(ctx, w, keyOf(m.Process.Key), m.Process)
	case *weirv1.WorkerMessage_Described:
		s.described(w, m.Described)
	}
}

// onProcessMessage handles a job process's report. key is the process's, as
// its worker stamped it: the only place the coordinator learns which job and
// attempt a report is about.
func (s *leaderState) onProcessMessage(ctx context.Context, w *workerConn, key procKey, m *weirv1.ProcessMessage) {
	switch m := m.Msg.(type) {
	case *weirv1.ProcessMessage_Metrics:
		if j := s.hostedProcess(w, key); j != nil {
			j.metrics.onReport(w.id, m.Metrics, time.Now())
		}
	case *weirv1.ProcessMessage_TapRecords:
		if j := s.hostedProcess(w, key); j != nil {
			if t := j.taps[m.TapRecords.TapId]; t != nil {
				t.deliver(m.TapRecords)
			}
		}
	case *weirv1.ProcessMessage_TaskState:
		if j := s.hostedTask(w, key, m.TaskState.VertexId, m.TaskState.Subtask); j != nil {
			s.taskState(ctx, j, w.id, m.TaskState)
		}
	case *weirv1.ProcessMessage_CheckpointAck:
		a := m.CheckpointAck
		if a.Snapshot == nil {
			return
		}
		j := s.hostedTask(w, key, a.Snapshot.VertexId, a.Snapshot.Subtask)
		if j != nil {
			for _, o := range snapshot.Objects([]*weirv1.SubtaskSnapshot{a.Snapshot}) {
				if !storelayout.Owns(key.job, o) {
					s.refuseReport(w, key, "object outside the job", o)
					return
				}
			}
		}
		if j != nil {
			task := checkpoint.TaskID{Vertex: a.Snapshot.VertexId, Subtask: a.Snapshot.Subtask}
			s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action {
				res, acts := j.checkpoints.Ack(a.CheckpointId, task, a, now)
				if res == checkpoint.AckSuccess {
					s.checkpointAcked(j, a, now)
				} else {
					s.logger.Debug("checkpoint ack", "job", key.job, "checkpoint", a.CheckpointId, "task", task, "result", res)
				}
				return acts
			})
		}
	case *weirv1.ProcessMessage_CheckpointDecline:
		d := m.CheckpointDecline
		if j := s.hostedTask(w, key, d.VertexId, d.Subtask); j != nil {
			task := checkpoint.TaskID{Vertex: d.VertexId, Subtask: d.Subtask}
			s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action {
				return j.checkpoints.Decline(d.CheckpointId, task, d.Reason, now)
			})
		}
	}
}

// current returns the job of the process key names if its attempt is the
// one its region runs; reports about older attempts are stale.
func (s *leaderState) current(key procKey) *jobDriver {
	j := s.jobs[key.job]
	if j == nil || !j.live(key.attempt, key.region) {
		return nil
	}
	return j
}

// hostedProcess is current for a report from w's process key, which w
// must host: a worker speaks only for the processes it runs. A report from
// any other worker is dropped and counted.
func (s *leaderState) hostedProcess(w *workerConn, key procKey) *jobDriver {
	j := s.current(key)
	if j == nil {
		return nil
	}
	if j.procs[attemptProc{worker: w.id, region: key.region}] == nil {
		s.refuseReport(w, key, "process not hosted by this worker", "")
		return nil
	}
	return j
}

// hostedTask is hostedProcess for a report naming subtask of vertex, which
// must belong to the process's region and be placed on w.
func (s *leaderState) hostedTask(w *workerConn, key procKey, vertex, subtask int32) *jobDriver {
	j := s.hostedProcess(w, key)
	if j == nil {
		return nil
	}
	if t := j.tasks[jobgraph.Subtask{VertexID: vertex, Index: subtask}]; t == nil || t.worker != w.id || j.regionOf[vertex] != key.region {
		s.refuseReport(w, key, "subtask not hosted by this worker", fmt.Sprintf("%d/%d", vertex, subtask))
		return nil
	}
	return j
}

// refuseReport drops a report a worker had no right to make.
func (s *leaderState) refuseReport(w *workerConn, key procKey, reason, what string) {
	s.inst().reportsRefused.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
	s.logger.Debug("report refused", "worker", w.id, "job", key.job, "attempt", key.attempt, "region", key.region, "reason", reason, "what", what)
}

// validateSpec checks a submitted job before it is accepted.
func validateSpec(spec *weirv1.JobSpec) error {
	if spec.GetGraph() == nil {
		return errors.New("the job has no graph")
	}
	if spec.Parallelism < 1 {
		return fmt.Errorf("parallelism %d is below 1", spec.Parallelism)
	}
	if err := jobgraph.Validate(spec.Graph); err != nil {
		return err
	}
	ck := checkpointConfig(spec.Checkpoints).WithDefaults()
	return jobgraph.CheckTransactionTimeouts(spec.Graph, jobgraph.TransactionBounds{
		CheckpointInterval: ck.Interval, CheckpointTimeout: ck.Timeout,
		MaxRestartDelay: jobmaster.MaxRestartDelay(spec.Restart),
	})
}

// loadKeys reads a recorded job's data key and, unless it ended, its
// secrets and the key of the savepoint it started from.
func (s *leaderState) loadKeys(ctx context.Context, j *jobDriver) error {
	var err error
	if j.key, err = s.c.loadJobKey(ctx, j.rec.Id); err != nil {
		return err
	}
	if jobmaster.Terminal(j.rec.State) {
		return nil
	}
	if j.secrets, err = s.c.loadSecrets(ctx, j.rec.Spec.GetSecrets()); err != nil {
		return err
	}
	if sp := j.rec.Spec.GetFromSavepoint(); sp != "" {
		if _, object, err := storelayout.Split(sp); err == nil {
			if j.savepointKey, err = s.c.objectKey(ctx, object); err != nil {
				return err
			}
		}
	}
	return nil
}
