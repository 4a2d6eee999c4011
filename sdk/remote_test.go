package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/weir-run/weir/internal/exchange"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// testProcess is one simulated job process: a Network behind its own gRPC
// server on a loopback port.
type testProcess struct {
	d    *runtime.Deployment
	stop func()
}

func startTestProcess(t *testing.T, jobID string, opts exchange.Options) *testProcess {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nw := exchange.NewNetwork(jobID, 1, opts, testLogger())
	srv := grpc.NewServer(exchange.ServerOptions()...)
	nw.Register(srv)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	self := lis.Addr().String()
	nw.SetLocalAddr(self)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := nw.Close(); err != nil {
				t.Error(err)
			}
			srv.Stop()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return &testProcess{d: &runtime.Deployment{JobID: jobID, Attempt: 1, Net: nw, Self: self, Logger: testLogger()}, stop: stop}
}

// remoteJob is the pipeline of TestRemoteExecution: every kind of edge, so
// that records cross processes through every partitioner.
type remoteJob struct {
	counts    bag[KV[string, int64]]
	rebalance bag[int64]
	broadcast bag[int64]
}

const remoteEvents, remoteKeys = 20000, 101

func (j *remoteJob) build(p *Pipeline, failAt int64) {
	src := genSeq(p, remoteEvents, WithParallelism(4))
	keys := Map(src, func(v int64) string {
		if v == failAt {
			panic(fmt.Sprintf("bad record %d", v))
		}
		return fmt.Sprintf("key-%03d", v%remoteKeys)
	}, WithParallelism(4), WithName("Key"))
	j.counts.sinkTo(Aggregate(KeyBy(keys, func(s string) string { return s }), Count[string](), EmitFinal(),
		WithParallelism(3)), WithParallelism(3))
	j.rebalance.sinkTo(Map(Rebalance(src), func(v int64) int64 { return v * 2 }, WithParallelism(2)), WithParallelism(2))
	j.broadcast.sinkTo(Broadcast(src), WithParallelism(2))
}

// runTwoProcesses plans the job in two processes, A hosting the even
// subtasks of every vertex and B the odd ones, and runs them concurrently.
// Like a job process, each closes its network when its subtasks end.
func runTwoProcesses(t *testing.T, opts exchange.Options, build func(p *Pipeline)) (errs [2]error, states map[runtime.SubtaskRef][]weirv1.TaskState) {
	t.Helper()
	procs := [2]*testProcess{startTestProcess(t, "remote", opts), startTestProcess(t, "remote", opts)}
	route := func(r runtime.SubtaskRef) string { return procs[r.Subtask%2].d.Self }
	var mu sync.Mutex
	states = make(map[runtime.SubtaskRef][]weirv1.TaskState)
	report := func(r runtime.SubtaskRef, st weirv1.TaskState, _ error) {
		mu.Lock()
		states[r] = append(states[r], st)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The attempt's context: the coordinator cancels every process of an
	// attempt when one fails. A consumer cannot tell a producer that never
	// connected from a slow one, so without that it would wait.
	attempt, cancelAttempt := context.WithCancelCause(ctx)
	defer cancelAttempt(nil)
	var wg sync.WaitGroup
	for i, proc := range procs {
		// Each process builds its own pipeline, as job processes do.
		p := NewPipeline("remote", 2)
		build(p)
		pl, err := p.compile()
		if err != nil {
			t.Fatal(err)
		}
		proc.d.Route = route
		var refs []runtime.SubtaskRef
		for _, v := range pl.Vertices {
			for s := i; s < v.Parallelism; s += 2 {
				refs = append(refs, runtime.SubtaskRef{Vertex: v.ID, Subtask: s})
			}
		}
		wg.Go(func() {
			errs[i] = pl.Run(attempt, proc.d, refs, report)
			// The process exits, then the coordinator hears of it.
			proc.stop()
			if errs[i] != nil {
				cancelAttempt(fmt.Errorf("process %d failed: %w", i, errs[i]))
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("the processes were still running at the test's deadline")
	}
	return errs, states
}

func TestRemoteExecution(t *testing.T) {
	var j remoteJob
	errs, states := runTwoProcesses(t, exchange.Options{}, func(p *Pipeline) { j.build(p, -1) })
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("process errors: %v", errs)
	}

	var wantCounts []KV[string, int64]
	for k := range int64(remoteKeys) {
		c := int64(remoteEvents / remoteKeys)
		if k < remoteEvents%remoteKeys {
			c++
		}
		wantCounts = append(wantCounts, KV[string, int64]{fmt.Sprintf("key-%03d", k), c})
	}
	checkOutput(t, j.counts.items(), wantCounts)
	var doubled, twice []int64
	for i := range int64(remoteEvents) {
		doubled = append(doubled, 2*i)
		twice = append(twice, i, i)
	}
	checkOutput(t, j.rebalance.items(), doubled)
	checkOutput(t, j.broadcast.items(), twice)
	for _, got := range j.broadcast.bySubtask() {
		checkOutput(t, got, seqUpTo(remoteEvents))
	}

	// Source(4), Key(4), Aggregate(3), Rebalance map(2), broadcast sink(2).
	if len(states) != 4+4+3+2+2 {
		t.Errorf("%d subtasks reported, want 15", len(states))
	}
	for r, sts := range states {
		if fmt.Sprint(sts) != fmt.Sprint([]weirv1.TaskState{weirv1.TaskState_TASK_STATE_RUNNING, weirv1.TaskState_TASK_STATE_FINISHED}) {
			t.Errorf("subtask %v went through %v", r, sts)
		}
	}
}

// A failure in one process fails that process's subtasks with the cause;
// the other process's subtasks end too, failed by a broken channel or
// cancelled with the attempt, and nothing hangs.
func TestRemoteFailure(t *testing.T) {
	var j remoteJob
	// Record 5 comes from source subtask 1, whose Key subtask runs in B.
	// A producer of A may dial B after B is gone: keep that wait short.
	errs, states := runTwoProcesses(t, exchange.Options{DialTimeout: time.Second}, func(p *Pipeline) { j.build(p, 5) })
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "bad record 5") || !strings.Contains(errs[1].Error(), "Key") {
		t.Fatalf("process B: %v, want the panic in Key", errs[1])
	}
	// A's consumers of B see their channels break; a producer of A still
	// connecting to B finds nobody there; or the attempt is cancelled first.
	if errs[0] != nil && !errors.Is(errs[0], exchange.ErrChannelBroken) && !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("process A failed with %v, want a broken channel or a failed connection", errs[0])
	}
	failed := 0
	for r, sts := range states {
		switch sts[len(sts)-1] {
		case weirv1.TaskState_TASK_STATE_FAILED:
			failed++
		case weirv1.TaskState_TASK_STATE_CANCELED, weirv1.TaskState_TASK_STATE_FINISHED:
		default:
			t.Errorf("subtask %v ended %v", r, sts)
		}
	}
	if failed == 0 {
		t.Error("no subtask reported FAILED")
	}
	if len(states) != 15 {
		t.Errorf("%d of 15 subtasks reported", len(states))
	}
	// Nothing was published as complete.
	if len(j.counts.items()) != 0 {
		t.Errorf("keyed counts emitted by a failed job: %v", j.counts.items())
	}
}
