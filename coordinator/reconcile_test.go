package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/coordinator/leader"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/etcdtest"
	"github.com/weir-run/weir/internal/objstore"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestTakeover runs the scripts in testdata/takeover: a new leader's
// reconciliation with the workers, driven by hand against a real etcd (for
// the fenced job records). Commands:
//
//	job id=J state=S attempt=N workers=W1,W2 [region-attempts=A0,A1]
//	    a job as the previous leader recorded it; its graph has vertices
//	    1 (src) and 2 (sink) at parallelism 2, so slot i holds v1/i and v2/i;
//	    with region-attempts, no edge joins them: two pipelined regions,
//	    v1's (0) and v2's (1), at these attempts
//	begin live=W1,W2
//	    the leader starts reconciling, with these workers' liveness keys alive
//	register W
//	    worker W registers; each input line is a process it reports:
//	    JOB ATTEMPT [exited] v1/0=RUNNING v2/0=RUNNING ...
//	report W JOB ATTEMPT v1/0 STATE
//	    a task state update from W
//	exited W JOB ATTEMPT [REGION]
//	    W reports the process (of region REGION, default 0) exited
//	tick t=D
//	    the loop's tick at D after begin
//	lease-expired W
//	    W's liveness key in etcd expired
//
// Each prints the messages the workers were sent, then every job.
func TestTakeover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, el := electedCoordinator(t)

	datadriven.Walk(t, "testdata/takeover", func(t *testing.T, path string) {
		s := newLeaderState(c, el.Store())
		s.fence = func(err error) { t.Fatalf("fenced: %v", err) }
		var begin time.Time
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "job":
				var id, state, workers string
				var attempt int64
				d.ScanArgs(t, "id", &id)
				d.ScanArgs(t, "state", &state)
				d.ScanArgs(t, "attempt", &attempt)
				d.MaybeScanArgs(t, "workers", &workers)
				var regionAttempts string
				d.MaybeScanArgs(t, "region-attempts", &regionAttempts)
				st := weirv1.JobState(weirv1.JobState_value["JOB_STATE_"+state])
				rec := &weirv1.JobStatus{Id: id, State: st, Attempt: attempt, CreatedUnixMs: int64(len(s.jobs)),
					AttemptWorkers: splitComma(workers), Spec: &weirv1.JobSpec{Graph: &weirv1.JobGraph{MaxParallelism: 8,
						Vertices: []*weirv1.Vertex{{Id: 1, Name: "src", Parallelism: 2}, {Id: 2, Name: "sink", Parallelism: 2}},
						// One pipelined region, unless the script asks for two.
						Edges: []*weirv1.Edge{{Source: 1, Target: 2}}}}}
				if regionAttempts != "" {
					rec.Spec.Graph.Edges = nil
					for _, a := range splitComma(regionAttempts) {
						rec.RegionAttempts = append(rec.RegionAttempts, atoi(t, d, a))
					}
				}
				s.jobs[id] = newJob(rec, jobmaster.Restore(jobmaster.Snapshot{State: st, Attempt: attempt}, nil))
				return ""
			case "begin":
				var live string
				d.MaybeScanArgs(t, "live", &live)
				m := map[string]bool{}
				for _, w := range splitComma(live) {
					m[w] = true
				}
				begin = time.Now()
				s.live = m // keys in etcd; every hosting worker is awaited regardless
				s.beginReconcile(ctx, begin)
			case "register":
				w := &workerConn{id: d.CmdArgs[0].Key, slots: 2, lastBeat: time.Now(), out: make(chan *weirv1.CoordinatorMessage, 100),
					close: func(error) {}, reported: map[procKey]*weirv1.RunningProcess{}}
				for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					if line == "" {
						continue
					}
					rp := parseProcess(t, d, line)
					if len(rp.Subtasks) > 0 {
						rp.Region = s.regionOf(rp.JobId, rp.Subtasks[0].VertexId)
					}
					w.reported[procKey{rp.JobId, rp.Attempt, rp.Region}] = rp
				}
				s.addWorker(ctx, w)
			case "report":
				f := cmdFields(d)
				st, sub := parseTask(t, d, f[3]+"="+f[4])
				u := &weirv1.TaskStateUpdate{VertexId: sub.VertexId, Subtask: sub.Subtask, State: st}
				key := procKey{f[1], atoi(t, d, f[2]), s.regionOf(f[1], sub.VertexId)}
				s.onWorkerMessage(ctx, s.workers[f[0]], &weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Process{Process: &weirv1.ProcessMessage{
					Key: key.proto(), Msg: &weirv1.ProcessMessage_TaskState{TaskState: u}}}})
			case "exited":
				f := cmdFields(d)
				e := &weirv1.ProcessExited{Key: &weirv1.ProcessKey{JobId: f[1], Attempt: atoi(t, d, f[2])}, ExitCode: -1, Error: "killed"}
				if len(f) > 3 {
					e.Key.Region = int32(atoi(t, d, f[3]))
				}
				s.onWorkerMessage(ctx, s.workers[f[0]], &weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_ProcessExited{ProcessExited: e}})
			case "lease-expired":
				s.livenessExpired(ctx, d.CmdArgs[0].Key)
			case "tick":
				var at string
				d.ScanArgs(t, "t", &at)
				dur, err := time.ParseDuration(at)
				if err != nil {
					d.Fatalf(t, "t: %v", err)
				}
				s.maybeReconciled(ctx, begin.Add(dur))
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			settle(t, s)
			return describeLeader(s)
		})
	})
}

// settle does the loop's part by hand: it applies the results of the
// effects handed to the lanes until none is out.
func settle(t testing.TB, s *leaderState) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for s.effectsOut > 0 {
		select {
		case fn := <-s.events:
			fn()
		case <-deadline:
			t.Fatalf("%d effects still out after 30s", s.effectsOut)
		}
	}
}

func splitComma(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func cmdFields(d *datadriven.TestData) []string {
	var f []string
	for _, a := range d.CmdArgs {
		f = append(f, a.Key)
	}
	return f
}

func atoi(t *testing.T, d *datadriven.TestData, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.Fatalf(t, "%q: %v", s, err)
	}
	return n
}

// parseTask reads "v1/0=RUNNING".
func parseTask(t *testing.T, d *datadriven.TestData, s string) (weirv1.TaskState, *weirv1.SubtaskRef) {
	ref, state, ok := strings.Cut(s, "=")
	v, i, ok2 := strings.Cut(strings.TrimPrefix(ref, "v"), "/")
	st, ok3 := weirv1.TaskState_value["TASK_STATE_"+state]
	if !ok || !ok2 || !ok3 {
		d.Fatalf(t, "bad task %q", s)
	}
	return weirv1.TaskState(st), &weirv1.SubtaskRef{VertexId: int32(atoi(t, d, v)), Subtask: int32(atoi(t, d, i))}
}

func parseProcess(t *testing.T, d *datadriven.TestData, line string) *weirv1.RunningProcess {
	f := strings.Fields(line)
	rp := &weirv1.RunningProcess{JobId: f[0], Attempt: atoi(t, d, f[1]), DataAddress: "addr"}
	for _, x := range f[2:] {
		if x == "exited" {
			rp.Exited, rp.Error = true, "exit status 1"
			continue
		}
		st, ref := parseTask(t, d, x)
		rp.Subtasks = append(rp.Subtasks, ref)
		rp.Tasks = append(rp.Tasks, &weirv1.TaskStateUpdate{JobId: rp.JobId, Attempt: rp.Attempt, VertexId: ref.VertexId, Subtask: ref.Subtask, State: st})
	}
	return rp
}

// describeLeader drains what the workers were sent and lists the jobs.
func describeLeader(s *leaderState) string {
	var b strings.Builder
	for _, id := range sortedKeys(s.workers) {
		w := s.workers[id]
	drain:
		for {
			select {
			case m := <-w.out:
				if line := formatMessage(m); line != "" {
					fmt.Fprintf(&b, "-> %s: %s\n", id, line)
				}
			default:
				break drain
			}
		}
	}
	if s.reconcile != nil {
		fmt.Fprintf(&b, "reconciling, waiting for %s\n", strings.Join(sortedKeys(s.reconcile.waiting), ","))
	}
	ids := make([]string, 0, len(s.jobs))
	for id := range s.jobs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		j := s.jobs[id]
		fmt.Fprintf(&b, "job %s: %s attempt=%d checkpointing=%v", id, strings.TrimPrefix(j.m.State().String(), "JOB_STATE_"), j.m.Attempt(), j.checkpointing)
		if len(j.placement) > 0 {
			fmt.Fprintf(&b, " placement=%s", strings.Join(j.placement, ","))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func formatMessage(m *weirv1.CoordinatorMessage) string {
	switch m := m.Msg.(type) {
	case *weirv1.CoordinatorMessage_Registered:
		return "" // every registration gets one
	case *weirv1.CoordinatorMessage_Deploy:
		var subs []string
		for _, st := range m.Deploy.GetAssign().GetSubtasks() {
			subs = append(subs, fmt.Sprintf("v%d/%d", st.VertexId, st.Subtask))
		}
		return fmt.Sprintf("deploy %s attempt=%d %s", m.Deploy.Key.GetJobId(), m.Deploy.Key.GetAttempt(), strings.Join(subs, ","))
	case *weirv1.CoordinatorMessage_Process:
		k := m.Process.Key
		switch c := m.Process.Cmd.(type) {
		case *weirv1.ProcessCommand_Cancel:
			return fmt.Sprintf("cancel %s attempt=%d", k.GetJobId(), k.GetAttempt())
		case *weirv1.ProcessCommand_Start:
			return fmt.Sprintf("start %s attempt=%d", k.GetJobId(), k.GetAttempt())
		case *weirv1.ProcessCommand_Trigger:
			return fmt.Sprintf("trigger %s checkpoint=%d", k.GetJobId(), c.Trigger.CheckpointId)
		case *weirv1.ProcessCommand_Complete:
			return fmt.Sprintf("complete %s checkpoint=%d", k.GetJobId(), c.Complete.CheckpointId)
		}
		return fmt.Sprintf("%T", m.Process.Cmd)
	}
	return fmt.Sprintf("%T", m.Msg)
}

// electedCoordinator is a coordinator elected leader in a real etcd, with a
// file store, whose loop the test plays by hand (newLeaderState, settle).
func electedCoordinator(t testing.TB) (*Coordinator, *leader.Elector) {
	t.Helper()
	return electedCoordinatorTTL(t, 0)
}

// electedCoordinatorTTL is electedCoordinator with a lease of ttl (0: the
// default).
func electedCoordinatorTTL(t testing.TB, ttl time.Duration) (*Coordinator, *leader.Elector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	cli := etcdtest.Start(t)
	store, err := objstore.Open(ctx, "file://"+filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c := &Coordinator{cfg: Config{ID: "c", Store: "file://" + filepath.Join(dir, "store"), API: "c:1"}, logger: slog.New(slog.DiscardHandler), etcd: cli, store: store}
	c.cfg.setDefaults()
	el, err := leader.NewElector(cli, etcdkeys.Election, "c", "c:1", ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	if err := el.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	return c, el
}
