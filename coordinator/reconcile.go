package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/internal/etcdkeys"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Takeover. A new leader does not know what the old one left running, and
// redeploying every job on every leader change would cost each job a restore
// from its last checkpoint and, for a short TTL, most of the failover budget.
// So the new leader first reconciles: it waits (at most the worker timeout)
// for the workers that hosted restored attempts to register, each
// listing the processes it runs with their tasks' states. A job whose
// attempt is fully accounted for, every task RUNNING or FINISHED, is adopted
// as it is and checkpoints continue (ids keep increasing: the counter is in
// etcd). Any other job is recovered by Start as before: what is left of its
// attempt is stopped and a fresh attempt restores the latest completed
// checkpoint. Reported processes nobody adopts are cancelled.
//
// While reconciling, reports about restored attempts update the
// registrations rather than the jobs, so a task that fails or finishes in the
// meantime is seen when the decision is made.

// reconcile is the takeover in progress; nil once decided.
type reconcile struct {
	deadline time.Time
	waiting  map[string]bool // live workers hosting a restored attempt, not yet registered
	jobs     []*jobDriver    // the restored non-terminal jobs, to adopt or Start
}

// liveWorkers reads which workers hold a liveness key, and the revision to
// watch their expiries from.
func (s *leaderState) liveWorkers(ctx context.Context) (map[string]bool, int64, error) {
	resp, err := s.c.etcd.Get(ctx, etcdkeys.Workers, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, 0, fmt.Errorf("list live workers: %w", err)
	}
	live := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		live[strings.TrimPrefix(string(kv.Key), etcdkeys.Workers)] = true
	}
	return live, resp.Header.Revision, nil
}

// beginReconcile decides whom to wait for, or decides at once when nobody.
func (s *leaderState) beginReconcile(ctx context.Context, now time.Time) {
	r := &reconcile{deadline: now.Add(s.c.cfg.WorkerTimeout), waiting: map[string]bool{}}
	for _, j := range s.sortedJobs() {
		if !jobmaster.Terminal(j.m.State()) {
			r.jobs = append(r.jobs, j)
		}
		if !adoptable(j) {
			continue
		}
		// Wait for a worker without a liveness key too: etcd unavailable
		// for longer than the leases (a hung or partitioned member) drops
		// every key while the workers and their tasks run on, and deciding
		// at once would restart every job. A worker that really died costs
		// at most the deadline.
		for _, w := range j.rec.AttemptWorkers {
			r.waiting[w] = true
		}
	}
	s.reconcile = r
	s.logger.Info("reconciling with workers", "waiting_for", strings.Join(sortedKeys(r.waiting), ","), "deadline", s.c.cfg.WorkerTimeout)
	s.maybeReconciled(ctx, now)
}

// adoptable reports whether j's restored attempt could be re-attached to.
func adoptable(j *jobDriver) bool {
	st := j.m.State()
	return (st == weirv1.JobState_JOB_STATE_RUNNING || st == weirv1.JobState_JOB_STATE_SCHEDULED) &&
		j.attempt > 0 && len(j.rec.AttemptWorkers) > 0
}

// maybeReconciled decides once every awaited worker registered or the
// deadline passed.
func (s *leaderState) maybeReconciled(ctx context.Context, now time.Time) {
	r := s.reconcile
	if r == nil || (len(r.waiting) > 0 && now.Before(r.deadline)) {
		return
	}
	s.reconcile = nil
	if len(r.waiting) > 0 {
		s.logger.Warn("workers did not report in time; their jobs restart", "workers", strings.Join(sortedKeys(r.waiting), ","))
	}
	adopted := map[procKey]bool{}
	for _, j := range r.jobs {
		if jobmaster.Terminal(j.m.State()) {
			continue // cancelled meanwhile
		}
		if reason := s.tryAdopt(ctx, j); reason == "" {
			for r := range j.regions {
				adopted[procKey{j.rec.Id, j.attemptOf(int32(r)), int32(r)}] = true
			}
			continue
		} else if adoptable(j) {
			s.logger.Info("cannot re-attach to job; restarting it", "job", j.rec.Id, "attempt", j.attempt, "why", reason)
		}
		s.step(ctx, j, jobmaster.Start{})
	}
	for _, id := range sortedKeys(s.workers) {
		s.cancelStrays(s.workers[id], adopted)
	}
}

// procKey names a job process by (job, attempt, region): weirv1.ProcessKey
// as a map key. It is how the control envelope addresses a process.
type procKey struct {
	job     string
	attempt int64
	region  int32
}

func keyOf(k *weirv1.ProcessKey) procKey {
	return procKey{k.GetJobId(), k.GetAttempt(), k.GetRegion()}
}

func (k procKey) proto() *weirv1.ProcessKey {
	return &weirv1.ProcessKey{JobId: k.job, Attempt: k.attempt, Region: k.region}
}

// tryAdopt re-attaches to j's restored attempt from the registrations, or
// says why it cannot. When it cannot, the attempt's live processes are
// still recorded so that Start's StopAttempt cancels and awaits them.
//
// A job of several pipelined regions some of which cannot be re-attached
// (the old leader died while one of them restarted, say) is adopted all
// the same, and only those regions restart, as they would have under the
// old leader: restarting the whole job would cost every other region a
// restore for nothing.
func (s *leaderState) tryAdopt(ctx context.Context, j *jobDriver) string {
	procs := map[attemptProc]*process{}
	tasks := map[jobgraph.Subtask]*taskRun{}
	why := ""
	whyRegion := map[int32]string{} // why each region cannot be re-attached
	var ids []attemptProc
	for _, wid := range sortedKeys(s.workers) {
		for r := range j.regions {
			ids = append(ids, attemptProc{wid, int32(r)})
		}
	}
	for _, id := range ids {
		wid := id.worker
		rp := s.workers[wid].reported[procKey{j.rec.Id, j.attemptOf(id.region), id.region}]
		if rp == nil {
			continue
		}
		p := &process{addr: rp.DataAddress, cert: rp.DataCertSha256, pid: rp.Pid, exited: rp.Exited, ready: true}
		procs[id] = p
		states := map[jobgraph.Subtask]*weirv1.TaskStateUpdate{}
		for _, u := range rp.Tasks {
			states[jobgraph.Subtask{VertexID: u.VertexId, Index: u.Subtask}] = u
		}
		for _, ref := range rp.Subtasks {
			st := jobgraph.Subtask{VertexID: ref.VertexId, Index: ref.Subtask}
			p.subtasks = append(p.subtasks, ref)
			if tasks[st] != nil {
				why = fmt.Sprintf("subtask %s/%d reported by two workers", j.vertices[st.VertexID], st.Index)
			}
			u := states[st]
			tasks[st] = &taskRun{worker: wid, state: u.GetState(), awaiting: awaitsFinal(u)}
			switch {
			case u.GetState() == weirv1.TaskState_TASK_STATE_FINISHED:
			case u.GetState() != weirv1.TaskState_TASK_STATE_RUNNING:
				whyRegion[id.region] = fmt.Sprintf("subtask %s/%d on worker %s is %s", j.vertices[st.VertexID], st.Index, wid, u.GetState())
			case rp.Exited:
				whyRegion[id.region] = fmt.Sprintf("the process on worker %s exited: %s", wid, rp.Error)
			}
		}
	}
	for _, st := range j.subtasks {
		if r := j.regionOf[st.VertexID]; tasks[st] == nil && whyRegion[r] == "" {
			whyRegion[r] = fmt.Sprintf("no worker reported subtask %s/%d", j.vertices[st.VertexID], st.Index)
		}
	}
	j.procs = procs
	if !adoptable(j) {
		return "not running when the leader changed"
	}
	if why != "" {
		return why
	}
	if len(whyRegion) > 0 && (len(j.regions) < 2 || len(whyRegion) == len(j.regions)) {
		return whyRegion[slices.Min(slices.Collect(maps.Keys(whyRegion)))]
	}
	for _, st := range j.subtasks {
		if tasks[st] == nil {
			// Of a region that restarts below; deployRegion places it.
			tasks[st] = &taskRun{state: weirv1.TaskState_TASK_STATE_UNSPECIFIED}
		}
	}
	j.resetTasks()
	for st, t := range tasks {
		j.setTask(st, t)
	}
	j.placement = make([]string, jobgraph.SlotsNeeded(j.rec.Spec.Graph))
	for st, t := range tasks {
		if t.worker != "" {
			j.placement[jobgraph.SlotOf(st)] = t.worker
		}
	}
	s.logger.Info("re-attached to job", "job", j.rec.Id, "attempt", j.attempt, "workers", strings.Join(j.rec.AttemptWorkers, ","))
	s.step(ctx, j, jobmaster.Reattached{})
	if len(whyRegion) > 0 {
		for _, r := range slices.Sorted(maps.Keys(whyRegion)) {
			s.logger.Info("cannot re-attach to a region of the job; restarting the region", "job", j.rec.Id, "region", r, "why", whyRegion[r])
			s.failed(ctx, j, r, "re-attaching after a coordinator change: "+whyRegion[r], false)
		}
		// As below: the old leader may have completed a checkpoint without
		// telling the sinks of the regions that run on.
		if latest := j.restoreFor(); latest != nil && latest.CheckpointId > 0 {
			s.notifyComplete(j, latest.CheckpointId)
		}
		return ""
	}
	switch {
	case j.allTasks(weirv1.TaskState_TASK_STATE_FINISHED):
		s.step(ctx, j, jobmaster.AllFinished{})
	case j.allTasks(weirv1.TaskState_TASK_STATE_RUNNING, weirv1.TaskState_TASK_STATE_FINISHED):
		s.startCheckpoints(ctx, j)
		// The old leader may have recorded a checkpoint and died before
		// telling the sinks; committing is idempotent, so say it again.
		if latest := j.restoreFor(); latest != nil && latest.CheckpointId > 0 {
			s.notifyComplete(j, latest.CheckpointId)
		}
	}
	return ""
}

// cancelStrays stops the processes w reported that belong to no attempt
// the leader runs: old attempts, jobs since cancelled or restarted.
func (s *leaderState) cancelStrays(w *workerConn, keep map[procKey]bool) {
	keys := make([]procKey, 0, len(w.reported))
	for k := range w.reported {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		return cmp.Or(strings.Compare(keys[a].job, keys[b].job), cmp.Compare(keys[a].attempt, keys[b].attempt), cmp.Compare(keys[a].region, keys[b].region)) < 0
	})
	for _, k := range keys {
		rp := w.reported[k]
		if rp.Exited || keep[k] {
			continue
		}
		if j := s.jobs[k.job]; j != nil && j.live(k.attempt, k.region) && j.stopping[attemptProc{w.id, k.region}] {
			continue // Start's StopAttempt already cancelled it
		}
		s.logger.Info("cancelling a process no attempt owns", "worker", w.id, "job", k.job, "attempt", k.attempt, "region", k.region)
		w.command(k, cancelCommand())
	}
	w.reported = nil
}

// reconcileReport applies a worker's report about a restored attempt to its
// registration while reconciling, and reports whether it did.
func (s *leaderState) reconcileReport(w *workerConn, m *weirv1.WorkerMessage) bool {
	if s.reconcile == nil {
		return false
	}
	var key procKey
	switch m := m.Msg.(type) {
	case *weirv1.WorkerMessage_Process:
		switch m.Process.Msg.(type) {
		case *weirv1.ProcessMessage_TaskState, *weirv1.ProcessMessage_CheckpointAck, *weirv1.ProcessMessage_CheckpointDecline:
			key = keyOf(m.Process.Key)
		default:
			return false
		}
	case *weirv1.WorkerMessage_ProcessExited:
		key = keyOf(m.ProcessExited.Key)
	case *weirv1.WorkerMessage_ProcessReady:
		key = keyOf(m.ProcessReady.Key)
	default:
		return false
	}
	rp := w.reported[key]
	if rp == nil {
		return false
	}
	switch m := m.Msg.(type) {
	case *weirv1.WorkerMessage_Process:
		u := m.Process.GetTaskState()
		if u == nil {
			break // Checkpoint acks and declines are dropped: this leader triggered none.
		}
		for i, old := range rp.Tasks {
			if old.VertexId == u.VertexId && old.Subtask == u.Subtask {
				rp.Tasks = append(rp.Tasks[:i], rp.Tasks[i+1:]...)
				break
			}
		}
		rp.Tasks = append(rp.Tasks, u)
	case *weirv1.WorkerMessage_ProcessExited:
		e := m.ProcessExited
		rp.Exited, rp.ExitCode, rp.Error = true, e.ExitCode, e.Error
	case *weirv1.WorkerMessage_ProcessReady:
		rp.DataAddress, rp.DataCertSha256, rp.Pid = m.ProcessReady.DataAddress, m.ProcessReady.DataCertSha256, m.ProcessReady.Pid
	}
	return true
}

// regionOf is the region of a job's vertex; 0 for an unknown job.
func (s *leaderState) regionOf(jobID string, vertex int32) int32 {
	if j := s.jobs[jobID]; j != nil {
		return j.regionOf[vertex]
	}
	return 0
}
