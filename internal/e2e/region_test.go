package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// regionTask is a task in `weir status -o json`, with its region.
type regionTask struct {
	Vertex  string `json:"vertex"`
	Region  int32  `json:"region"`
	Attempt int64  `json:"attempt"`
	Pid     int    `json:"pid"`
	State   string `json:"state"`
}

type regionStatus struct {
	State    string       `json:"state"`
	Restarts int          `json:"restarts"`
	Tasks    []regionTask `json:"tasks"`
}

func regionStatusOf(t *testing.T, api, id string) regionStatus {
	out, _, code := weir(t, 10*time.Second, "status", "--coordinator", api, id, "-o", "json")
	var s regionStatus
	if code == 0 {
		json.Unmarshal([]byte(out), &s)
	}
	return s
}

// regionView is what one region runs: its pids and attempts, and whether
// every task of it is RUNNING.
type regionView struct {
	pids     map[int]bool
	attempts map[int64]bool
	running  bool
}

func regionsOf(s regionStatus) map[int32]*regionView {
	out := map[int32]*regionView{}
	for _, tk := range s.Tasks {
		r := out[tk.Region]
		if r == nil {
			r = &regionView{pids: map[int]bool{}, attempts: map[int64]bool{}, running: true}
			out[tk.Region] = r
		}
		r.pids[tk.Pid] = true
		r.attempts[tk.Attempt] = true
		r.running = r.running && tk.State == "RUNNING" && tk.Pid > 0
	}
	return out
}

// TestRegionFailover: a job of two independent pipelines runs as two
// pipelined regions. Killing a process of one restarts only that region from
// the latest checkpoint: the other keeps its processes and attempt, and both
// outputs are exact at the end.
func TestRegionFailover(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tworegions")
	build := exec.Command("go", "build", "-o", bin, "./jobs/tworegions")
	build.Dir = "../.."
	build.Env = staticBuildEnv()
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tworegions: %v\n%s", err, b)
	}
	c := startCluster(t, 2, 2)
	const events, keys = 48000, 400
	outA, outB := filepath.Join(c.dir, "a"), filepath.Join(c.dir, "b")
	id := runDetached(t, c.api, "-p", "2", "--checkpoint-interval", "300ms", bin, "--",
		"--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--rate", "4000",
		"--output-a", outA, "--output-b", outB)

	var before map[int32]*regionView
	waitFor(t, 30*time.Second, "both regions running and a completed checkpoint", func() bool {
		before = regionsOf(regionStatusOf(t, c.api, id))
		return len(before) == 2 && before[0].running && before[1].running && len(completed(checkpointsOf(t, c.api, id))) > 0
	})
	for pid := range before[0].pids {
		if before[1].pids[pid] {
			t.Fatalf("pid %d serves both regions: %+v %+v", pid, before[0], before[1])
		}
	}
	var victim int
	for pid := range before[1].pids {
		victim = pid
		break
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", victim, err)
	}
	t.Logf("killed pid %d of region 1", victim)

	var after map[int32]*regionView
	waitFor(t, 30*time.Second, "region 1 to run again", func() bool {
		after = regionsOf(regionStatusOf(t, c.api, id))
		return after[1] != nil && after[1].running && !after[1].pids[victim]
	})
	if !mapsEqual(after[0].pids, before[0].pids) || !mapsEqual(after[0].attempts, before[0].attempts) {
		t.Fatalf("region 0 was restarted: before %+v, after %+v", before[0], after[0])
	}
	if mapsEqual(after[1].attempts, before[1].attempts) {
		t.Fatalf("region 1 runs its old attempt: before %+v, after %+v", before[1], after[1])
	}

	waitFinished(t, c.api, id, 60*time.Second)
	checkCounts(t, outA, keys, events/keys)
	checkCounts(t, outB, keys, events/keys)
	if st := regionStatusOf(t, c.api, id); st.Restarts != 1 {
		t.Fatalf("%d restarts, want 1 (region 1's)", st.Restarts)
	}
}

func mapsEqual[K comparable](a, b map[K]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
