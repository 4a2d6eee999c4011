package worker

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/worker/supervisor"
)

// hogEnv makes the test binary, started as a job process, allocate and
// touch memory until killed.
const hogEnv = "WEIR_WORKER_TEST_MEMORY_HOG"

func init() {
	if os.Getenv(hogEnv) != "" {
		var keep [][]byte
		for range 1024 {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		os.Exit(len(keep) & 0) // not reached under a 64 MiB limit
	}
}

// A job process over its memory limit is killed, and its group says so;
// a process in another group is untouched.
func TestMemoryLimitEnforced(t *testing.T) {
	cg, reason := setupCgroups()
	if cg == nil {
		t.Skipf("cgroup v2 is not writable here, so memory limits cannot be enforced: %s", reason)
	}
	w := &Worker{cgroups: cg, logger: slog.New(slog.DiscardHandler)}
	f, dir, err := w.memoryGroup(procKey{"memtest", 1, 0}, 64<<20, w.logger)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := supervisor.Start(supervisor.Spec{Path: exe, Env: []string{hogEnv + "=1"}, Cgroup: f})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		p.Stop(0)
		t.Fatal("the process over its limit was not killed")
	}
	if r := p.Result(); r.Signal != "SIGKILL" || !oomKilled(dir) {
		t.Fatalf("result %+v, oom_kill %v; want killed by the OOM killer", r, oomKilled(dir))
	}
	if !strings.HasPrefix(dir, cg.base) {
		t.Fatalf("group %s outside the worker's %s", dir, cg.base)
	}
}
