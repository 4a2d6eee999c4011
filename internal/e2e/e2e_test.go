package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/freeport"
	"github.com/weir-run/weir/internal/syncbuf"
)

// bins holds the binaries built once for all tests.
var bins struct {
	weir, wordcount, keyedcount, eoscount string
}

// staticBuildEnv is the environment of a go build of a job binary: weir run
// accepts only static binaries (no cgo), which run on any worker.
func staticBuildEnv() []string { return append(os.Environ(), "CGO_ENABLED=0") }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-e2e-bin")
	if err != nil {
		panic(err)
	}
	for name, pkg := range map[string]string{"weir": "./cmd/weir", "wordcount": "./jobs/wordcount", "keyedcount": "./jobs/keyedcount", "eoscount": "./jobs/eoscount"} {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = "../.."
		cmd.Env = staticBuildEnv()
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	bins.weir, bins.wordcount, bins.keyedcount = filepath.Join(dir, "weir"), filepath.Join(dir, "wordcount"), filepath.Join(dir, "keyedcount")
	bins.eoscount = filepath.Join(dir, "eoscount")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr is an address for a daemon of the test (freeport: never one
// handed out before, so two daemons started close together cannot get the
// same still unbound port; CI saw coordinator a's --http given etcd e1's
// client port).
func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// daemon is a long-running process of the test, killed at cleanup; its
// output is shown if the test fails.
type daemon struct {
	cmd *exec.Cmd
	out syncbuf.Buffer
}

func startDaemon(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bins.weir, args...)}
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			out := d.out.String()
			if len(out) > 8000 {
				out = "..." + out[len(out)-8000:]
			}
			t.Logf("--- %s output ---\n%s", name, out)
		}
	})
	return d
}

// weir runs a CLI command and returns its stdout, stderr and exit code.
func weir(t *testing.T, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.weir, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("weir %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("weir %v did not finish within %v; stderr:\n%s", args, timeout, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

type jobJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
}

type workerJSON struct {
	ID    string `json:"id"`
	Slots int    `json:"slots"`
	Free  int    `json:"free"`
}

func listJobs(t *testing.T, api string) ([]jobJSON, bool) {
	out, _, code := weir(t, 10*time.Second, "list", "--coordinator", api, "-o", "json")
	if code != 0 {
		return nil, false
	}
	var jobs []jobJSON
	if err := json.Unmarshal([]byte(out), &jobs); err != nil {
		t.Fatalf("weir list -o json is not a JSON array of jobs: %v\n%s", err, out)
	}
	return jobs, true
}

func listWorkers(t *testing.T, api string) []workerJSON {
	out, _, code := weir(t, 10*time.Second, "workers", "--coordinator", api, "-o", "json")
	if code != 0 {
		return nil
	}
	var ws []workerJSON
	if err := json.Unmarshal([]byte(out), &ws); err != nil {
		t.Fatalf("weir workers -o json: %v\n%s", err, out)
	}
	return ws
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// committedLines reads the visible output files of a file sink.
func committedLines(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// startLocal starts `weir local` and waits until it answers.
func startLocal(t *testing.T, workers, slots int) string {
	api, _ := startLocalWeb(t, workers, slots)
	return api
}

// startLocalWeb is startLocal that also returns the web address.
func startLocalWeb(t *testing.T, workers, slots int) (api, httpAddr string) {
	api, httpAddr, _ = startLocalIn(t, t.TempDir(), workers, slots)
	return api, httpAddr
}

// startLocalIn is startLocalWeb with its data in dir; it also returns the
// daemon, for its log.
func startLocalIn(t *testing.T, dir string, workers, slots int) (api, httpAddr string, d *daemon) {
	api, httpAddr = freeAddr(t), freeAddr(t)
	start := time.Now()
	d = startDaemon(t, "weir local", "local", "--data-dir", dir, "--api", api, "--http", httpAddr,
		"--workers", strconv.Itoa(workers), "--slots", strconv.Itoa(slots))
	waitFor(t, 10*time.Second, "weir local to answer weir list", func() bool {
		_, ok := listJobs(t, api)
		return ok
	})
	waitFor(t, 10*time.Second, "workers to register", func() bool { return len(listWorkers(t, api)) == workers })
	t.Logf("weir local ready in %v", time.Since(start).Round(time.Millisecond))
	return api, httpAddr, d
}

func TestWordcountOnLocalCluster(t *testing.T) {
	api := startLocal(t, 2, 2)
	dir := t.TempDir()
	input := filepath.Join(dir, "input.txt")
	rng := rand.New(rand.NewSource(7))
	var text strings.Builder
	want := map[string]int{}
	for range 20000 {
		n := 1 + rng.Intn(12)
		for k := range n {
			w := fmt.Sprintf("w%d", rng.Intn(3000))
			want[w]++
			if k > 0 {
				text.WriteString(strings.Repeat(" ", 1+rng.Intn(2)))
			}
			text.WriteString(w)
		}
		text.WriteString("\n")
	}
	os.WriteFile(input, []byte(text.String()), 0o644)
	out := filepath.Join(dir, "out")

	stdout, stderr, code := weir(t, 60*time.Second, "run", "--coordinator", api, "-p", "2", bins.wordcount, "--", "--input", input, "--output", out)
	if code != 0 {
		t.Fatalf("weir run exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var wantLines []string
	for w, n := range want {
		wantLines = append(wantLines, w+"\t"+strconv.Itoa(n))
	}
	sort.Strings(wantLines)
	got := committedLines(t, out)
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Fatalf("output differs from the reference: got %d lines, want %d", len(got), len(wantLines))
	}
	jobs, _ := listJobs(t, api)
	if len(jobs) != 1 || jobs[0].State != "FINISHED" || jobs[0].ID == "" {
		t.Fatalf("weir list after the run: %+v, want one FINISHED job", jobs)
	}
}

func TestBadInputsGiveOneLineErrors(t *testing.T) {
	api := startLocal(t, 1, 2)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "job.txt")
	os.WriteFile(notExec, []byte("hello"), 0o644)
	notWeir := filepath.Join(dir, "notweir.sh")
	os.WriteFile(notWeir, []byte("#!/bin/sh\necho hello\n"), 0o755)
	dead := freeAddr(t) // nothing listens here
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not executable", []string{"run", "--coordinator", api, notExec, "--"}, "not executable"},
		{"not a static executable", []string{"run", "--coordinator", api, "--platform", "linux/amd64", notWeir, "--"}, "is not a Linux (ELF) executable, but the workers run linux/amd64; build it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build"},
		{"not a weir job", []string{"run", "--coordinator", api, "--platform", "any", notWeir, "--"}, "not a weir job"},
		{"p zero", []string{"run", "--coordinator", api, "-p", "0", bins.wordcount, "--", "--input", "x", "--output", "y"}, "-p"},
		{"dead coordinator", []string{"run", "--coordinator", dead, bins.wordcount, "--", "--input", notExec, "--output", dir}, "cannot reach coordinator"},
		{"unknown job", []string{"status", "--coordinator", api, "nosuchjob"}, "no job"},
		// A savepoint that is not there is refused before anything runs,
		// never a silent start from scratch.
		{"savepoint not a location", []string{"run", "--coordinator", api, "--from-savepoint", "bogus", bins.wordcount, "--", "--input", dir, "--output", dir}, "is not a savepoint location"},
		{"savepoint missing", []string{"run", "--coordinator", api, "--from-savepoint", "file://" + dir + "/savepoints/j/1/_manifest", bins.wordcount, "--", "--input", dir, "--output", dir}, "does not exist"},
		{"savepoint not a manifest", []string{"run", "--coordinator", api, "--from-savepoint", "file://" + dir + "/savepoints/notweir.sh", bins.wordcount, "--", "--input", dir, "--output", dir}, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			stdout, stderr, code := weir(t, 15*time.Second, tc.args...)
			if code == 0 {
				t.Fatalf("exit code 0; stdout %q stderr %q", stdout, stderr)
			}
			// Progress lines (an upload) may come first; the error is
			// one line.
			msg := strings.TrimSpace(stderr)
			msg = strings.TrimPrefix(msg[strings.LastIndex(msg, "\nweir: ")+1:], "\n")
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
				t.Fatalf("stderr = %q, want it to end with one line containing %q", stderr, tc.want)
			}
			if d := time.Since(start); d > 6*time.Second {
				t.Fatalf("took %v, want an answer within 5 s", d)
			}
		})
	}
	if _, ok := listJobs(t, api); !ok {
		t.Fatal("coordinator stopped answering after bad inputs")
	}
}

// TestWorkerKillRestartsJob runs the multi-process topology: weir etcd, one
// coordinator and two workers, each its own process. Killing a worker with
// SIGKILL takes it off the worker list and the job restarts on the other
// worker's slots and finishes with exact counts.
func TestWorkerKillRestartsJob(t *testing.T) {
	dir := t.TempDir()
	client, peer := freeAddr(t), freeAddr(t)
	api, httpAddr := freeAddr(t), freeAddr(t)
	startDaemon(t, "etcd", "etcd", "--data-dir", filepath.Join(dir, "etcd"), "--client", client, "--peer", peer)
	startDaemon(t, "coordinator", "coordinator", "--etcd", client, "--store", "file://"+filepath.Join(dir, "store"),
		"--api", api, "--http", httpAddr)
	w1 := startDaemon(t, "worker-1", "worker", "--etcd", client, "--slots", "4", "--data-dir", filepath.Join(dir, "w1"), "--id", "w1")
	startDaemon(t, "worker-2", "worker", "--etcd", client, "--slots", "4", "--data-dir", filepath.Join(dir, "w2"), "--id", "w2")
	waitFor(t, 20*time.Second, "two workers", func() bool { return len(listWorkers(t, api)) == 2 })

	out := filepath.Join(dir, "out")
	const events, keys = 60000, 50
	stdout, stderr, code := weir(t, 20*time.Second, "run", "--coordinator", api, "-p", "4", "--detach", bins.keyedcount,
		"--", "--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--rate", "20000", "--output", out)
	if code != 0 {
		t.Fatalf("weir run --detach exited %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	id := lines[len(lines)-1]

	type status struct {
		State string `json:"state"`
		Tasks []struct {
			Worker string `json:"worker"`
			State  string `json:"state"`
		} `json:"tasks"`
	}
	getStatus := func() status {
		out, _, code := weir(t, 10*time.Second, "status", "--coordinator", api, id, "-o", "json")
		var s status
		if code == 0 {
			json.Unmarshal([]byte(out), &s)
		}
		return s
	}
	waitFor(t, 20*time.Second, "the job to run on both workers", func() bool {
		s := getStatus()
		on := map[string]bool{}
		for _, task := range s.Tasks {
			on[task.Worker] = true
		}
		return s.State == "RUNNING" && on["w1"] && on["w2"]
	})
	time.Sleep(500 * time.Millisecond) // let records flow
	killed := time.Now()
	w1.cmd.Process.Signal(syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the killed worker to leave weir workers", func() bool {
		ws := listWorkers(t, api)
		return len(ws) == 1 && ws[0].ID == "w2"
	})
	t.Logf("worker gone from the list %v after kill -9", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "the job to finish", func() bool {
		s := getStatus()
		if s.State == "FAILED" || s.State == "CANCELED" {
			t.Fatalf("job ended %s", s.State)
		}
		return s.State == "FINISHED"
	})
	got := committedLines(t, out)
	if len(got) != keys {
		t.Fatalf("got %d keys, want %d", len(got), keys)
	}
	for _, l := range got {
		k, n, _ := strings.Cut(l, "\t")
		if n != strconv.Itoa(events/keys) {
			t.Fatalf("key %s counted %s, want %d (exactly once after the restart)", k, n, events/keys)
		}
	}
	if _, ok := listJobs(t, api); !ok {
		t.Fatal("coordinator stopped serving")
	}
}

func jobState(t *testing.T, api, id string) (state, errText string) {
	out, _, code := weir(t, 10*time.Second, "status", "--coordinator", api, id, "-o", "json")
	if code != 0 {
		return "", ""
	}
	var s struct{ State, Error string }
	json.Unmarshal([]byte(out), &s)
	return s.State, s.Error
}

func TestCancelStopsARunningJob(t *testing.T) {
	api := startLocal(t, 2, 2)
	stdout, stderr, code := weir(t, 20*time.Second, "run", "--coordinator", api, "-p", "2", "--detach", bins.keyedcount,
		"--", "--events", "100000000", "--keys", "10", "--rate", "1000", "--output", t.TempDir())
	if code != 0 {
		t.Fatalf("run: %s", stderr)
	}
	id := strings.TrimSpace(stdout[strings.LastIndex(strings.TrimSpace(stdout), "\n")+1:])
	waitFor(t, 20*time.Second, "RUNNING", func() bool { s, _ := jobState(t, api, id); return s == "RUNNING" })
	if _, stderr, code := weir(t, 10*time.Second, "cancel", "--coordinator", api, id); code != 0 {
		t.Fatalf("cancel: %s", stderr)
	}
	waitFor(t, 15*time.Second, "CANCELED", func() bool { s, _ := jobState(t, api, id); return s == "CANCELED" })
	waitFor(t, 10*time.Second, "the slots to be free again", func() bool {
		for _, w := range listWorkers(t, api) {
			if w.Free != w.Slots {
				return false
			}
		}
		return true
	})
}

// A job whose task fails every time ends FAILED once its restart budget is
// spent, and weir run reports the task's own error text.
func TestFailingJobReportsItsError(t *testing.T) {
	api := startLocal(t, 1, 2)
	missing := filepath.Join(t.TempDir(), "no-such-input.txt")
	// A missing input cannot appear on retry: the job fails at once,
	// with the default ten restarts left.
	_, stderr, code := weir(t, 60*time.Second, "run", "--coordinator", api, bins.wordcount,
		"--", "--input", missing, "--output", t.TempDir())
	if code == 0 {
		t.Fatal("weir run of a failing job exited 0")
	}
	if !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, "input "+missing+" does not exist") || !strings.Contains(stderr, "cannot succeed on retry") {
		t.Fatalf("stderr does not report the failure and its cause:\n%s", stderr)
	}
	jobs, _ := listJobs(t, api)
	if len(jobs) != 1 || jobs[0].State != "FAILED" {
		t.Fatalf("jobs: %+v", jobs)
	}
}

// TestStandbyCoordinator: a second coordinator waits as a standby, the CLI
// reaches the leader through it, and it takes over when the leader is
// killed; workers follow.
func TestStandbyCoordinator(t *testing.T) {
	dir := t.TempDir()
	client, peer := freeAddr(t), freeAddr(t)
	apiA, apiB := freeAddr(t), freeAddr(t)
	webA, webB := freeAddr(t), freeAddr(t)
	store := "file://" + filepath.Join(dir, "store")
	startDaemon(t, "etcd", "etcd", "--data-dir", filepath.Join(dir, "etcd"), "--client", client, "--peer", peer)
	a := startDaemon(t, "coordinator-a", "coordinator", "--etcd", client, "--store", store, "--api", apiA, "--http", webA, "--id", "a")
	waitFor(t, 20*time.Second, "coordinator a to lead", func() bool { _, ok := listJobs(t, apiA); return ok })
	startDaemon(t, "coordinator-b", "coordinator", "--etcd", client, "--store", store, "--api", apiB, "--http", webB, "--id", "b")
	startDaemon(t, "worker", "worker", "--etcd", client, "--slots", "2", "--data-dir", filepath.Join(dir, "w"), "--id", "w1")
	waitFor(t, 20*time.Second, "the worker", func() bool { return len(listWorkers(t, apiA)) == 1 })

	// The standby forwards the CLI to the leader: any coordinator will do,
	// uploads included.
	waitFor(t, 10*time.Second, "the worker, listed through the standby", func() bool { return len(listWorkers(t, apiB)) == 1 })
	// The standby's status page says who leads and links to its page.
	standbyPage(t, webB, webA)
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte("a b a\n"), 0o644)
	out := filepath.Join(dir, "out")
	if _, stderr, code := weir(t, 60*time.Second, "run", "--coordinator", apiB, bins.wordcount, "--", "--input", in, "--output", out); code != 0 {
		t.Fatalf("weir run through the standby: %s", stderr)
	}
	if got := strings.Join(committedLines(t, out), ","); got != "a\t2,b\t1" {
		t.Fatalf("output %q", got)
	}

	a.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	waitFor(t, 20*time.Second, "coordinator b to lead", func() bool { _, ok := listJobs(t, apiB); return ok })
	t.Logf("standby led %v after the leader's kill -9", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "the worker to register with the new leader", func() bool { return len(listWorkers(t, apiB)) == 1 })
}
