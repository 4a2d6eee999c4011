package coordinator

import (
	"context"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestLostWorkerRestartsOnlyItsRegions: a job of two pipelined regions, a
// (parallelism 1) and b (parallelism 2), on two one-slot workers; the
// worker holding only b's second subtask is lost. Only region b restarts,
// its lost slot moved to a spare worker; region a keeps its attempt and
// its worker, and the job stays RUNNING.
func TestLostWorkerRestartsOnlyItsRegions(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	cancels := map[string]context.CancelFunc{}
	connect := func(id string) {
		t.Helper()
		ctx, cancel := context.WithCancel(h.lctx)
		cancels[id] = cancel
		t.Cleanup(cancel)
		var w *scriptedWorker
		eventually(t, 30*time.Second, "worker "+id+" registers", func() bool {
			var err error
			w, err = startScriptedWorker(ctx, weirv1.NewClusterServiceClient(h.conn), id, h.c.cfg.HeartbeatInterval, scriptOpts{slots: 1})
			return err == nil
		})
		h.workers = append(h.workers, w)
	}
	connect("w1")
	connect("w2")
	spec := h.spec("regions")
	spec.Parallelism = 2
	spec.Restart = &weirv1.RestartPolicy{Strategy: weirv1.RestartStrategy_RESTART_STRATEGY_FIXED_DELAY, DelayMs: 100, MaxRestarts: 10}
	spec.Graph.Vertices = []*weirv1.Vertex{
		{Id: 1, Name: "a", Parallelism: 1, IsSource: true, Operators: []*weirv1.Operator{{Uid: "a", Name: "a", Kind: "source"}}},
		{Id: 2, Name: "b", Parallelism: 2, IsSource: true, Operators: []*weirv1.Operator{{Uid: "b", Name: "b", Kind: "source"}}},
	}
	spec.Graph.Edges = nil
	r, err := h.api.SubmitJob(h.ctx, &weirv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	job := r.JobId
	status := func() *weirv1.JobStatus {
		st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: job})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	allRunning := func(st *weirv1.JobStatus) bool {
		if st.State != weirv1.JobState_JOB_STATE_RUNNING || len(st.Tasks) != 3 {
			return false
		}
		for _, tk := range st.Tasks {
			if tk.State != weirv1.TaskState_TASK_STATE_RUNNING {
				return false
			}
		}
		return true
	}
	eventually(t, 30*time.Second, "every task runs", func() bool { return allRunning(status()) })
	before := status()
	task := func(st *weirv1.JobStatus, vertex, subtask int32) *weirv1.TaskInfo {
		for _, tk := range st.Tasks {
			if tk.VertexId == vertex && tk.Subtask == subtask {
				return tk
			}
		}
		t.Fatalf("no task %d/%d in %v", vertex, subtask, st.Tasks)
		return nil
	}
	a0, b1 := task(before, 1, 0), task(before, 2, 1)
	if a0.Worker == b1.Worker {
		t.Fatalf("a/0 and b/1 share worker %s; the test needs them apart", a0.Worker)
	}
	connect("w3") // the spare
	eventually(t, 30*time.Second, "the spare registers", func() bool {
		ws, err := h.api.ListWorkers(h.ctx, &weirv1.ListWorkersRequest{})
		return err == nil && len(ws.Workers) == 3
	})
	cancels[b1.Worker]() // its stream breaks: lost at once

	eventually(t, 30*time.Second, "region b runs again on the spare", func() bool {
		st := status()
		return allRunning(st) && task(st, 2, 1).Worker == "w3" && task(st, 2, 1).Attempt > b1.Attempt
	})
	after := status()
	if got := task(after, 1, 0); got.Attempt != a0.Attempt || got.Worker != a0.Worker {
		t.Fatalf("region a went from attempt %d on %s to attempt %d on %s: it restarted", a0.Attempt, a0.Worker, got.Attempt, got.Worker)
	}
	if got := task(after, 2, 0); got.Attempt != task(after, 2, 1).Attempt {
		t.Fatalf("region b's subtasks run attempts %d and %d", got.Attempt, task(after, 2, 1).Attempt)
	}
}
