package coordinator

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/coordinator/scheduler"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// job is the leader's view of one job: its record, its lifecycle machine and
// the processes of its current attempt.
type job struct {
	rec      *weirv1.JobStatus // persisted part; Tasks unused
	m        *jobmaster.Machine
	subtasks []jobgraph.Subtask
	vertices map[int32]string // vertex id -> display name

	attempt   int64
	placement []string // worker per slot while the attempt holds slots

	ckpt            *checkpoint.Coordinator
	ckStarted       bool
	manifests       map[int64]*weirv1.CheckpointManifest // retained, for reference counts
	badCheckpoints  map[int64]bool                       // failed to restore (-1: the submitted savepoint)
	restoringFrom   int64                                // checkpoint the current attempt restores (0: none)
	savepointWaiter chan savepointResult
	procs           map[string]*process
	tasks           map[jobgraph.Subtask]*taskRun
	stopping        map[string]bool // workers whose process of the stopped attempt is still up

	metrics    jobMetrics
	ckTraces   map[int64]*ckTrace // spans of pending checkpoints
	deploySpan trace.Span         // the current attempt's deployment, until all tasks run
	taps       map[string]*tap    // live taps by id
}

// process is the job process of the current attempt on one worker.
type process struct {
	subtasks []*weirv1.SubtaskRef
	ready    bool
	addr     string
	pid      int32
	exited   bool
}

type taskRun struct {
	worker string
	state  weirv1.TaskState
}

func newJob(rec *weirv1.JobStatus, m *jobmaster.Machine) *job {
	j := &job{rec: rec, m: m, attempt: rec.Attempt, vertices: make(map[int32]string),
		ckpt: checkpoint.New(checkpointConfig(rec.Spec.GetCheckpoints())), manifests: map[int64]*weirv1.CheckpointManifest{},
		badCheckpoints: map[int64]bool{}, metrics: newJobMetrics(), ckTraces: map[int64]*ckTrace{}, taps: map[string]*tap{}}
	if g := rec.Spec.GetGraph(); g != nil {
		j.subtasks = jobgraph.Expand(g)
		for _, v := range g.Vertices {
			j.vertices[v.Id] = v.Name
		}
	}
	return j
}

// step feeds the job's machine and carries out what it asks, in order.
func (s *leaderState) step(ctx context.Context, j *job, ev jobmaster.Event) {
	before := j.m.State()
	acts := j.m.Step(ev, time.Now())
	if after := j.m.State(); after != before {
		s.logger.Info("job state", "job", j.rec.Id, "from", before.String(), "to", after.String(), "attempt", j.m.Attempt())
		if jobmaster.Terminal(after) {
			// Processes of a finished job exit by themselves; failed and
			// cancelled ones were stopped. Either way the slots are free.
			j.placement = nil
			s.ckStop(ctx, j, "job "+after.String())
		}
	}
	for _, a := range acts {
		switch a := a.(type) {
		case jobmaster.Deploy:
			s.deploy(ctx, j, a.Attempt)
		case jobmaster.StopAttempt:
			s.stopAttempt(ctx, j)
		case jobmaster.Persist:
			s.syncRecord(j)
			s.persist(ctx, j)
		}
	}
}

// syncRecord copies the machine's view into the job record.
func (s *leaderState) syncRecord(j *job) {
	snap := j.m.Snapshot()
	j.rec.State, j.rec.Attempt, j.rec.Restarts = snap.State, snap.Attempt, int32(snap.Restarts)
	j.rec.Error, j.rec.Message = snap.Error, snap.Message
	j.rec.UpdatedUnixMs = time.Now().UnixMilli()
}

// deploy places the attempt's slots and asks workers to start processes.
func (s *leaderState) deploy(ctx context.Context, j *job, attempt int64) {
	need := jobgraph.SlotsNeeded(j.rec.Spec.Graph)
	placement, err := scheduler.Place(need, s.freeSlots())
	if err != nil {
		s.step(ctx, j, jobmaster.NoSlots{Reason: err.Error()})
		return
	}
	j.attempt, j.placement = attempt, placement
	j.metrics.newAttempt()
	s.deploySpan(j, attempt)
	j.procs = make(map[string]*process)
	j.tasks = make(map[jobgraph.Subtask]*taskRun)
	j.stopping = nil
	for _, st := range j.subtasks {
		w := placement[jobgraph.SlotOf(st)]
		p := j.procs[w]
		if p == nil {
			p = &process{}
			j.procs[w] = p
		}
		p.subtasks = append(p.subtasks, &weirv1.SubtaskRef{VertexId: st.VertexID, Subtask: st.Index})
		j.tasks[st] = &taskRun{worker: w, state: weirv1.TaskState_TASK_STATE_DEPLOYING}
	}
	// A successor needs to know whom to wait for before it re-attaches.
	j.rec.AttemptWorkers = sortedKeys(j.procs)
	s.persist(ctx, j)
	spec := j.rec.Spec
	restore := j.restoreFor()
	j.restoringFrom = 0
	if restore != nil {
		j.restoringFrom = restore.CheckpointId
		s.logger.Info("restoring job state", "job", j.rec.Id, "attempt", attempt, "checkpoint", restore.CheckpointId, "manifest", restore.Manifest)
	}
	for _, w := range sortedKeys(j.procs) {
		s.workers[w].send(&weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Deploy{Deploy: &weirv1.DeployProcess{
			JobId: j.rec.Id, Attempt: attempt, BinarySha256: spec.BinarySha256, BinarySize: spec.BinarySize,
			Args: spec.Args, Parallelism: spec.Parallelism, Subtasks: j.procs[w].subtasks,
			Store: s.c.cfg.Store, Restore: restore, CheckpointIntervalMs: spec.GetCheckpoints().GetIntervalMs(),
		}}})
	}
	j.deploySpan.SetAttributes(attribute.Int("workers", len(j.procs)))
	s.logger.Info("deploying", "job", j.rec.Id, "attempt", attempt, "workers", strings.Join(sortedKeys(j.procs), ","))
	s.step(ctx, j, jobmaster.Scheduled{})
}

// stopAttempt cancels every process of the current attempt; AttemptStopped
// follows once all are gone.
func (s *leaderState) stopAttempt(ctx context.Context, j *job) {
	s.ckStop(ctx, j, "the attempt is stopping")
	j.stopping = make(map[string]bool)
	for w, p := range j.procs {
		if p.exited {
			continue
		}
		if wc := s.workers[w]; wc != nil {
			wc.send(&weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Cancel{Cancel: &weirv1.CancelProcess{
				JobId: j.rec.Id, Attempt: j.attempt,
			}}})
			j.stopping[w] = true
		}
	}
	s.maybeStopped(ctx, j)
}

func (s *leaderState) maybeStopped(ctx context.Context, j *job) {
	if j.stopping != nil && len(j.stopping) == 0 {
		j.stopping, j.placement, j.procs = nil, nil, nil
		s.step(ctx, j, jobmaster.AttemptStopped{})
	}
}

// processReady starts the attempt's tasks once every process is up.
func (s *leaderState) processReady(j *job, worker string, r *weirv1.ProcessReady) {
	p := j.procs[worker]
	if p == nil || j.stopping != nil {
		return
	}
	p.ready, p.addr, p.pid = true, r.DataAddress, r.Pid
	var routes []*weirv1.TaskRoute
	for _, w := range sortedKeys(j.procs) {
		q := j.procs[w]
		if !q.ready {
			return
		}
		for _, st := range q.subtasks {
			routes = append(routes, &weirv1.TaskRoute{VertexId: st.VertexId, Subtask: st.Subtask, DataAddress: q.addr})
		}
	}
	for _, w := range sortedKeys(j.procs) {
		if wc := s.workers[w]; wc != nil {
			wc.send(&weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Start{Start: &weirv1.StartTasks{
				JobId: j.rec.Id, Attempt: j.attempt, Routes: routes,
			}}})
		}
	}
	// Tails outlive restarts: the new attempt's processes get them too.
	for _, id := range sortedKeys(j.taps) {
		s.sendProcs(j, &weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_StartTap{StartTap: &weirv1.StartTap{
			JobId: j.rec.Id, Attempt: j.attempt, TapId: id, Uid: j.taps[id].uid}}})
	}
}

func (s *leaderState) taskState(ctx context.Context, j *job, worker string, u *weirv1.TaskStateUpdate) {
	t := j.tasks[jobgraph.Subtask{VertexID: u.VertexId, Index: u.Subtask}]
	if t == nil || t.worker != worker {
		return
	}
	t.state = u.State
	switch u.State {
	case weirv1.TaskState_TASK_STATE_FAILED:
		if u.RestoreFailed && j.restoringFrom != 0 && !j.badCheckpoints[j.restoringFrom] {
			j.badCheckpoints[j.restoringFrom] = true
			next := "the start of the input"
			if r := j.restoreFor(); r != nil {
				next = fmt.Sprintf("checkpoint %d", r.CheckpointId)
			}
			s.logger.Error("checkpoint cannot be restored; falling back to an older one", "job", j.rec.Id,
				"checkpoint", j.restoringFrom, "fallback", next, "err", u.Error)
		}
		s.taskFailed(ctx, j, fmt.Sprintf("%s on worker %s: %s", j.vertices[u.VertexId], worker, u.Error))
	case weirv1.TaskState_TASK_STATE_RUNNING:
		if j.allTasks(weirv1.TaskState_TASK_STATE_RUNNING) {
			s.endDeploySpan(j, "")
			s.step(ctx, j, jobmaster.AllRunning{})
			if j.m.State() == weirv1.JobState_JOB_STATE_RUNNING && !j.ckStarted {
				j.ckStarted = true
				s.ckApply(ctx, j, j.ckpt.Start(j.ckTasks(), time.Now()))
			}
		}
	case weirv1.TaskState_TASK_STATE_FINISHED:
		// Checkpoints need every task: once one finished, no barrier can
		// complete (as in Flink before final checkpoints).
		s.ckStop(ctx, j, "a task finished")
		if j.allTasks(weirv1.TaskState_TASK_STATE_FINISHED) {
			s.step(ctx, j, jobmaster.AllFinished{})
		} else if j.allTasks(weirv1.TaskState_TASK_STATE_RUNNING, weirv1.TaskState_TASK_STATE_FINISHED) {
			s.step(ctx, j, jobmaster.AllRunning{})
		}
	}
}

// taskFailed records a failure of the current attempt for the job's page
// and hands it to the lifecycle.
func (s *leaderState) taskFailed(ctx context.Context, j *job, reason string) {
	j.metrics.failed(time.Now(), j.attempt, reason)
	s.endDeploySpan(j, reason)
	s.step(ctx, j, jobmaster.TaskFailed{Err: reason})
}

// records are a vertex's records in and out over all attempts.
func (j *job) records(vertex int32) (in, out int64) { return j.metrics.records(vertex) }

func (j *job) allTasks(states ...weirv1.TaskState) bool {
	for _, t := range j.tasks {
		ok := false
		for _, st := range states {
			ok = ok || t.state == st
		}
		if !ok {
			return false
		}
	}
	return true
}

// processExited: a process of the current attempt is gone. Expected when
// stopping or when all its tasks finished; a failure otherwise.
func (s *leaderState) processExited(ctx context.Context, j *job, worker, reason string) {
	p := j.procs[worker]
	if p == nil || p.exited {
		return
	}
	p.exited = true
	if j.stopping != nil {
		delete(j.stopping, worker)
		s.maybeStopped(ctx, j)
		return
	}
	for _, st := range p.subtasks {
		if t := j.tasks[jobgraph.Subtask{VertexID: st.VertexId, Index: st.Subtask}]; t.state != weirv1.TaskState_TASK_STATE_FINISHED {
			s.taskFailed(ctx, j, reason)
			return
		}
	}
}

// status renders the job for the API.
func (s *leaderState) status(j *job) *weirv1.JobStatus {
	st := &weirv1.JobStatus{
		Id: j.rec.Id, Name: j.rec.Name, State: j.rec.State, Attempt: j.rec.Attempt, Restarts: j.rec.Restarts,
		Error: j.rec.Error, Message: j.rec.Message, CreatedUnixMs: j.rec.CreatedUnixMs,
		UpdatedUnixMs: j.rec.UpdatedUnixMs, Spec: j.rec.Spec,
	}
	for _, sub := range j.subtasks {
		t := j.tasks[sub]
		if t == nil {
			continue
		}
		info := &weirv1.TaskInfo{VertexId: sub.VertexID, Vertex: j.vertices[sub.VertexID], Subtask: sub.Index,
			Worker: t.worker, State: t.state}
		if p := j.procs[t.worker]; p != nil {
			info.Pid = p.pid
		}
		st.Tasks = append(st.Tasks, info)
	}
	return st
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
