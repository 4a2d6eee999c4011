package coordinator

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/coordinator/scheduler"
	"github.com/weir-run/weir/internal/bytesize"
	"github.com/weir-run/weir/internal/redact"
	"github.com/weir-run/weir/internal/sealing"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// jobDriver is the leader's view of one job and drives it (see driver.go):
// its record, its lifecycle and checkpoint machines, the processes of its
// current attempt, and the inputs and effects pending for it.
type jobDriver struct {
	rec *weirv1.JobStatus // persisted part; Tasks unused
	// lastSweep is when orphaned checkpoint files were last looked for
	// (gc.go); zero on a new leader, which sweeps at its first chance.
	lastSweep time.Time
	// key seals the job's state in the store (nil: not encrypted);
	// savepointKey opens the savepoint it was submitted from.
	key, savepointKey *sealing.JobKey
	// secrets are the values of the spec's secrets, for its processes.
	secrets  map[string][]byte
	m        *jobmaster.Machine
	subtasks []jobgraph.Subtask
	vertices map[int32]string // vertex id -> display name
	regions  [][]int32        // pipelined regions (jobgraph.Regions)
	regionOf map[int32]int32  // vertex id -> region index
	// outEdges are each vertex's outgoing edges and parallelism its
	// parallelism: which routes a process needs (routesFor).
	outEdges    map[int32][]*weirv1.Edge
	parallelism map[int32]int32
	// sourceTasks are the source vertices' subtasks, and liveSource the
	// index of the last one found still reading (sourcesDrained).
	sourceTasks []jobgraph.Subtask
	liveSource  int
	// awaitingTaken is the newest checkpoint any subtask that said it waits
	// for its final checkpoint took before its end, since checkpoints
	// (re)started: a checkpoint pending newer than it is every waiting
	// subtask's final one (checkpoint.Machine.Hurry).
	awaitingTaken int64

	// attempt is the newest attempt number deployed; regionAttempt holds the
	// one each region runs, which differ once a region restarted alone.
	attempt       int64
	regionAttempt []int64
	placement     []string // worker per slot while the attempt holds slots

	checkpoints   *checkpoint.Machine
	checkpointing bool
	// checkpointsFailedInRow counts the current attempt's checkpoints that failed
	// since the last completed one; checkpointsFailedSince the job's, with the
	// newest failure's reason (see checkpointWarning).
	checkpointsFailedInRow, checkpointsFailedSince int
	lastCheckpointFailure                          string
	manifests                                      map[int64]*weirv1.CheckpointManifest // retained, for reference counts
	badCheckpoints                                 map[int64]bool                       // failed to restore (-1: the submitted savepoint)
	restoringFrom                                  int64                                // checkpoint the current attempt restores (0: none)
	savepointWaiter                                chan savepointResult
	deleting                                       chan deleteResult // set while the job is being deleted
	procs                                          map[attemptProc]*process
	tasks                                          map[jobgraph.Subtask]*taskRun
	// taskStates counts tasks by state (setTask, setTaskState): whether
	// all run is asked at each of a job's n task reports, and a scan of
	// every task each time made deploying n tasks cost n².
	taskStates     map[weirv1.TaskState]int
	stopping       map[attemptProc]bool           // processes of the stopped attempt still up
	regionStopping map[int32]map[attemptProc]bool // per region stopped alone: its processes still up

	metrics          jobMetrics
	checkpointTraces map[int64]*checkpointTrace // spans of pending checkpoints
	deploySpan       trace.Span                 // the current attempt's deployment, until all tasks run
	taps             map[string]*tap            // live taps by id

	inbox          []input // inputs waiting for the one being applied
	draining       bool    // drain is applying inputs
	recordIO       lane    // job record writes
	checkpointIO   lane    // checkpoint ids, manifests and records
	persistSeq     uint64  // record writes made
	persistedSeq   uint64  // record writes done
	held           []heldMessage
	persistWaiters []persistWaiter
}

// attemptProc names a process of the current attempt by where it runs: one
// per worker and region, so that a region can be stopped and redeployed
// without the others. (procKey names a process by job, attempt and region,
// as the control envelope addresses it: see jobDriver.procKey.)
type attemptProc struct {
	worker string
	region int32
}

// process is the job process of the current attempt on one worker.
type process struct {
	subtasks []*weirv1.SubtaskRef
	ready    bool
	addr     string
	// cert is the SHA-256 of the certificate the process serves data with
	// (data-plane TLS), which its peers pin.
	cert   []byte
	pid    int32
	exited bool
}

type taskRun struct {
	worker string
	state  weirv1.TaskState
	// awaiting: RUNNING, its input ended, and it waits for its final
	// checkpoint (TaskStateUpdate.awaiting_final_checkpoint), having taken
	// checkpoint taken last before its end.
	awaiting bool
	taken    int64
}

// awaitsFinal reports whether u says its subtask runs and waits for its
// final checkpoint.
func awaitsFinal(u *weirv1.TaskStateUpdate) bool {
	return u.GetState() == weirv1.TaskState_TASK_STATE_RUNNING && u.GetAwaitingFinalCheckpoint()
}

// sourcesDrained says every source subtask has ended its input: it waits
// for its final checkpoint, or finished. Only then is a final checkpoint
// hurried (see its callers): while some source still reads, the job cannot
// end sooner for it, so a subtask that waits takes the next periodic
// checkpoint, as in Flink (FLIP-147), rather than one triggered each time
// a source subtask of a bounded job ends while the others still read.
// It moves liveSource to the source it finds reading: that one usually
// still is next time, so the check costs one lookup while sources read and
// one pass over them as they end.
func (j *jobDriver) sourcesDrained() bool {
	n := len(j.sourceTasks)
	for i := range n {
		k := (j.liveSource + i) % n
		t := j.tasks[j.sourceTasks[k]]
		if t != nil && t.state != weirv1.TaskState_TASK_STATE_FINISHED && !t.awaiting {
			j.liveSource = k
			return false
		}
	}
	return true
}

// hurry makes the final checkpoint of the subtasks that wait for it due
// now, unless one already pending will be it.
func (j *jobDriver) hurry(now time.Time) []checkpoint.Action {
	return j.checkpoints.Hurry(j.awaitingTaken, now)
}

func newJob(rec *weirv1.JobStatus, m *jobmaster.Machine) *jobDriver {
	j := &jobDriver{rec: rec, m: m, attempt: rec.Attempt, vertices: make(map[int32]string), regionOf: make(map[int32]int32),
		checkpoints: checkpoint.New(checkpointConfig(rec.Spec.GetCheckpoints())), manifests: map[int64]*weirv1.CheckpointManifest{},
		badCheckpoints: map[int64]bool{}, metrics: newJobMetrics(), checkpointTraces: map[int64]*checkpointTrace{}, taps: map[string]*tap{},
		outEdges: map[int32][]*weirv1.Edge{}, parallelism: map[int32]int32{}}
	if g := rec.Spec.GetGraph(); g != nil {
		j.subtasks = jobgraph.Expand(g)
		for _, v := range g.Vertices {
			j.vertices[v.Id] = v.Name
			j.parallelism[v.Id] = v.Parallelism
		}
		for _, e := range g.Edges {
			j.outEdges[e.Source] = append(j.outEdges[e.Source], e)
		}
		sources := j.sources()
		for _, st := range j.subtasks {
			if slices.Contains(sources, st.VertexID) {
				j.sourceTasks = append(j.sourceTasks, st)
			}
		}
		j.regions = jobgraph.Regions(g)
		for r, vs := range j.regions {
			for _, v := range vs {
				j.regionOf[v] = int32(r)
			}
		}
	}
	j.regionAttempt = make([]int64, len(j.regions))
	for r := range j.regionAttempt {
		j.regionAttempt[r] = rec.Attempt
		if len(rec.RegionAttempts) == len(j.regions) {
			j.regionAttempt[r] = rec.RegionAttempts[r]
		}
	}
	return j
}

// attemptOf is the attempt region runs.
func (j *jobDriver) attemptOf(region int32) int64 {
	if region < 0 || int(region) >= len(j.regionAttempt) {
		return -1
	}
	return j.regionAttempt[region]
}

// procKey names the process of region at the attempt the region runs.
func (j *jobDriver) procKey(region int32) procKey {
	return procKey{j.rec.Id, j.attemptOf(region), region}
}

// live reports whether a report about attempt of region is about what the
// leader runs now; reports about older attempts are stale.
func (j *jobDriver) live(attempt int64, region int32) bool {
	return attempt == j.attemptOf(region)
}

// applyJobEvent feeds the job's lifecycle machine and carries out what it
// asks, in order (on the loop, from drain).
func (s *leaderState) applyJobEvent(ctx context.Context, j *jobDriver, ev jobmaster.Event) {
	before := j.m.State()
	acts := j.m.Step(ev, time.Now())
	if after := j.m.State(); after != before {
		s.logger.Info("job state", "job", j.rec.Id, "from", before.String(), "to", after.String(), "attempt", j.m.Attempt())
		if jobmaster.Terminal(after) {
			// Processes of a finished job exit by themselves; failed and
			// cancelled ones were stopped. Either way the slots are free.
			j.placement = nil
			s.stopCheckpoints(ctx, j, "job "+after.String())
		}
	}
	for _, a := range acts {
		switch a := a.(type) {
		case jobmaster.Deploy:
			s.deploy(ctx, j, a.Attempt)
		case jobmaster.StopAttempt:
			s.stopAttempt(ctx, j)
		case jobmaster.StopRegion:
			s.stopRegion(ctx, j, a.Region)
		case jobmaster.DeployRegion:
			s.deployRegion(ctx, j, a)
		case jobmaster.Persist:
			s.syncRecord(j)
			s.persist(j)
		}
	}
}

// syncRecord copies the machine's view into the job record.
func (s *leaderState) syncRecord(j *jobDriver) {
	snap := j.m.Snapshot()
	j.rec.State, j.rec.Attempt, j.rec.Restarts = snap.State, snap.Attempt, int32(snap.Restarts)
	j.rec.Error, j.rec.Message = snap.Error, snap.Message
	j.rec.UpdatedUnixMs = time.Now().UnixMilli()
}

// deploy places the attempt's slots and asks workers to start processes.
func (s *leaderState) deploy(ctx context.Context, j *jobDriver, attempt int64) {
	need := jobgraph.SlotsNeeded(j.rec.Spec.Graph)
	placement, err := scheduler.Place(need, s.freeSlots())
	if err != nil {
		s.step(ctx, j, jobmaster.NoSlots{Reason: err.Error()})
		return
	}
	j.attempt, j.placement = attempt, placement
	j.metrics.newAttempt()
	s.deploySpan(j, attempt)
	j.procs = make(map[attemptProc]*process)
	j.resetTasks()
	j.stopping, j.regionStopping = nil, nil
	for r := range j.regionAttempt {
		j.regionAttempt[r] = attempt
	}
	for _, st := range j.subtasks {
		j.place(st)
	}
	s.sendDeploys(ctx, j, -1)
	s.step(ctx, j, jobmaster.Scheduled{})
}

// deployRegion redeploys one region on the slots it kept, restored from the
// latest completed checkpoint, while the other regions run on.
func (s *leaderState) deployRegion(ctx context.Context, j *jobDriver, a jobmaster.DeployRegion) {
	j.attempt = a.Attempt
	j.regionAttempt[a.Region] = a.Attempt
	s.endDeploySpan(j, "")
	s.deploySpan(j, a.Attempt)
	var region []jobgraph.Subtask
	lost := map[int]string{} // slot -> the lost worker that held it
	for _, st := range j.subtasks {
		if j.regionOf[st.VertexID] == a.Region {
			region = append(region, st)
			if w := j.placement[jobgraph.SlotOf(st)]; s.workers[w] == nil {
				lost[jobgraph.SlotOf(st)] = w
			}
		}
	}
	if len(lost) > 0 {
		// The region's slots went with a lost worker: they move to free
		// slots of live workers. Every other region with a subtask in
		// them ran on that worker too, so it restarts as well and finds
		// them moved. Without enough free slots the job is placed anew,
		// as before region-scoped recovery; nothing of the region is
		// deployed, so nothing waits.
		slots := slices.Sorted(maps.Keys(lost))
		placed, err := scheduler.Place(len(slots), s.freeSlots())
		if err != nil {
			s.step(ctx, j, jobmaster.TaskFailed{Err: fmt.Sprintf("worker %s was lost and region %d cannot move: %v", lost[slots[0]], a.Region, err)})
			return
		}
		for i, slot := range slots {
			s.logger.Info("moving a slot of a lost worker", "job", j.rec.Id, "region", a.Region, "slot", slot, "from", lost[slot], "to", placed[i])
			j.placement[slot] = placed[i]
		}
	}
	for _, st := range region {
		j.place(st)
	}
	s.sendDeploys(ctx, j, a.Region)
}

// place assigns st to its slot's worker, in the process of its region there.
func (j *jobDriver) place(st jobgraph.Subtask) {
	id := attemptProc{worker: j.placement[jobgraph.SlotOf(st)], region: j.regionOf[st.VertexID]}
	p := j.procs[id]
	if p == nil {
		p = &process{}
		j.procs[id] = p
	}
	p.subtasks = append(p.subtasks, &weirv1.SubtaskRef{VertexId: st.VertexID, Subtask: st.Index})
	j.setTask(st, &taskRun{worker: id.worker, state: weirv1.TaskState_TASK_STATE_DEPLOYING})
}

// resetTasks forgets the tasks of the attempt before a new one is placed.
func (j *jobDriver) resetTasks() {
	j.tasks = make(map[jobgraph.Subtask]*taskRun)
	j.taskStates = make(map[weirv1.TaskState]int)
}

// setTask records that t runs st, replacing the run st had.
func (j *jobDriver) setTask(st jobgraph.Subtask, t *taskRun) {
	if old := j.tasks[st]; old != nil {
		j.taskStates[old.state]--
	}
	j.tasks[st] = t
	j.taskStates[t.state]++
}

// setTaskState moves task t, one of j.tasks, to state.
func (j *jobDriver) setTaskState(t *taskRun, state weirv1.TaskState) {
	j.taskStates[t.state]--
	t.state = state
	j.taskStates[state]++
}

// sendDeploys records who runs what, then asks the workers to start the
// processes of region (-1: all), restoring the latest usable checkpoint.
func (s *leaderState) sendDeploys(ctx context.Context, j *jobDriver, region int32) {
	// A successor needs to know whom to wait for, and at which attempt, before
	// it re-attaches.
	workers := map[string]bool{}
	for id := range j.procs {
		workers[id.worker] = true
	}
	j.rec.AttemptWorkers = sortedKeys(workers)
	j.rec.RegionAttempts = slices.Clone(j.regionAttempt)
	s.persist(j)
	spec := j.rec.Spec
	restore := j.restoreFor()
	j.restoringFrom = 0
	if restore != nil {
		j.restoringFrom = restore.CheckpointId
		s.logger.Info("restoring job state", "job", j.rec.Id, "attempt", j.attempt, "region", region, "checkpoint", restore.CheckpointId, "manifest", restore.Manifest)
	}
	var started []string
	for _, id := range j.attemptProcs() {
		if region >= 0 && id.region != region {
			continue
		}
		started = append(started, fmt.Sprintf("%s/%d", id.worker, id.region))
		if wc := s.workers[id.worker]; wc != nil {
			s.sendJob(j, wc, &weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Deploy{Deploy: &weirv1.DeployProcess{
				Key: j.procKey(id.region).proto(), BinarySha256: spec.BinarySha256, BinarySize: spec.BinarySize,
				Args: spec.Args, Parallelism: spec.Parallelism, ChannelSecret: s.channelSecret(j.rec.Id, j.attemptOf(id.region)),
				DataTls: s.c.dataTLS, MemoryLimitBytes: spec.MemoryLimitBytes, Gogc: spec.Gogc, GomemlimitBytes: spec.GomemlimitBytes,
				Assign: &weirv1.AssignTasks{Subtasks: j.procs[id].subtasks, Store: s.c.cfg.Store, Restore: restore, DataKey: j.key.Bytes(), Secrets: j.secrets,
					CheckpointIntervalMs: spec.GetCheckpoints().GetIntervalMs(), AlignedTimeoutMs: alignedTimeoutMs(spec.GetCheckpoints())},
			}}})
		}
	}
	if j.deploySpan != nil {
		j.deploySpan.SetAttributes(attribute.Int("processes", len(started)))
	}
	s.logger.Info("deploying", "job", j.rec.Id, "attempt", j.attempt, "processes", strings.Join(started, ","))
}

// attemptProcs lists the processes of the current attempt, by worker then
// region.
func (j *jobDriver) attemptProcs() []attemptProc {
	ids := make([]attemptProc, 0, len(j.procs))
	for id := range j.procs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b attemptProc) int {
		return cmp.Or(strings.Compare(a.worker, b.worker), cmp.Compare(a.region, b.region))
	})
	return ids
}

// cancel asks the process id to stop and reports whether the request went
// out (its worker is connected).
func (s *leaderState) cancel(j *jobDriver, id attemptProc) bool {
	wc := s.workers[id.worker]
	if wc == nil {
		return false
	}
	s.commandJob(j, wc, j.procKey(id.region), cancelCommand())
	return true
}

// stopAttempt cancels every process of the current attempt, in every
// region; AttemptStopped follows once all are gone.
func (s *leaderState) stopAttempt(ctx context.Context, j *jobDriver) {
	s.stopCheckpoints(ctx, j, "the attempt is stopping")
	j.regionStopping = nil
	j.stopping = make(map[attemptProc]bool)
	for _, id := range j.attemptProcs() {
		if !j.procs[id].exited && s.cancel(j, id) {
			j.stopping[id] = true
		}
	}
	s.maybeStopped(ctx, j)
}

// stopRegion cancels the processes of one region; RegionStopped follows
// once they are gone. Pending checkpoints are aborted, since the region's
// tasks will not ack them; checkpointing resumes over all tasks once the
// region runs again.
func (s *leaderState) stopRegion(ctx context.Context, j *jobDriver, region int32) {
	s.stopCheckpoints(ctx, j, fmt.Sprintf("region %d is restarting", region))
	if j.regionStopping == nil {
		j.regionStopping = make(map[int32]map[attemptProc]bool)
	}
	up := make(map[attemptProc]bool)
	for _, id := range j.attemptProcs() {
		if id.region == region && !j.procs[id].exited && s.cancel(j, id) {
			up[id] = true
		}
	}
	j.regionStopping[region] = up
	s.maybeRegionStopped(ctx, j, region)
}

// maybeRegionStopped forgets a stopped region's processes and tells the
// machine, once none is left.
func (s *leaderState) maybeRegionStopped(ctx context.Context, j *jobDriver, region int32) {
	if up, ok := j.regionStopping[region]; !ok || len(up) > 0 {
		return
	}
	delete(j.regionStopping, region)
	for id := range j.procs {
		if id.region == region {
			delete(j.procs, id)
		}
	}
	s.step(ctx, j, jobmaster.RegionStopped{Region: region})
}

func (s *leaderState) maybeStopped(ctx context.Context, j *jobDriver) {
	if j.stopping != nil && len(j.stopping) == 0 {
		j.stopping, j.placement, j.procs = nil, nil, nil
		s.step(ctx, j, jobmaster.AttemptStopped{})
	}
}

// processReady starts a region's tasks once every process of the region is
// up: regions exchange no records, so each starts on its own.
func (s *leaderState) processReady(ctx context.Context, j *jobDriver, worker string, region int32, r *weirv1.ProcessReady) {
	p := j.procs[attemptProc{worker, region}]
	if p == nil || j.stopping != nil || j.regionStopping[region] != nil {
		return
	}
	if s.c.dataTLS && len(r.DataCertSha256) != sha256.Size {
		// The process ignored data_tls: its SDK predates data-plane TLS.
		// Refuse rather than let its peers fall back to plaintext.
		s.failed(ctx, j, region, "the job binary serves its data channels without TLS, which this cluster requires (--data-plane-tls): rebuild it against this version of the weir sdk", true)
		return
	}
	p.ready, p.addr, p.cert, p.pid = true, r.DataAddress, r.DataCertSha256, r.Pid
	// Unsorted: this runs at each of the region's processes' reports.
	for id, q := range j.procs {
		if id.region == region && !q.ready {
			return
		}
	}
	at := map[jobgraph.Subtask]*weirv1.TaskRoute{}
	for id, q := range j.procs {
		if id.region != region {
			continue
		}
		for _, st := range q.subtasks {
			at[jobgraph.Subtask{VertexID: st.VertexId, Index: st.Subtask}] = &weirv1.TaskRoute{
				VertexId: st.VertexId, Subtask: st.Subtask, DataAddress: q.addr, DataCertSha256: q.cert}
		}
	}
	for _, id := range j.attemptProcs() {
		if wc := s.workers[id.worker]; wc != nil && id.region == region {
			routes := j.routesFor(j.procs[id], at)
			s.commandJob(j, wc, j.procKey(region), &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_Start{Start: &weirv1.StartTasks{Routes: routes}}})
		}
	}
	// Tails outlive restarts: the region's new processes get them too.
	for _, id := range sortedKeys(j.taps) {
		s.startTap(j, id, region)
	}
}

// routesFor lists where the consumers of p's subtasks listen, from at (the
// region's routes, shared between the lists): all that p dials, since the
// SDK connects each producer to its consumers (runtime.consumersOf). A
// forward edge needs the route of one subtask, any other edge those of
// every subtask of its target. Every route of the region to every process
// was tasks × processes routes: 20 million for 20,000 tasks on 1,000
// workers, which took a minute to send.
func (j *jobDriver) routesFor(p *process, at map[jobgraph.Subtask]*weirv1.TaskRoute) []*weirv1.TaskRoute {
	var routes []*weirv1.TaskRoute
	listed := map[jobgraph.Subtask]bool{}
	whole := map[int32]bool{} // targets listed in full
	add := func(st jobgraph.Subtask) {
		if r := at[st]; r != nil && !listed[st] {
			listed[st] = true
			routes = append(routes, r)
		}
	}
	for _, ref := range p.subtasks {
		for _, e := range j.outEdges[ref.VertexId] {
			if e.Partitioning == weirv1.Partitioning_PARTITIONING_FORWARD {
				add(jobgraph.Subtask{VertexID: e.Target, Index: ref.Subtask})
				continue
			}
			if whole[e.Target] {
				continue
			}
			whole[e.Target] = true
			for i := range j.parallelism[e.Target] {
				add(jobgraph.Subtask{VertexID: e.Target, Index: i})
			}
		}
	}
	return routes
}

// failed records a failure for the job's page and reports it to the
// machine: confined to one region when the job has several and region >= 0,
// else of the whole job.
func (s *leaderState) failed(ctx context.Context, j *jobDriver, region int32, err string, permanent bool) {
	j.metrics.failed(time.Now(), j.attempt, err)
	s.endDeploySpan(j, err)
	if len(j.regions) > 1 && region >= 0 {
		s.step(ctx, j, jobmaster.RegionFailed{Region: region, Err: err, Permanent: permanent})
		return
	}
	s.step(ctx, j, jobmaster.TaskFailed{Err: err, Permanent: permanent})
}

func (s *leaderState) taskState(ctx context.Context, j *jobDriver, worker string, u *weirv1.TaskStateUpdate) {
	t := j.tasks[jobgraph.Subtask{VertexID: u.VertexId, Index: u.Subtask}]
	if t == nil || t.worker != worker {
		return
	}
	j.setTaskState(t, u.State)
	saidAwaiting := t.awaiting
	t.awaiting = awaitsFinal(u)
	if t.awaiting {
		t.taken = u.CheckpointTaken
		j.awaitingTaken = max(j.awaitingTaken, t.taken)
	}
	switch u.State {
	case weirv1.TaskState_TASK_STATE_FAILED:
		permanent := u.Permanent
		msg := fmt.Sprintf("%s on worker %s: %s", j.vertices[u.VertexId], worker, u.Error)
		switch {
		case u.RestoreFailed && j.restoringFrom == -1:
			// The savepoint the job was submitted with is all it may
			// start from: starting from scratch instead would be a
			// silently wrong result.
			permanent = true
			msg = fmt.Sprintf("savepoint %s cannot be restored: %s", j.rec.Spec.FromSavepoint, msg)
		case u.RestoreFailed && j.restoringFrom != 0 && localDiskFull(u.Error):
			// Not the checkpoint's fault: falling back to an older one
			// would replay output its sinks already committed (for an
			// exactly-once sink, duplicates). The restart restores it again.
			s.logger.Error("checkpoint cannot be restored: the worker's disk is full; retrying the same checkpoint", "job", j.rec.Id,
				"checkpoint", j.restoringFrom, "worker", worker, "err", u.Error)
		case u.RestoreFailed && j.restoringFrom != 0 && !j.badCheckpoints[j.restoringFrom]:
			j.badCheckpoints[j.restoringFrom] = true
			next := "the start of the input"
			if r := j.restoreFor(); r != nil {
				next = fmt.Sprintf("checkpoint %d", r.CheckpointId)
				if r.CheckpointId == -1 {
					next = "the savepoint the job started from"
				}
			}
			s.logger.Error("checkpoint cannot be restored; falling back to an older one", "job", j.rec.Id,
				"checkpoint", j.restoringFrom, "fallback", next, "err", u.Error)
		}
		s.failed(ctx, j, j.regionOf[u.VertexId], msg, permanent)
	case weirv1.TaskState_TASK_STATE_RUNNING:
		if j.allTasks(weirv1.TaskState_TASK_STATE_RUNNING, weirv1.TaskState_TASK_STATE_FINISHED) {
			// Some may have finished first (restored finished): the job
			// runs, and checkpoints go on without them (FLIP-147).
			s.endDeploySpan(j, "")
			s.step(ctx, j, jobmaster.AllRunning{})
			s.startCheckpoints(ctx, j)
		}
		// A RUNNING update like any other, which also says the subtask's
		// final checkpoint is wanted, now if no source reads any more
		// (before checkpoints start, they start hurried: startCheckpoints).
		if t.awaiting && j.checkpointing && j.sourcesDrained() {
			s.checkpointInput(ctx, j, j.hurry)
		}
	case weirv1.TaskState_TASK_STATE_FINISHED:
		if j.allTasks(weirv1.TaskState_TASK_STATE_FINISHED) {
			s.stopCheckpoints(ctx, j, "every task finished")
			s.step(ctx, j, jobmaster.AllFinished{})
			return
		}
		// A subtask ends only after its final checkpoint completed, so
		// checkpoints go on without it: it is recorded as finished in
		// those it did not ack (FLIP-147). A source subtask that took a
		// checkpoint already triggered as its final one never said it
		// waits: if it was the last source reading, the subtasks that wait
		// get their checkpoint now. One that said it waits got its
		// checkpoint then (hurried if it was the last source reading, the
		// next periodic one if not) and finishes because that checkpoint
		// completed: another would find nothing to wait for and be aborted
		// when the job ends.
		if j.checkpointing {
			id := checkpoint.TaskID{Vertex: u.VertexId, Subtask: u.Subtask}
			hurry := !saidAwaiting && slices.Contains(j.sources(), u.VertexId) && j.sourcesDrained()
			s.checkpointInput(ctx, j, func(now time.Time) []checkpoint.Action {
				acts := j.checkpoints.Finished(id, j.finishedAck(id), now)
				if hurry {
					acts = append(acts, j.hurry(now)...)
				}
				return acts
			})
		}
		if j.allTasks(weirv1.TaskState_TASK_STATE_RUNNING, weirv1.TaskState_TASK_STATE_FINISHED) {
			s.step(ctx, j, jobmaster.AllRunning{})
			s.startCheckpoints(ctx, j)
		}
	}
}

// records are a vertex's records in and out over all attempts.
func (j *jobDriver) records(vertex int32) (in, out int64) { return j.metrics.records(vertex) }

// allTasks reports whether every task is in one of states (distinct).
func (j *jobDriver) allTasks(states ...weirv1.TaskState) bool {
	n := 0
	for _, st := range states {
		n += j.taskStates[st]
	}
	return n == len(j.tasks)
}

// processExited: a process of the current attempt is gone. Expected when
// stopping or when all its tasks finished; a failure of its region
// otherwise, also when workerLost (the region then moves the slots it had
// there: deployRegion).
func (s *leaderState) processExited(ctx context.Context, j *jobDriver, id attemptProc, reason string, workerLost bool) {
	p := j.procs[id]
	if p == nil || p.exited {
		return
	}
	p.exited = true
	if j.stopping != nil {
		delete(j.stopping, id)
		s.maybeStopped(ctx, j)
		return
	}
	if up := j.regionStopping[id.region]; up != nil {
		delete(up, id)
		s.maybeRegionStopped(ctx, j, id.region)
		return
	}
	for _, st := range p.subtasks {
		if t := j.tasks[jobgraph.Subtask{VertexID: st.VertexId, Index: st.Subtask}]; t.state != weirv1.TaskState_TASK_STATE_FINISHED {
			// A lost worker restarts the regions it hosted, each as its
			// process there exits; their slots move (deployRegion).
			s.failed(ctx, j, id.region, reason, false)
			return
		}
	}
}

// status renders the job for the API.
func (s *leaderState) status(j *jobDriver) *weirv1.JobStatus {
	spec := j.rec.Spec
	if args, names := redact.Args(spec.GetArgs()); names != nil {
		// Shown, the spec keeps no secret an argument carried; the job
		// still runs with it.
		spec = proto.Clone(spec).(*weirv1.JobSpec)
		spec.Args = args
	}
	st := &weirv1.JobStatus{
		Id: j.rec.Id, Name: j.rec.Name, State: j.rec.State, Attempt: j.rec.Attempt, Restarts: j.rec.Restarts,
		Error: j.rec.Error, Message: j.rec.Message, CreatedUnixMs: j.rec.CreatedUnixMs,
		UpdatedUnixMs: j.rec.UpdatedUnixMs, Spec: spec, CheckpointWarning: checkpointWarning(j),
		LimitWarning: s.limitWarning(j),
	}
	for _, sub := range j.subtasks {
		t := j.tasks[sub]
		if t == nil {
			continue
		}
		region := j.regionOf[sub.VertexID]
		info := &weirv1.TaskInfo{VertexId: sub.VertexID, Vertex: j.vertices[sub.VertexID], Subtask: sub.Index,
			Worker: t.worker, State: t.state, Region: region, Attempt: j.attemptOf(region)}
		if jobmaster.Terminal(j.rec.State) && (t.state == weirv1.TaskState_TASK_STATE_DEPLOYING || t.state == weirv1.TaskState_TASK_STATE_RUNNING) {
			// The last reports of a stopped attempt may never come: a
			// job that ended runs nothing.
			info.State = weirv1.TaskState_TASK_STATE_CANCELED
		}
		if p := j.procs[attemptProc{t.worker, region}]; p != nil {
			info.Pid = p.pid
		}
		st.Tasks = append(st.Tasks, info)
	}
	return st
}

// limitWarning says on which workers running j its memory limit is not
// enforced, and why; empty when it is (or there is none).
func (s *leaderState) limitWarning(j *jobDriver) string {
	limit := j.rec.Spec.GetMemoryLimitBytes()
	if limit <= 0 || jobmaster.Terminal(j.m.State()) {
		return ""
	}
	var not []string
	for _, id := range sortedKeys(placedWorkers(j)) {
		if w := s.workers[id]; w != nil && w.noLimits != "" {
			not = append(not, fmt.Sprintf("%s (%s)", id, w.noLimits))
		}
	}
	if len(not) == 0 {
		return ""
	}
	return fmt.Sprintf("memory limit %s is not enforced on worker %s", bytesize.Format(limit), strings.Join(not, "; "))
}

// placedWorkers are the workers of j's current attempt.
func placedWorkers(j *jobDriver) map[string]bool {
	ws := map[string]bool{}
	for _, w := range j.placement {
		ws[w] = true
	}
	return ws
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// defaultAlignedTimeout is the aligned timeout of a job whose spec sets
// none: long enough that an unloaded job always aligns, short enough that
// backpressure cannot stall its checkpoints for long.
const defaultAlignedTimeout = 30 * time.Second

// alignedTimeoutMs is the aligned timeout the job's processes get: nil
// keeps checkpoints aligned (a negative policy value).
func alignedTimeoutMs(p *weirv1.CheckpointPolicy) *int64 {
	if p == nil || p.AlignedTimeoutMs == nil {
		return proto.Int64(defaultAlignedTimeout.Milliseconds())
	}
	if p.GetAlignedTimeoutMs() < 0 {
		return nil
	}
	return proto.Int64(p.GetAlignedTimeoutMs())
}

// localDiskFull reports whether a task's error is its worker's disk being
// full (ENOSPC, EDQUOT), which a restore retried later survives, rather
// than a fault of the checkpoint restored (found by the chaos campaign's
// disk-full fault: the fallback to an older checkpoint duplicated output).
func localDiskFull(err string) bool {
	return strings.Contains(err, "no space left on device") || strings.Contains(err, "disk quota exceeded")
}
