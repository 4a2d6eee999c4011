package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/syncbuf"
)

// logSink collects JSON log records from the job's output.
type logSink struct{ syncbuf.Buffer }

func (s *logSink) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(s, nil)) }

func (s *logSink) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitMsg waits for a record whose message starts with prefix and returns
// that message.
func (s *logSink) waitMsg(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range s.records(t) {
			if msg, _ := r["msg"].(string); strings.HasPrefix(msg, prefix) {
				return msg
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no log line starting with %q; got %v", prefix, s.records(t))
	return ""
}

func start(t *testing.T, spec Spec) *Process {
	t.Helper()
	p, err := Start(spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Stop(0) })
	return p
}

func waitDone(t *testing.T, p *Process) Result {
	t.Helper()
	select {
	case <-p.Done():
		return p.Result()
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit")
		return Result{}
	}
}

func TestExitZero(t *testing.T) {
	var logs logSink
	p := start(t, helperSpec(t, &logs, "exit", "0", "1"))
	r := waitDone(t, p)
	if r.Err != nil || r.ExitCode != 0 || r.Signal != "" {
		t.Fatalf("Result = %+v, want success", r)
	}
}

// TestEnvIsNotInherited: the process's environment is Spec.Env, nothing of
// the worker's.
func TestEnvIsNotInherited(t *testing.T) {
	t.Setenv("WEIR_SUPERVISOR_WORKER_SECRET", "s3cr3t")
	var logs logSink
	spec := helperSpec(t, &logs, "env")
	spec.Env = append(spec.Env, "A=1")
	if r := waitDone(t, start(t, spec)); r.Err != nil {
		t.Fatalf("Result = %+v", r)
	}
	var got []string
	for _, r := range logs.records(t) {
		got = append(got, r["msg"].(string))
	}
	want := []string{helperEnv + "=env", "A=1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("environment %q, want %q", got, want)
	}
}

func TestExitCodeAndStderrTail(t *testing.T) {
	var logs logSink
	spec := helperSpec(t, &logs, "exit", "3", "30")
	spec.TailLines = 5
	r := waitDone(t, start(t, spec))
	if r.ExitCode != 3 || r.Signal != "" || r.Err == nil || r.Err.Error() != "exit status 3" {
		t.Fatalf("Result = %+v, want exit status 3", r)
	}
	want := "line 26\nline 27\nline 28\nline 29\nno newline at the end"
	if r.StderrTail != want {
		t.Fatalf("StderrTail = %q, want %q", r.StderrTail, want)
	}
}

func TestDefaultTail(t *testing.T) {
	var logs logSink
	r := waitDone(t, start(t, helperSpec(t, &logs, "exit", "1", "30")))
	lines := strings.Split(r.StderrTail, "\n")
	if len(lines) != DefaultTailLines || lines[0] != "line 11" {
		t.Fatalf("StderrTail has %d lines starting %q, want %d starting \"line 11\"", len(lines), lines[0], DefaultTailLines)
	}
}

func TestOutputIsLoggedPerLine(t *testing.T) {
	var logs logSink
	waitDone(t, start(t, helperSpec(t, &logs, "exit", "0", "3")))

	byMsg := map[string]map[string]any{}
	for _, r := range logs.records(t) {
		byMsg[r["msg"].(string)] = r
	}
	for msg, stream := range map[string]string{
		"out 0": "stdout", "line 0": "stderr", "line 2": "stderr",
		"no newline at the end": "stderr", // flushed at exit
	} {
		r, ok := byMsg[msg]
		if !ok {
			t.Errorf("no record %q; got %v", msg, logs.records(t))
			continue
		}
		if r["level"] != "INFO" || r["stream"] != stream || r["job"] != "j1" || r["attempt"] != float64(3) {
			t.Errorf("record %q = %v; want INFO, stream=%s, job=j1, attempt=3", msg, r, stream)
		}
	}
	if n := len(logs.records(t)); n != 5 {
		t.Errorf("got %d records, want 5", n)
	}
}

func TestStopGraceful(t *testing.T) {
	var logs logSink
	p := start(t, helperSpec(t, &logs, "sleep"))
	logs.waitMsg(t, "ready")
	p.Stop(10 * time.Second)
	r := p.Result()
	if r.Signal != "SIGTERM" || r.ExitCode != -1 || r.Err == nil || r.Err.Error() != "killed by signal 15 (SIGTERM)" {
		t.Fatalf("Result = %+v, want killed by SIGTERM", r)
	}
	// Again, concurrently, and after exit: all return at once.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { p.Stop(time.Second) })
	}
	wg.Wait()
}

func TestStopEscalatesToKill(t *testing.T) {
	var logs logSink
	p := start(t, helperSpec(t, &logs, "ignore-term"))
	logs.waitMsg(t, "ready")
	const grace = 200 * time.Millisecond
	began := time.Now()
	p.Stop(grace)
	if took := time.Since(began); took < grace {
		t.Fatalf("Stop returned after %v, before the %v grace", took, grace)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before Done")
	}
	r := p.Result()
	if r.Signal != "SIGKILL" || r.ExitCode != -1 || r.Err.Error() != "killed by signal 9 (SIGKILL)" {
		t.Fatalf("Result = %+v, want killed by SIGKILL", r)
	}
}

// gone reports whether pid no longer runs. An exited orphan may stay a
// zombie if nothing reaps it (as under a container's minimal init), which
// counts as gone.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func childPid(t *testing.T, logs *logSink) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(logs.waitMsg(t, "child "), "child "))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func requireProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
}

func TestStopKillsGrandchildren(t *testing.T) {
	requireProc(t)
	var logs logSink
	p := start(t, helperSpec(t, &logs, "spawn", "wait"))
	grandchild := childPid(t, &logs)
	p.Stop(100 * time.Millisecond)
	waitGone(t, grandchild)
}

func TestExitSweepsProcessGroup(t *testing.T) {
	requireProc(t)
	var logs logSink
	p := start(t, helperSpec(t, &logs, "spawn", "exit"))
	r := waitDone(t, p)
	if r.Err != nil {
		t.Fatalf("Result = %+v, want success", r)
	}
	waitGone(t, childPid(t, &logs))
}

// A job process must not outlive a worker killed with SIGKILL. The helper
// plays the worker: it starts a job with Start and is then killed.
func TestJobDiesWithWorker(t *testing.T) {
	requireProc(t)
	var logs logSink
	worker := start(t, helperSpec(t, &logs, "supervise"))
	job := childPid(t, &logs)
	if gone(job) {
		t.Fatalf("job %d not running before the worker is killed", job)
	}
	if err := syscall.Kill(worker.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, worker)
	waitGone(t, job)
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path string
		want       error
		text       string
	}{
		{"missing", filepath.Join(dir, "absent"), ErrNotFound, "no such file"},
		{"not in PATH", "weir-no-such-program", ErrNotFound, "not in PATH"},
		{"no exec bit", write("noexec", "#!/bin/sh\n", 0o644), ErrNotExecutable, "permission denied"},
		{"directory", dir, ErrNotExecutable, "permission denied"},
		{"garbage", write("garbage", "this is not a program\n", 0o755), ErrExecFormat, "exec format error"},
		{"missing interpreter", write("script", "#!/no/such/interpreter\n", 0o755), ErrExecFormat, "interpreter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(Spec{Path: tc.path})
			if err == nil {
				p.Stop(0)
				t.Fatalf("Start(%q) succeeded", tc.path)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Start(%q) err = %v; want %v mentioning %q", tc.path, err, tc.want, tc.text)
			}
		})
	}
	if _, err := Start(Spec{Path: "/bin/true", Dir: filepath.Join(dir, "absent")}); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Start with a missing Dir: err = %v; want a working-directory error", err)
	}
}

func TestResultBeforeDone(t *testing.T) {
	var logs logSink
	p := start(t, helperSpec(t, &logs, "sleep"))
	if r := p.Result(); r != (Result{}) {
		t.Fatalf("Result before Done = %+v, want zero", r)
	}
	if p.Pid() <= 0 {
		t.Fatalf("Pid = %d", p.Pid())
	}
}

func TestLineLoggerSplitsLongLines(t *testing.T) {
	var logs logSink
	l := newLineLogger(logs.logger(), "stderr", 2)
	long := strings.Repeat("x", maxLogLine+10)
	// Written in pieces, as a pipe delivers it.
	for _, chunk := range []string{"a\r\nb", "c\n", long[:100], long[100:] + "\n"} {
		if n, err := l.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	l.flush()
	var msgs []string
	for _, r := range logs.records(t) {
		msgs = append(msgs, r["msg"].(string))
	}
	if len(msgs) != 4 || msgs[0] != "a" || msgs[1] != "bc" || msgs[2] != long[:maxLogLine] || msgs[3] != long[maxLogLine:] {
		t.Fatalf("got %d records (%q, %q, ...), want a, bc and the long line split at %d bytes", len(msgs), msgs[0], msgs[1], maxLogLine)
	}
	tail := strings.Split(l.tailString(), "\n")
	if len(tail) != 2 || tail[0] != long[:maxTailLine]+"…" || tail[1] != long[maxLogLine:] {
		t.Fatalf("tail has %d lines, want the last two with the first truncated to %d bytes", len(tail), maxTailLine)
	}
}
