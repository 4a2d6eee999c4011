package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// cluster is a multi-process cluster: weir etcd, one coordinator, workers.
type cluster struct {
	t       *testing.T
	dir     string
	etcd    string
	etcdD   *daemon
	api     string
	store   string
	workers map[string]*daemon
	next    int
	coord   *daemon
}

func startCluster(t *testing.T, workers, slots int) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), workers: map[string]*daemon{}}
	c.etcd, c.api = freeAddr(t), freeAddr(t)
	c.store = filepath.Join(c.dir, "store")
	c.etcdD = startDaemon(t, "etcd", "etcd", "--data-dir", filepath.Join(c.dir, "etcd"), "--client", c.etcd, "--peer", freeAddr(t))
	c.coord = startDaemon(t, "coordinator", "coordinator", "--etcd", c.etcd, "--store", "file://"+c.store, "--api", c.api, "--http", freeAddr(t))
	for range workers {
		c.addWorker(slots)
	}
	waitFor(t, 20*time.Second, "workers", func() bool { return len(listWorkers(t, c.api)) == workers })
	return c
}

func (c *cluster) addWorker(slots int) string {
	c.next++
	id := "w" + strconv.Itoa(c.next)
	c.workers[id] = startDaemon(c.t, id, "worker", "--etcd", c.etcd, "--slots", strconv.Itoa(slots),
		"--data-dir", filepath.Join(c.dir, id), "--id", id)
	return id
}

// kill SIGKILLs a worker that runs a task of the job and starts a fresh one.
func (c *cluster) killWorkerOf(id string, slots int) string {
	c.t.Helper()
	st := jobStatusOf(c.t, c.api, id)
	for _, task := range st.Tasks {
		if d := c.workers[task.Worker]; d != nil {
			d.cmd.Process.Signal(syscall.SIGKILL)
			delete(c.workers, task.Worker)
			c.addWorker(slots)
			return task.Worker
		}
	}
	c.t.Fatalf("no worker runs job %s: %+v", id, st)
	return ""
}

type statusJSON struct {
	State   string `json:"state"`
	Error   string `json:"error"`
	Attempt int    `json:"attempt"`
	Tasks   []struct {
		Worker string `json:"worker"`
		State  string `json:"state"`
	} `json:"tasks"`
}

func jobStatusOf(t *testing.T, api, id string) statusJSON {
	out, _, code := weir(t, 10*time.Second, "status", "--coordinator", api, id, "-o", "json")
	var s statusJSON
	if code == 0 {
		json.Unmarshal([]byte(out), &s)
	}
	return s
}

type checkpointJSON struct {
	ID            int64  `json:"id"`
	Status        string `json:"status"`
	DurationMs    int64  `json:"duration_ms"`
	SizeBytes     int64  `json:"size_bytes"`
	Location      string `json:"location"`
	Unaligned     bool   `json:"unaligned"`
	InFlightBytes int64  `json:"in_flight_bytes"`
	Failure       string `json:"failure"`
}

func checkpointsOf(t *testing.T, api, id string) []checkpointJSON {
	out, stderr, code := weir(t, 10*time.Second, "checkpoints", "--coordinator", api, id, "-o", "json")
	if code != 0 {
		t.Fatalf("weir checkpoints: %s", stderr)
	}
	var cps []checkpointJSON
	if err := json.Unmarshal([]byte(out), &cps); err != nil {
		t.Fatalf("weir checkpoints -o json: %v\n%s", err, out)
	}
	return cps
}

func completed(cps []checkpointJSON) []checkpointJSON {
	var done []checkpointJSON
	for _, c := range cps {
		if c.Status == "COMPLETED" {
			done = append(done, c)
		}
	}
	return done
}

func runDetached(t *testing.T, api string, args ...string) string {
	t.Helper()
	stdout, stderr, code := weir(t, 30*time.Second, append([]string{"run", "--coordinator", api, "--detach"}, args...)...)
	if code != 0 {
		t.Fatalf("weir run: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	return lines[len(lines)-1]
}

func waitFinished(t *testing.T, api, id string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "job "+id+" to finish", func() bool {
		s := jobStatusOf(t, api, id)
		if s.State == "FAILED" || s.State == "CANCELED" {
			t.Fatalf("job ended %s: %s", s.State, s.Error)
		}
		return s.State == "FINISHED"
	})
}

// checkCounts asserts every key appears exactly once with count want.
func checkCounts(t *testing.T, out string, keys, want int) {
	t.Helper()
	lines := committedLines(t, out)
	seen := map[string]bool{}
	for _, l := range lines {
		k, n, _ := strings.Cut(l, "\t")
		if seen[k] {
			t.Fatalf("key %s appears twice (duplicate output)", k)
		}
		seen[k] = true
		if n != strconv.Itoa(want) {
			t.Fatalf("key %s counted %s, want %d", k, n, want)
		}
	}
	if len(lines) != keys {
		t.Fatalf("%d keys in the output, want %d (lost output)", len(lines), keys)
	}
}

// TestExactlyOnceAcrossWorkerKills: keyed counts survive repeated kill -9 of
// workers, restored from checkpoints, with no loss and no duplicate.
func TestExactlyOnceAcrossWorkerKills(t *testing.T) {
	c := startCluster(t, 2, 2)
	const events, keys = 600000, 20000
	out := filepath.Join(c.dir, "out")
	id := runDetached(t, c.api, "-p", "4", "--checkpoint-interval", "500ms", bins.keyedcount, "--",
		"--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--rate", "40000", "--output", out)
	for kill := range 2 {
		waitFor(t, 30*time.Second, "a new completed checkpoint", func() bool {
			return len(completed(checkpointsOf(t, c.api, id))) > kill
		})
		w := c.killWorkerOf(id, 2)
		t.Logf("kill %d: worker %s", kill+1, w)
		waitFor(t, 30*time.Second, "the job to run again", func() bool { return jobStatusOf(t, c.api, id).State == "RUNNING" })
	}
	waitFinished(t, c.api, id, 90*time.Second)
	checkCounts(t, out, keys, events/keys)
	if st := jobStatusOf(t, c.api, id); st.Attempt < 3 {
		t.Fatalf("attempt %d: the kills did not restart the job", st.Attempt)
	}
	for _, cp := range completed(checkpointsOf(t, c.api, id)) {
		if cp.SizeBytes <= 0 || cp.DurationMs <= 0 {
			t.Fatalf("completed checkpoint without size or duration: %+v", cp)
		}
	}
}

// TestCorruptCheckpointFallsBack: with the newest checkpoint's largest SST
// corrupted, the restore falls back to the previous checkpoint and the
// output is still exact.
func TestCorruptCheckpointFallsBack(t *testing.T) {
	c := startCluster(t, 2, 2)
	const events, keys = 400000, 20000
	out := filepath.Join(c.dir, "out")
	id := runDetached(t, c.api, "-p", "4", "--checkpoint-interval", "500ms", bins.keyedcount, "--",
		"--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--rate", "40000", "--output", out)
	waitFor(t, 30*time.Second, "two completed checkpoints", func() bool {
		return len(completed(checkpointsOf(t, c.api, id))) >= 2
	})
	// Freeze checkpointing: kill a worker right after corrupting, so the
	// corrupted checkpoint is the newest one the restore sees.
	newest := completed(checkpointsOf(t, c.api, id))[0]
	sst := largestSST(t, c.store, newest.Location)
	os.WriteFile(sst, []byte("this is not an sst file"), 0o644)
	c.killWorkerOf(id, 2)
	waitFinished(t, c.api, id, 90*time.Second)
	checkCounts(t, out, keys, events/keys)
	log := c.coord.out.String()
	if !strings.Contains(log, "checkpoint cannot be restored; falling back") || !strings.Contains(log, "corrupt") {
		t.Fatalf("the coordinator did not log the fallback from the corrupt checkpoint %d", newest.ID)
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "falling back") {
			t.Logf("coordinator: %s", l[:min(len(l), 400)])
		}
	}
}

// largestSST returns the path of the largest SST file a checkpoint's manifest
// (at a location relative to the store) references.
func largestSST(t *testing.T, store, location string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, location))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	var m weirv1.CheckpointManifest
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var files []*weirv1.StateFile
	for _, s := range m.Subtasks {
		for _, f := range s.Files {
			if strings.HasSuffix(f.Name, ".sst") {
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		t.Fatalf("checkpoint %s has no SST files", location)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Size > files[j].Size })
	return filepath.Join(store, files[0].Object)
}

// TestSavepointRescale: savepoint a running job at -p 4 and stop it, resume
// at -p 2, then 4, then 6 (two generator splits for six subtasks), each
// time running, checkpointing and savepointed again, and end at -p 2: exact
// output.
func TestSavepointRescale(t *testing.T) {
	api := startLocal(t, 2, 4)
	out := filepath.Join(t.TempDir(), "out")
	const events, keys = 480000, 12000
	args := []string{bins.keyedcount, "--", "--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys),
		"--rate", "40000", "--output", out}
	stop := func(id string) string {
		// Every subtask runs and checkpoints at every parallelism, also
		// with fewer source splits than subtasks after a rescale up.
		waitFor(t, 20*time.Second, "the job to run", func() bool { return jobStatusOf(t, api, id).State == "RUNNING" })
		waitFor(t, 20*time.Second, "a completed checkpoint", func() bool { return len(completed(checkpointsOf(t, api, id))) > 0 })
		stdout, stderr, code := weir(t, 60*time.Second, "stop", "--coordinator", api, "--savepoint", id)
		if code != 0 {
			t.Fatalf("weir stop --savepoint: %s", stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		loc := lines[len(lines)-1]
		waitFor(t, 20*time.Second, "the stopped job to end", func() bool { return jobStatusOf(t, api, id).State == "CANCELED" })
		return loc
	}
	id := runDetached(t, api, append([]string{"-p", "4", "--checkpoint-interval", "1s"}, args...)...)
	sp := stop(id)
	if !strings.HasPrefix(sp, "file://") || !strings.HasSuffix(sp, "/_manifest") {
		t.Fatalf("savepoint location %q", sp)
	}
	// Another job with uids count and sink too, but not the source's
	// "events": its state would be dropped, so the savepoint is refused
	// unless that is asked for, and nothing is submitted.
	before, _ := listJobs(t, api)
	_, stderr, code := weir(t, 30*time.Second, "run", "--coordinator", api, "--detach", "--from-savepoint", sp,
		bins.wordcount, "--", "--input", out, "--output", t.TempDir())
	if want := "has state of operators this job does not restore (uids events)"; code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "--allow-non-restored-state") {
		t.Fatalf("wordcount from keyedcount's savepoint: exit %d, stderr %q; want a refusal containing %q", code, stderr, want)
	}
	if after, _ := listJobs(t, api); len(after) != len(before) {
		t.Fatalf("a refused submit left a job: %d jobs, had %d", len(after), len(before))
	}
	// 4 -> 2 -> 4 -> 6 (two generator splits dealt to six subtasks) -> 2.
	for _, p := range []string{"2", "4", "6"} {
		id = runDetached(t, api, append([]string{"-p", p, "--checkpoint-interval", "1s", "--from-savepoint", sp}, args...)...)
		sp = stop(id)
	}
	id = runDetached(t, api, append([]string{"-p", "2", "--checkpoint-interval", "1s", "--from-savepoint", sp}, args...)...)
	waitFinished(t, api, id, 60*time.Second)
	checkCounts(t, out, keys, events/keys)
}

// TestCorruptSavepointFailsTheJob: a job started from a savepoint whose
// files are corrupt cannot fall back to anything older without a silently
// wrong result, so it fails at once with a message naming the savepoint,
// instead of starting from scratch (or spending its restarts).
func TestCorruptSavepointFailsTheJob(t *testing.T) {
	c := startCluster(t, 1, 2)
	args := []string{bins.keyedcount, "--", "--events", "200000", "--keys", "10000", "--rate", "40000",
		"--output", filepath.Join(c.dir, "out")}
	id := runDetached(t, c.api, append([]string{"-p", "2", "--checkpoint-interval", "1s"}, args...)...)
	waitFor(t, 30*time.Second, "a completed checkpoint", func() bool {
		return len(completed(checkpointsOf(t, c.api, id))) >= 1
	})
	stdout, stderr, code := weir(t, 60*time.Second, "stop", "--coordinator", c.api, "--savepoint", id)
	if code != 0 {
		t.Fatalf("weir stop --savepoint: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	sp := lines[len(lines)-1]
	loc := strings.TrimPrefix(sp, "file://"+c.store+"/")
	os.WriteFile(largestSST(t, c.store, loc), []byte("this is not an sst file"), 0o644)

	id = runDetached(t, c.api, append([]string{"-p", "2", "--from-savepoint", sp}, args...)...)
	waitFor(t, 60*time.Second, "the job to fail", func() bool { return jobStatusOf(t, c.api, id).State == "FAILED" })
	st := jobStatusOf(t, c.api, id)
	if want := "savepoint " + sp + " cannot be restored"; !strings.Contains(st.Error, want) || !strings.Contains(st.Error, "cannot succeed on retry") {
		t.Fatalf("error %q, want it to contain %q", st.Error, want)
	}
	if st.Attempt != 1 {
		t.Fatalf("attempt %d: a savepoint that cannot be restored was retried", st.Attempt)
	}
	for _, task := range st.Tasks {
		if task.State == "DEPLOYING" || task.State == "RUNNING" {
			t.Fatalf("the FAILED job shows a task %s: %+v", task.State, st.Tasks)
		}
	}
}

// TestFailingCheckpointsAreVisible: checkpoints that keep failing (here the
// job's checkpoint directory in the store is a file, so nothing can be
// written under it) are reported where users look — `weir status`, its
// JSON, the attached `weir run` — and --fail-on-checkpoint-errors fails (and
// so restarts) a job after that many in a row.
func TestFailingCheckpointsAreVisible(t *testing.T) {
	c := startCluster(t, 1, 2)
	args := []string{"--checkpoint-interval", "300ms", bins.keyedcount, "--",
		"--events", "100000000", "--keys", "50", "--rate", "2000", "--output", t.TempDir()}
	breakStore := func(id string) {
		dir := filepath.Join(c.store, "checkpoints", id)
		os.RemoveAll(dir)
		os.MkdirAll(filepath.Dir(dir), 0o755)
		if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := runDetached(t, c.api, append([]string{"-p", "1"}, args...)...)
	breakStore(id)
	waitFor(t, 30*time.Second, "a checkpoint warning in weir status", func() bool {
		out, _, _ := weir(t, 10*time.Second, "status", "--coordinator", c.api, id)
		return strings.Contains(out, "checkpoints failing: ")
	})
	out, _, _ := weir(t, 10*time.Second, "status", "--coordinator", c.api, id, "-o", "json")
	if !strings.Contains(out, `"checkpoint_warning": "`) {
		t.Fatalf("weir status -o json has no checkpoint_warning: %s", out)
	}
	weir(t, 30*time.Second, "cancel", "--coordinator", c.api, id)

	id = runDetached(t, c.api, append([]string{"-p", "1", "--fail-on-checkpoint-errors", "3"}, args...)...)
	breakStore(id)
	waitFor(t, 60*time.Second, "a restart after 3 failed checkpoints", func() bool {
		return jobStatusOf(t, c.api, id).Attempt > 1
	})
	log := c.coord.out.String()
	if !strings.Contains(log, "3 checkpoints in a row failed (--fail-on-checkpoint-errors 3)") {
		t.Fatalf("the restart was not for the failed checkpoints; coordinator log:\n%s", log[max(0, len(log)-3000):])
	}
	weir(t, 30*time.Second, "cancel", "--coordinator", c.api, id)
}

// TestBoundedJobEndsWithoutWaitingAnInterval: every stage of a bounded job
// waits for a final checkpoint before it finishes (FLIP-147); the leader
// triggers it as soon as a subtask says it waits, not at the next interval.
// With an hour between checkpoints the job would otherwise run for hours.
func TestBoundedJobEndsWithoutWaitingAnInterval(t *testing.T) {
	c := startCluster(t, 2, 2)
	const events, keys = 20000, 100
	out := filepath.Join(c.dir, "out")
	id := runDetached(t, c.api, "-p", "2", "--checkpoint-interval", "1h", bins.keyedcount, "--",
		"--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--output", out)
	waitFinished(t, c.api, id, 90*time.Second)
	checkCounts(t, out, keys, events/keys)
	if n := len(completed(checkpointsOf(t, c.api, id))); n == 0 {
		t.Fatal("the job finished without a completed final checkpoint")
	}
}
