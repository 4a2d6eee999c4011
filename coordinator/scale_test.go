package coordinator

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/coordinator/scheduler"
	"github.com/weir-run/weir/internal/procstat"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// The scale simulation: a real leader (election on embedded etcd, the loop,
// the gRPC services, gofakes3 for manifests) with many scripted workers on
// the real ClusterService stream, each answering deploys, starts and
// checkpoint triggers at once. What is left is the coordinator's own cost:
// placing, deploying and tracking the tasks, and coordinating a checkpoint.

// simPatience bounds each wait of the simulations: the quadratic code
// this replaced took minutes at 1,000 workers on a loaded machine.
const simPatience = 10 * time.Minute

// sim is a leader harness with scripted workers connected.
type sim struct {
	*leaderHarness
	slots int
}

// startSim connects workers scripted workers of slots slots each.
func startSim(tb testing.TB, workers, slots int) *sim {
	tb.Helper()
	h := startLeaderHarness(tb, harnessOpts{config: func(c *Config) {
		// A loaded machine must neither declare a scripted worker lost nor
		// lose the lease: heartbeats and leases are not what this measures.
		c.HeartbeatInterval, c.WorkerTimeout, c.LeaseTTL = 5*time.Second, time.Minute, time.Minute
	}})
	eventually(tb, 30*time.Second, "the leader is elected", func() bool {
		h.c.mu.Lock()
		defer h.c.mu.Unlock()
		return h.c.mu.lead != nil
	})
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	ids := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				w, err := startScriptedWorker(h.lctx, weirv1.NewClusterServiceClient(h.conn), fmt.Sprintf("w%04d", i), h.c.cfg.HeartbeatInterval, scriptOpts{slots: int32(slots)})
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				h.workers = append(h.workers, w)
				mu.Unlock()
			}
		})
	}
	for i := range workers {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("connect a worker: %v", err)
	}
	s := &sim{leaderHarness: h, slots: slots}
	s.onLoop(tb, func(st *leaderState) bool { return len(st.workers) == workers })
	return s
}

// wideSpec is a source feeding a sink, both of parallelism p, forward: 2p
// tasks in p slots. Periodic checkpoints are due hourly, so only the
// checkpoints a test triggers (triggerCheckpoint) run.
func (s *sim) wideSpec(name string, p int32) *weirv1.JobSpec {
	spec := s.spec(name)
	spec.Parallelism = p
	spec.Checkpoints = &weirv1.CheckpointPolicy{IntervalMs: time.Hour.Milliseconds(), TimeoutMs: (2 * time.Hour).Milliseconds()}
	spec.Graph.MaxParallelism = p
	for _, v := range spec.Graph.Vertices {
		v.Parallelism = p
	}
	return spec
}

// onLoop polls cond on the leader's loop until it holds. It polls every
// millisecond: the time it returns at is what the benchmarks measure.
func (s *sim) onLoop(tb testing.TB, cond func(st *leaderState) bool) {
	tb.Helper()
	deadline := time.Now().Add(simPatience)
	for {
		s.c.mu.Lock()
		st := s.c.mu.lead
		s.c.mu.Unlock()
		if st != nil {
			ok, err := call(s.ctx, st, func() (bool, error) { return cond(st), nil })
			if err != nil {
				tb.Fatal(err)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the simulated cluster did not get there within %v", simPatience)
		}
		time.Sleep(time.Millisecond)
	}
}

// submitAndWait submits spec and returns once every task of the job runs.
func (s *sim) submitAndWait(tb testing.TB, spec *weirv1.JobSpec) string {
	tb.Helper()
	r, err := s.api.SubmitJob(s.ctx, &weirv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		tb.Fatalf("submit: %v", err)
	}
	s.onLoop(tb, func(st *leaderState) bool {
		j := st.jobs[r.JobId]
		return j.m.State() == weirv1.JobState_JOB_STATE_RUNNING && j.checkpointing
	})
	return r.JobId
}

// cancelAndWait cancels job and returns once its slots are free.
func (s *sim) cancelAndWait(tb testing.TB, job string) {
	tb.Helper()
	if _, err := s.api.CancelJob(s.ctx, &weirv1.CancelJobRequest{JobId: job}); err != nil {
		tb.Fatalf("cancel: %v", err)
	}
	s.onLoop(tb, func(st *leaderState) bool { return st.jobs[job].m.State() == weirv1.JobState_JOB_STATE_CANCELED })
}

// checkpoint triggers a checkpoint of job now, as the periodic timer would
// once due, and returns once it is complete: its manifest is written and
// it is recorded in etcd.
func (s *sim) checkpoint(tb testing.TB, job string) int64 {
	tb.Helper()
	var before int64
	s.onLoop(tb, func(st *leaderState) bool {
		j := st.jobs[job]
		before, _, _ = j.checkpoints.Latest()
		st.checkpointInput(st.ctx, j, dueTick(j))
		return true
	})
	var id int64
	s.onLoop(tb, func(st *leaderState) bool {
		id, _, _ = st.jobs[job].checkpoints.Latest()
		return id > before
	})
	return id
}

// dueTick ticks j's checkpoint machine as if its next periodic checkpoint
// were due: it allocates an id and triggers, exactly as on its timer.
func dueTick(j *jobDriver) func(now time.Time) []checkpoint.Action {
	return func(now time.Time) []checkpoint.Action {
		if wake, ok := j.checkpoints.NextWake(); ok && wake.After(now) {
			now = wake
		}
		return j.checkpoints.Tick(now)
	}
}

// TestScaleSim runs the simulation small: every task is placed, at most
// slots per worker and spread evenly, all run, and a checkpoint over all
// of them completes and is announced to every worker.
func TestScaleSim(t *testing.T) {
	const workers, slots, p = 50, 4, 200
	s := startSim(t, workers, slots)
	job := s.submitAndWait(t, s.wideSpec("wide", p))

	st, err := s.api.GetJob(s.ctx, &weirv1.GetJobRequest{JobId: job})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Tasks) != 2*p {
		t.Fatalf("%d tasks, want %d", len(st.Tasks), 2*p)
	}
	perWorker := map[string]map[int32]bool{} // worker -> slots (subtask indexes)
	for _, ti := range st.Tasks {
		if ti.State != weirv1.TaskState_TASK_STATE_RUNNING || ti.Worker == "" {
			t.Fatalf("task %s/%d is %v on %q", ti.Vertex, ti.Subtask, ti.State, ti.Worker)
		}
		if perWorker[ti.Worker] == nil {
			perWorker[ti.Worker] = map[int32]bool{}
		}
		perWorker[ti.Worker][ti.Subtask] = true
	}
	if len(perWorker) != workers {
		t.Fatalf("tasks on %d workers, want all %d", len(perWorker), workers)
	}
	for w, used := range perWorker {
		if len(used) != p/workers {
			t.Fatalf("worker %s hosts %d slots, want %d (even spread)", w, len(used), p/workers)
		}
	}

	id := s.checkpoint(t, job)
	eventually(t, time.Minute, "every worker hears the checkpoint is complete", func() bool {
		for _, w := range s.workers {
			if w.completed(job) < id {
				return false
			}
		}
		return true
	})
	var subtasks int
	s.onLoop(t, func(st *leaderState) bool {
		subtasks = len(st.jobs[job].manifests[id].GetSubtasks())
		return true
	})
	if subtasks != 2*p {
		t.Fatalf("checkpoint %d's manifest lists %d subtasks, want %d", id, subtasks, 2*p)
	}
	s.cancelAndWait(t, job)
	var free []scheduler.Worker
	s.onLoop(t, func(st *leaderState) bool {
		free = st.freeSlots()
		return true
	})
	for _, w := range free {
		if w.Free != slots {
			t.Fatalf("worker %s has %d free slots after the cancel, want %d", w.ID, w.Free, slots)
		}
	}
}

// The 1,000-worker benchmarks: a job of parallelism 10,000 (20,000 tasks)
// on 1,000 workers of 10 slots. Run with a fixed count, since starting the
// cluster dominates a run of one op:
//
//	go test ./coordinator -run '^$' -bench Scale1000 -benchtime 5x
const (
	scaleWorkers     = 1000
	scaleSlots       = 10
	scaleParallelism = scaleWorkers * scaleSlots
)

// BenchmarkScale1000Schedule: submit to every task running, per op; the
// job is cancelled between ops, off the clock.
func BenchmarkScale1000Schedule(b *testing.B) {
	s := startSim(b, scaleWorkers, scaleSlots)
	spec := s.wideSpec("wide", scaleParallelism)
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		start := processCPU()
		job := s.submitAndWait(b, spec)
		cpu += processCPU() - start
		b.StopTimer()
		s.cancelAndWait(b, job)
		b.StartTimer()
	}
	b.ReportMetric(float64(jobgraph.SlotsNeeded(spec.Graph)), "slots")
	reportCPU(b, cpu)
}

// processCPU is the CPU time the test process used so far: the leader,
// etcd and the scripted workers together. On a shared machine the wall
// time says as much about the neighbours as about the coordinator.
func processCPU() time.Duration { return procstat.CPU() }

func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkScale1000Checkpoint: trigger to completion of one checkpoint of
// the running job, per op, every task acking at once.
func BenchmarkScale1000Checkpoint(b *testing.B) {
	s := startSim(b, scaleWorkers, scaleSlots)
	job := s.submitAndWait(b, s.wideSpec("wide", scaleParallelism))
	b.ResetTimer()
	start := processCPU()
	for range b.N {
		s.checkpoint(b, job)
	}
	reportCPU(b, processCPU()-start)
}

// loopSim is the simulation one layer down: the leader's loop handlers
// driven by the test goroutine, which plays the loop (as settle does), with
// workers whose queues it answers in place of the stream (scriptedAnswer).
// Effects still run for real: record writes and checkpoint ids go to the
// embedded etcd, manifests to a file store. Without gRPC and a thousand
// streams' goroutines, what is left is the coordinator's own work.
type loopSim struct {
	s        *leaderState
	spec     *weirv1.JobSpec
	j        *jobDriver // the last scheduled
	workers  []*workerConn
	subtasks map[string]map[procKey][]*weirv1.SubtaskRef // by worker
}

func startLoopSim(tb testing.TB, workers, slots int, p int32) *loopSim {
	// A starved machine must not lose the lease: it is not what this measures.
	c, el := electedCoordinatorTTL(tb, time.Minute)
	s := newLeaderState(c, el.Store())
	s.fence = func(err error) { panic(fmt.Sprintf("fenced: %v", err)) }
	ls := &loopSim{s: s, subtasks: map[string]map[procKey][]*weirv1.SubtaskRef{}}
	for i := range workers {
		w := &workerConn{id: fmt.Sprintf("w%04d", i), slots: slots, lastBeat: time.Now(),
			out: make(chan *weirv1.CoordinatorMessage, 4*slots+16), close: func(error) {}}
		s.workers[w.id] = w
		ls.workers = append(ls.workers, w)
		ls.subtasks[w.id] = map[procKey][]*weirv1.SubtaskRef{}
	}
	h := &leaderHarness{}
	h.spec = func(name string) *weirv1.JobSpec {
		return &weirv1.JobSpec{Name: name, Graph: &weirv1.JobGraph{Name: name,
			Vertices: []*weirv1.Vertex{{Id: 1, Name: "src", IsSource: true}, {Id: 2, Name: "sink"}},
			Edges:    []*weirv1.Edge{{Source: 1, Target: 2, Partitioning: weirv1.Partitioning_PARTITIONING_FORWARD}}}}
	}
	ls.spec = (&sim{leaderHarness: h}).wideSpec("wide", p)
	return ls
}

// pump answers the workers and applies effects' results until done holds.
func (ls *loopSim) pump(tb testing.TB, done func() bool) {
	deadline := time.Now().Add(simPatience)
	for !done() {
		if time.Now().After(deadline) {
			tb.Fatalf("the loop simulation did not get there within %v", simPatience)
		}
		answered := false
		for _, w := range ls.workers {
			for len(w.out) > 0 {
				m := <-w.out
				answered = true
				if d := m.GetDeploy(); d != nil {
					ls.subtasks[w.id][keyOf(d.Key)] = d.GetAssign().GetSubtasks()
					ls.s.onWorkerMessage(ls.s.ctx, w, &weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_ProcessReady{ProcessReady: &weirv1.ProcessReady{
						Key: d.Key, DataAddress: w.id + ":1", Pid: 1}}})
					continue
				}
				for _, r := range scriptedAnswer(ls.subtasks[w.id], m) {
					ls.s.onWorkerMessage(ls.s.ctx, w, r)
				}
			}
		}
		if !answered && ls.s.effectsOut > 0 {
			(<-ls.s.events)()
		}
	}
}

// schedule submits job id, as SubmitJob does once it is recorded, and
// pumps until all its tasks run.
func (ls *loopSim) schedule(tb testing.TB, id string) {
	rec := &weirv1.JobStatus{Id: id, Name: id, State: weirv1.JobState_JOB_STATE_CREATED, Spec: ls.spec, CreatedUnixMs: time.Now().UnixMilli()}
	ls.j = newJob(rec, jobmaster.New(nil, time.Now()))
	ls.s.jobs[id] = ls.j
	ls.s.persist(ls.j)
	ls.s.step(ls.s.ctx, ls.j, jobmaster.Start{})
	ls.pump(tb, func() bool { return ls.j.m.State() == weirv1.JobState_JOB_STATE_RUNNING && ls.j.checkpointing })
}

// cancel stops the job and pumps until it is cancelled and written down.
func (ls *loopSim) cancel(tb testing.TB) {
	ls.s.step(ls.s.ctx, ls.j, jobmaster.CancelRequested{})
	ls.pump(tb, func() bool {
		return ls.j.m.State() == weirv1.JobState_JOB_STATE_CANCELED && ls.s.effectsOut == 0
	})
}

// checkpoint triggers a checkpoint (as sim.checkpoint) and pumps until it
// is stored and recorded.
func (ls *loopSim) checkpoint(tb testing.TB) {
	j := ls.j
	before, _, _ := j.checkpoints.Latest()
	ls.s.checkpointInput(ls.s.ctx, j, dueTick(j))
	ls.pump(tb, func() bool {
		id, _, _ := j.checkpoints.Latest()
		return id > before
	})
}

// BenchmarkScale1000LoopSchedule: placing, deploying and starting 20,000
// tasks on 1,000 workers, on the loop, per op.
func BenchmarkScale1000LoopSchedule(b *testing.B) {
	ls := startLoopSim(b, scaleWorkers, scaleSlots, scaleParallelism)
	var cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := processCPU()
		ls.schedule(b, fmt.Sprintf("job%d", i))
		cpu += processCPU() - start
		b.StopTimer()
		ls.cancel(b)
		b.StartTimer()
	}
	reportCPU(b, cpu)
}

// BenchmarkScale1000LoopCheckpoint: one checkpoint of 20,000 tasks on
// 1,000 workers, trigger to recorded, on the loop, per op.
func BenchmarkScale1000LoopCheckpoint(b *testing.B) {
	ls := startLoopSim(b, scaleWorkers, scaleSlots, scaleParallelism)
	ls.schedule(b, "job")
	b.ResetTimer()
	start := processCPU()
	for range b.N {
		ls.checkpoint(b)
	}
	reportCPU(b, processCPU()-start)
}
