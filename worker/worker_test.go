package worker

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestMain(m *testing.M) {
	if os.Getenv(describeHelperEnv) != "" && len(os.Args) > 1 && os.Args[1] == "--mode=describe" {
		describeHelper()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// The registration a new leader gets lists running processes with the last
// state of each subtask (subtasks that reported nothing are left out), and
// the exits of the last recentExitAge; older exits are forgotten.
func TestProcessesForRegistration(t *testing.T) {
	w := &Worker{}
	w.mu.procs = map[procKey]*jobProc{}
	jp := &jobProc{key: procKey{"j1", 3, 0}, dataAddr: "127.0.0.1:9",
		subtasks: []*weirv1.SubtaskRef{{VertexId: 1, Subtask: 0}, {VertexId: 2, Subtask: 0}},
		tasks: map[taskKey]*weirv1.TaskStateUpdate{
			{1, 0}: {JobId: "j1", Attempt: 3, VertexId: 1, Subtask: 0, State: weirv1.TaskState_TASK_STATE_RUNNING},
		}}
	w.mu.procs[jp.key] = jp
	exited := &weirv1.RunningProcess{JobId: "j0", Attempt: 1, Exited: true, ExitCode: 0}
	w.mu.recent = []exitedProc{
		{at: time.Now().Add(-2 * recentExitAge), info: &weirv1.RunningProcess{JobId: "old", Attempt: 1, Exited: true}},
		{at: time.Now(), info: exited},
	}

	w.mu.Lock()
	got := w.processesLocked()
	w.mu.Unlock()
	want := []*weirv1.RunningProcess{
		{JobId: "j1", Attempt: 3, DataAddress: "127.0.0.1:9", Subtasks: jp.subtasks, Tasks: []*weirv1.TaskStateUpdate{jp.tasks[taskKey{1, 0}]}},
		exited,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d processes, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("process %d = %v, want %v", i, got[i], want[i])
		}
	}
	if len(w.mu.recent) != 1 {
		t.Errorf("%d recent exits kept, want 1 (the old one pruned)", len(w.mu.recent))
	}
}
