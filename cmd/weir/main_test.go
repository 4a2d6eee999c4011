package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weir-run/weir/internal/taskenv"
	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// testGraph is what the fake job scripts describe.
var testGraph = &weirv1.JobGraph{
	Name: "fake", MaxParallelism: 128,
	Vertices: []*weirv1.Vertex{
		{Id: 0, Name: "Source: lines", Parallelism: 2, IsSource: true, Operators: []*weirv1.Operator{{Uid: "lines", Name: "lines", Kind: "source"}}},
		{Id: 1, Name: "Sink: out", Parallelism: 2, Operators: []*weirv1.Operator{{Uid: "sink", Name: "out", Kind: "sink"}}},
	},
	Edges: []*weirv1.Edge{{Source: 0, Target: 1, Partitioning: weirv1.Partitioning_PARTITIONING_HASH}},
}

// writeScript writes an executable file into dir.
func writeScript(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// jobScript is a shell script that describes testGraph, after checking it
// was called in describe mode with the expected parallelism.
func jobScript(t *testing.T, dir string) string {
	t.Helper()
	g, err := protojson.Marshal(testGraph)
	if err != nil {
		t.Fatal(err)
	}
	return writeScript(t, dir, "job", fmt.Sprintf(`#!/bin/sh
[ "$1" = --mode=describe ] || { echo "error: bad mode $1" >&2; exit 2; }
case "$2" in --parallelism=[1-9]*) ;; *) echo "error: bad parallelism $2" >&2; exit 2;; esac
[ "$3" = -- ] || { echo "error: no -- but $3" >&2; exit 2; }
echo %s
echo '%s'
`, taskenv.DescribeHeader, g), 0o755)
}

// weir runs the weir command line in-process.
func weir(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = execute(ctx, args, streams{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: testEnv})
	return code, out.String(), errb.String()
}

// testEnv is the environment of commands run by weir: empty, but for
// $WEIR_PLATFORM=any, since these tests submit shell scripts as job
// binaries (TestPlatformCheck checks the platform check itself).
func testEnv(k string) string {
	if k == platformEnv {
		return "any"
	}
	return ""
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCheckBinary(t *testing.T) {
	dir := t.TempDir()
	exe := writeScript(t, dir, "exe", "#!/bin/sh\n", 0o755)
	plain := writeScript(t, dir, "plain", "#!/bin/sh\n", 0o644)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"ok", exe, ""},
		{"missing", filepath.Join(dir, "nope"), filepath.Join(dir, "nope") + " does not exist"},
		{"directory", dir, dir + " is a directory, not a job binary"},
		{"not executable", plain, fmt.Sprintf("%s is not executable (chmod +x %s)", plain, plain)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			abs, err := checkBinary(tc.path)
			if tc.want == "" {
				if err != nil || abs != tc.path {
					t.Fatalf("checkBinary = %q, %v; want %q, nil", abs, err, tc.path)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("checkBinary error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		script  string // body; "" means jobScript
		timeout time.Duration
		want    string // error; "" means testGraph
	}{
		{name: "graph"},
		{name: "prints nothing", script: "#!/bin/sh\nexit 0\n",
			want: "X is not a weir job: it did not describe a job graph (is it built with sdk.Main?)"},
		{name: "prints something else", script: "#!/bin/sh\necho hello\n",
			want: "X is not a weir job: it did not describe a job graph (is it built with sdk.Main?)"},
		{name: "rejects arguments", script: "#!/bin/sh\necho starting >&2\necho 'error: wordcount needs --input and --output' >&2\necho >&2\nexit 2\n",
			want: "X rejected its arguments: wordcount needs --input and --output"},
		{name: "fails silently", script: "#!/bin/sh\nexit 3\n",
			want: "X exited with status 3 without describing a job graph"},
		{name: "panics", script: "#!/bin/sh\necho 'panic: boom' >&2\necho '\tmain.go:3 +0x1d' >&2\nexit 2\n",
			want: "X crashed while describing its job graph: panic: boom"},
		{name: "not a program", script: "\x7fELF garbage",
			want: "X is not a program for this platform (linux/amd64)"},
		{name: "bad graph", script: "#!/bin/sh\necho " + taskenv.DescribeHeader + "\necho '{not json'\n",
			want: "X printed an invalid job graph"},
		{name: "header only", script: "#!/bin/sh\necho " + taskenv.DescribeHeader + "\n",
			want: `X printed "weir-jobgraph/v1" but no job graph after it`},
		{name: "hangs", script: "#!/bin/sh\nsleep 30\n", timeout: 300 * time.Millisecond,
			want: "X did not describe its job graph within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bin string
			if tc.script == "" {
				bin = jobScript(t, t.TempDir())
			} else {
				bin = writeScript(t, dir, strings.ReplaceAll(tc.name, " ", "-"), tc.script, 0o755)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			start := time.Now()
			g, err := describe(context.Background(), bin, "X", 2, []string{"--input", "a"}, timeout)
			if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
				t.Errorf("describe took %v with a timeout of %v", elapsed, timeout)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !protoEqualJSON(t, g, testGraph) {
					t.Fatalf("graph = %v, want %v", g, testGraph)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("describe error = %v, want one line starting %q", err, tc.want)
			}
		})
	}
}

func protoEqualJSON(t *testing.T, a, b *weirv1.JobGraph) bool {
	t.Helper()
	ja, _ := protojson.Marshal(a)
	jb, _ := protojson.Marshal(b)
	var va, vb any
	json.Unmarshal(ja, &va)
	json.Unmarshal(jb, &vb)
	return fmt.Sprint(va) == fmt.Sprint(vb)
}

// TestRunChecksBeforeConnecting: every check of the binary fails with one
// line and exit code 1 (2 for usage) before any coordinator is contacted;
// the address given is closed, so a dial would say so instead.
func TestRunChecksBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	addr := closedAddr(t)
	plain := writeScript(t, dir, "plain", "#!/bin/sh\n", 0o644)
	job := jobScript(t, dir)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"parallelism 0", []string{"-p", "0", job}, 2, "weir: -p must be at least 1, got 0\n"},
		{"no binary", []string{}, 2, "weir: weir run needs a job BINARY before \"--\" (see 'weir run --help')\n"},
		{"missing", []string{filepath.Join(dir, "nope")}, 1, "weir: " + filepath.Join(dir, "nope") + " does not exist\n"},
		{"directory", []string{dir}, 1, "weir: " + dir + " is a directory, not a job binary\n"},
		{"not executable", []string{plain}, 1, fmt.Sprintf("weir: %s is not executable (chmod +x %s)\n", plain, plain)},
		{"unknown flag", []string{"--bogus", job}, 2, "weir: unknown flag: --bogus (see 'weir run --help')\n"},
		{"negative restarts", []string{"--max-restarts", "-1", job}, 2, "weir: --max-restarts must be at least 0, got -1\n"},
		{"unknown strategy", []string{"--restart-strategy", "sometimes", job}, 2, "weir: --restart-strategy must be none, fixed-delay, exponential-delay or failure-rate, got \"sometimes\"\n"},
		{"strategy option alone", []string{"--restart-jitter", "0.5", job}, 2, "weir: --restart-jitter needs --restart-strategy\n"},
		{"jitter over 1", []string{"--restart-strategy", "exponential-delay", "--restart-jitter", "2", job}, 2, "weir: --restart-jitter must be within [0, 1], got 2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := weir(context.Background(), append([]string{"run", "--coordinator", addr}, tc.args...)...)
			if code != tc.code || stderr != tc.want || stdout != "" {
				t.Fatalf("weir run %q = %d, stdout %q, stderr %q; want %d, stderr %q", tc.args, code, stdout, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestUnreachableCoordinator(t *testing.T) {
	addr := closedAddr(t)
	job := jobScript(t, t.TempDir())
	want := fmt.Sprintf("weir: cannot reach coordinator at %s: connection refused\n", addr)
	for _, args := range [][]string{
		{"run", "--coordinator", addr, job, "--", "--input", "x"},
		{"list", "--coordinator", addr},
		{"status", "--coordinator", addr, "j1"},
		{"cancel", "--coordinator", addr, "j1"},
		{"workers", "--coordinator", addr, "-o", "json"},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := weir(context.Background(), args...)
			if elapsed := time.Since(start); elapsed >= 5*time.Second {
				t.Errorf("took %v, want under 5s", elapsed)
			}
			if code != 1 || stderr != want || stdout != "" {
				t.Fatalf("weir %q = %d, stdout %q, stderr %q; want 1, %q", args, code, stdout, stderr, want)
			}
		})
	}
}

// TestSilentCoordinator: an address that accepts connections but never
// speaks gRPC is reported within 5 s.
func TestSilentCoordinator(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	start := time.Now()
	code, _, stderr := weir(context.Background(), "list", "--coordinator", l.Addr().String())
	if elapsed := time.Since(start); elapsed >= 5*time.Second {
		t.Errorf("took %v, want under 5s", elapsed)
	}
	want := fmt.Sprintf("weir: cannot reach coordinator at %s: it accepted the connection but did not answer (is it a weir coordinator? if it uses TLS, set --tls-ca)\n", l.Addr())
	if code != 1 || stderr != want {
		t.Fatalf("list = %d %q, want 1 %q", code, stderr, want)
	}
}

func TestCoordinatorFromEnv(t *testing.T) {
	addr := closedAddr(t)
	var errb bytes.Buffer
	code := execute(context.Background(), []string{"list"}, streams{stdout: io.Discard, stderr: &errb,
		getenv: func(k string) string {
			if k == coordinatorEnv {
				return addr
			}
			return ""
		}})
	if code != 1 || !strings.Contains(errb.String(), "at "+addr+":") {
		t.Fatalf("list with $%s=%s: %d %q", coordinatorEnv, addr, code, errb.String())
	}
}

// fakeJobs is a JobService that records what it was sent.
type fakeJobs struct {
	weirv1.UnimplementedJobServiceServer

	mu        sync.Mutex
	binaries  map[string][]byte
	uploads   int
	specs     []*weirv1.JobSpec
	submitErr error
	// states is the sequence GetJob walks through for a submitted job; the
	// last one repeats.
	states   []weirv1.JobState
	polls    int
	jobError string
	jobs     map[string]*weirv1.JobStatus
	workers  []*weirv1.WorkerInfo
	// leaderAt, when set, makes the fake a standby pointing there.
	leaderAt string
	// savepointErr is TriggerSavepoint's answer, when set; savepoint 12
	// at file:///sp/12 otherwise.
	savepointErr error
}

func (f *fakeJobs) TriggerSavepoint(context.Context, *weirv1.TriggerSavepointRequest) (*weirv1.TriggerSavepointResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.savepointErr != nil {
		return nil, f.savepointErr
	}
	return &weirv1.TriggerSavepointResponse{Location: "file:///sp/12", CheckpointId: 12}, nil
}

func (f *fakeJobs) StatBinary(_ context.Context, req *weirv1.StatBinaryRequest) (*weirv1.StatBinaryResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.binaries[req.GetSha256()]
	return &weirv1.StatBinaryResponse{Exists: ok, Size: int64(len(b))}, nil
}

func (f *fakeJobs) UploadBinary(stream grpc.ClientStreamingServer[weirv1.UploadBinaryRequest, weirv1.UploadBinaryResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "upload must start with a header")
	}
	var data []byte
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(m.GetChunk()) > uploadChunk {
			return status.Errorf(codes.InvalidArgument, "chunk of %d bytes", len(m.GetChunk()))
		}
		data = append(data, m.GetChunk()...)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != h.GetSha256() || int64(len(data)) != h.GetSize() {
		return status.Error(codes.InvalidArgument, "sha256 or size mismatch")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.binaries[h.GetSha256()] = data
	f.uploads++
	return stream.SendAndClose(&weirv1.UploadBinaryResponse{Sha256: h.GetSha256(), Size: h.GetSize()})
}

func (f *fakeJobs) SubmitJob(_ context.Context, req *weirv1.SubmitJobRequest) (*weirv1.SubmitJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.submitErr != nil {
		return nil, f.submitErr
	}
	if _, ok := f.binaries[req.GetSpec().GetBinarySha256()]; !ok {
		return nil, status.Error(codes.FailedPrecondition, "binary not uploaded")
	}
	f.specs = append(f.specs, req.GetSpec())
	return &weirv1.SubmitJobResponse{JobId: fmt.Sprintf("job-%d", len(f.specs))}, nil
}

func (f *fakeJobs) GetJob(_ context.Context, req *weirv1.GetJobRequest) (*weirv1.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[req.GetJobId()]; ok {
		return j, nil
	}
	if !strings.HasPrefix(req.GetJobId(), "job-") || len(f.states) == 0 {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	st := f.states[min(f.polls, len(f.states)-1)]
	f.polls++
	j := &weirv1.JobStatus{Id: req.GetJobId(), Name: "fake", State: st, Attempt: 1}
	if st == weirv1.JobState_JOB_STATE_FAILED {
		j.Error = f.jobError
	}
	return j, nil
}

func (f *fakeJobs) ListJobs(context.Context, *weirv1.ListJobsRequest) (*weirv1.ListJobsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*weirv1.JobStatus
	for _, j := range f.jobs {
		out = append(out, j)
	}
	return &weirv1.ListJobsResponse{Jobs: out}, nil
}

func (f *fakeJobs) CancelJob(_ context.Context, req *weirv1.CancelJobRequest) (*weirv1.CancelJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[req.GetJobId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	return &weirv1.CancelJobResponse{State: weirv1.JobState_JOB_STATE_CANCELING}, nil
}

func (f *fakeJobs) ListWorkers(context.Context, *weirv1.ListWorkersRequest) (*weirv1.ListWorkersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaderAt != "" {
		return nil, status.Errorf(codes.Unavailable, "this coordinator is a standby; the leader is at %s", f.leaderAt)
	}
	return &weirv1.ListWorkersResponse{Workers: f.workers}, nil
}

// serveFake serves f on a loopback port and returns its address.
func serveFake(t *testing.T, f *fakeJobs) string {
	addr, _ := serveFakeStoppable(t, f)
	return addr
}

// serveFakeStoppable is serveFake with a function that kills the server.
func serveFakeStoppable(t *testing.T, f *fakeJobs, opts ...grpc.ServerOption) (string, func()) {
	t.Helper()
	if f.binaries == nil {
		f.binaries = map[string][]byte{}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	weirv1.RegisterJobServiceServer(s, f)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String(), s.Stop
}

func TestRunDetach(t *testing.T) {
	f := &fakeJobs{}
	addr := serveFake(t, f)
	dir := t.TempDir()
	job := jobScript(t, dir)
	// Large enough for more than one upload chunk.
	body, _ := os.ReadFile(job)
	body = append(body, []byte("\n# "+strings.Repeat("x", 3*uploadChunk/2)+"\n")...)
	if err := os.WriteFile(job, body, 0o755); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := weir(context.Background(), "run", "--coordinator", addr, "-p", "3", "--detach", job, "--", "--input", "in")
	if code != 0 {
		t.Fatalf("run = %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if last := lines[len(lines)-1]; last != "job-1" {
		t.Fatalf("last line of stdout = %q, want job-1", last)
	}
	sum := sha256.Sum256(body)
	f.mu.Lock()
	spec := f.specs[0]
	uploaded := f.binaries[hex.EncodeToString(sum[:])]
	f.mu.Unlock()
	if !bytes.Equal(uploaded, body) {
		t.Fatalf("uploaded %d bytes, want the binary's %d", len(uploaded), len(body))
	}
	if spec.GetName() != "fake" || spec.GetParallelism() != 3 || spec.GetBinarySize() != int64(len(body)) ||
		spec.GetBinarySha256() != hex.EncodeToString(sum[:]) || strings.Join(spec.GetArgs(), " ") != "--input in" ||
		spec.GetRestart() != nil || len(spec.GetGraph().GetVertices()) != 2 {
		t.Fatalf("submitted spec %v", spec)
	}

	// The second run finds the binary and does not upload it again; a
	// --name and --max-restarts reach the spec.
	code, stdout, stderr = weir(context.Background(), "run", "--coordinator", addr, "--detach", "--name", "mine", "--max-restarts", "0", job)
	if code != 0 || strings.TrimSpace(stdout) != "job-2" {
		t.Fatalf("second run = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	f.mu.Lock()
	if f.uploads != 1 {
		t.Errorf("%d uploads, want 1", f.uploads)
	}
	if s := f.specs[1]; s.GetName() != "mine" || s.GetRestart() == nil || s.GetRestart().GetMaxRestarts() != 0 {
		t.Errorf("second spec %v", s)
	}
	f.mu.Unlock()

	// A restart strategy and its options reach the spec.
	code, _, stderr = weir(context.Background(), "run", "--coordinator", addr, "--detach", "--restart-strategy", "failure-rate",
		"--max-restarts", "2", "--failure-rate-interval", "30s", "--restart-delay", "2s", job)
	if code != 0 {
		t.Fatalf("run with a restart strategy = %d: %s", code, stderr)
	}
	f.mu.Lock()
	want := &weirv1.RestartPolicy{Strategy: weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE, MaxRestarts: 2, DelayMs: 2000, FailureIntervalMs: 30000}
	if got := f.specs[2].GetRestart(); !proto.Equal(got, want) {
		t.Errorf("restart policy %v, want %v", got, want)
	}
	f.mu.Unlock()
	code, _, stderr = weir(context.Background(), "run", "--coordinator", addr, "--detach", "--restart-strategy", "exponential-delay", job)
	if code != 0 {
		t.Fatalf("run with exponential-delay = %d: %s", code, stderr)
	}
	want = &weirv1.RestartPolicy{Strategy: weirv1.RestartStrategy_RESTART_STRATEGY_EXPONENTIAL_DELAY, MaxRestarts: 10, InitialBackoffMs: 1000,
		MaxBackoffMs: 30000, Multiplier: 2, Jitter: 0.1, ResetThresholdMs: 3600000}
	f.mu.Lock()
	if got := f.specs[3].GetRestart(); !proto.Equal(got, want) {
		t.Errorf("restart policy %v, want %v", got, want)
	}
	f.mu.Unlock()
}

func TestRunWaits(t *testing.T) {
	const (
		scheduled = weirv1.JobState_JOB_STATE_SCHEDULED
		running   = weirv1.JobState_JOB_STATE_RUNNING
		finished  = weirv1.JobState_JOB_STATE_FINISHED
		failed    = weirv1.JobState_JOB_STATE_FAILED
		canceled  = weirv1.JobState_JOB_STATE_CANCELED
	)
	job := jobScript(t, t.TempDir())
	for _, tc := range []struct {
		name     string
		states   []weirv1.JobState
		code     int
		contains []string
	}{
		{"finished", []weirv1.JobState{scheduled, running, running, finished}, 0,
			[]string{"submitted job job-1\n", "job job-1: SCHEDULED\n", "job job-1: RUNNING\n", "job job-1: FINISHED\n"}},
		{"failed", []weirv1.JobState{running, failed}, 1,
			[]string{"job job-1: FAILED\n", "weir: job job-1 failed: boom: disk full\n"}},
		{"canceled", []weirv1.JobState{canceled}, 1, []string{"weir: job job-1 was canceled\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveFake(t, &fakeJobs{states: tc.states, jobError: "boom:\ndisk full"})
			code, _, stderr := weir(context.Background(), "run", "--coordinator", addr, job)
			if code != tc.code {
				t.Fatalf("run = %d, want %d; stderr %q", code, tc.code, stderr)
			}
			for _, c := range tc.contains {
				if !strings.Contains(stderr, c) {
					t.Errorf("stderr %q lacks %q", stderr, c)
				}
			}
			if n := strings.Count(stderr, "RUNNING"); n > 1 {
				t.Errorf("RUNNING printed %d times, want once per change: %q", n, stderr)
			}
		})
	}
}

func TestRunInterruptLeavesJobRunning(t *testing.T) {
	addr := serveFake(t, &fakeJobs{states: []weirv1.JobState{weirv1.JobState_JOB_STATE_RUNNING}})
	job := jobScript(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	code, _, stderr := weir(ctx, "run", "--coordinator", addr, job)
	if code != 130 {
		t.Fatalf("run = %d, want 130; stderr %q", code, stderr)
	}
	if want := "weir cancel --coordinator " + addr + " job-1"; !strings.Contains(stderr, want) {
		t.Fatalf("stderr %q does not say %q", stderr, want)
	}
}

func TestWarnRelativePaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("in.txt", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	warnRelativePaths(&b, []string{"--input", "in.txt", "--output=out", "--x=in.txt", "/abs", ".", "--flag"})
	if got := strings.Count(b.String(), "weir: note: in.txt is relative"); got != 2 {
		t.Fatalf("warnings:\n%s", b.String())
	}
}

func TestRunServerErrors(t *testing.T) {
	job := jobScript(t, t.TempDir())
	addr := serveFake(t, &fakeJobs{submitErr: status.Error(codes.InvalidArgument, "job graph: vertex 1 has parallelism 300 above max parallelism 128")})
	code, _, stderr := weir(context.Background(), "run", "--coordinator", addr, "--detach", job)
	if want := "weir: job graph: vertex 1 has parallelism 300 above max parallelism 128\n"; code != 1 || !strings.HasSuffix(stderr, "\n"+want) {
		t.Fatalf("run = %d, %q; want 1, %q", code, stderr, want)
	}
}

func TestListStatusCancelWorkers(t *testing.T) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f := &fakeJobs{
		jobs: map[string]*weirv1.JobStatus{
			"j1": {Id: "j1", Name: "wordcount", State: weirv1.JobState_JOB_STATE_RUNNING, Attempt: 2, Restarts: 1,
				Error: "worker lost", Message: "", CreatedUnixMs: created.UnixMilli(),
				Tasks: []*weirv1.TaskInfo{
					{VertexId: 0, Vertex: "Source: lines", Subtask: 1, Worker: "worker-1", Pid: 42, State: weirv1.TaskState_TASK_STATE_RUNNING},
				}},
		},
		workers: []*weirv1.WorkerInfo{{Id: "worker-1", Host: "127.0.0.1", Slots: 4, Free: 3,
			LastHeartbeatUnixMs: time.Now().UnixMilli(), RssBytes: 10 << 20}},
	}
	addr := serveFake(t, f)
	ctx := context.Background()

	code, stdout, stderr := weir(ctx, "list", "--coordinator", addr, "-o", "json")
	if code != 0 {
		t.Fatalf("list: %d %q", code, stderr)
	}
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(stdout), &jobs); err != nil {
		t.Fatalf("list -o json: %v: %q", err, stdout)
	}
	if len(jobs) != 1 || jobs[0]["id"] != "j1" || jobs[0]["state"] != "RUNNING" || jobs[0]["attempt"] != 2.0 ||
		jobs[0]["restarts"] != 1.0 || jobs[0]["error"] != "worker lost" || jobs[0]["created"] != "2025-03-01T12:00:00.000Z" {
		t.Fatalf("list -o json = %v", jobs)
	}
	if _, err := time.Parse(time.RFC3339, jobs[0]["created"].(string)); err != nil {
		t.Errorf("created is not RFC3339: %v", err)
	}

	code, stdout, _ = weir(ctx, "list", "--coordinator", addr)
	if code != 0 || !strings.HasPrefix(stdout, "ID  NAME       STATE    ATTEMPT  RESTARTS") || !strings.Contains(stdout, "j1  wordcount  RUNNING  2        1") {
		t.Fatalf("list table:\n%s", stdout)
	}

	code, stdout, stderr = weir(ctx, "status", "--coordinator", addr, "j1", "-o", "json")
	if code != 0 {
		t.Fatalf("status: %d %q", code, stderr)
	}
	var st struct {
		ID, State string
		Tasks     []map[string]any
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != "j1" || st.State != "RUNNING" || len(st.Tasks) != 1 || st.Tasks[0]["vertex"] != "Source: lines" ||
		st.Tasks[0]["vertex_id"] != 0.0 || st.Tasks[0]["subtask"] != 1.0 || st.Tasks[0]["worker"] != "worker-1" ||
		st.Tasks[0]["pid"] != 42.0 || st.Tasks[0]["state"] != "RUNNING" {
		t.Fatalf("status -o json = %s", stdout)
	}
	code, stdout, _ = weir(ctx, "status", "--coordinator", addr, "j1")
	if code != 0 || !strings.Contains(stdout, "State:") || !strings.Contains(stdout, "0: Source: lines  1        worker-1  42   RUNNING") {
		t.Fatalf("status table:\n%s", stdout)
	}

	code, _, stderr = weir(ctx, "status", "--coordinator", addr, "nope")
	if code != 1 || stderr != "weir: no job nope\n" {
		t.Fatalf("status of a missing job = %d %q", code, stderr)
	}
	code, stdout, _ = weir(ctx, "cancel", "--coordinator", addr, "j1")
	if code != 0 || stdout != "job j1: CANCELING\n" {
		t.Fatalf("cancel = %d %q", code, stdout)
	}
	code, _, stderr = weir(ctx, "cancel", "--coordinator", addr, "nope")
	if code != 1 || stderr != "weir: no job nope\n" {
		t.Fatalf("cancel of a missing job = %d %q", code, stderr)
	}

	code, stdout, _ = weir(ctx, "workers", "--coordinator", addr, "-o", "json")
	var workers []map[string]any
	if err := json.Unmarshal([]byte(stdout), &workers); code != 0 || err != nil {
		t.Fatalf("workers -o json = %d %v %q", code, err, stdout)
	}
	if len(workers) != 1 || workers[0]["id"] != "worker-1" || workers[0]["slots"] != 4.0 || workers[0]["free"] != 3.0 ||
		workers[0]["rss_bytes"] != float64(10<<20) || workers[0]["last_heartbeat"] == "" || workers[0]["host"] != "127.0.0.1" {
		t.Fatalf("workers -o json = %v", workers)
	}
	code, stdout, _ = weir(ctx, "workers", "--coordinator", addr)
	if code != 0 || !strings.Contains(stdout, "worker-1") || !strings.Contains(stdout, "10.0 MiB") {
		t.Fatalf("workers table:\n%s", stdout)
	}

	// An empty list is an empty JSON array, not null.
	f.mu.Lock()
	f.jobs = nil
	f.mu.Unlock()
	if code, stdout, _ = weir(ctx, "list", "--coordinator", addr, "-o", "json"); code != 0 || stdout != "[]\n" {
		t.Fatalf("empty list -o json = %d %q", code, stdout)
	}
	if code, _, stderr = weir(ctx, "list", "--coordinator", addr, "-o", "yaml"); code != 2 {
		t.Fatalf("list -o yaml = %d %q", code, stderr)
	}
}

func TestDialReason(t *testing.T) {
	for in, want := range map[string]string{
		`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`: "connection refused",
		`connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.1:7070: i/o timeout"`:               "i/o timeout",
		`something else`: "something else",
	} {
		if got := dialReason(in); got != want {
			t.Errorf("dialReason(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDescribeWordcount describes the real wordcount job, built from this
// repository.
func TestDescribeWordcount(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a job binary")
	}
	bin := filepath.Join(t.TempDir(), "wordcount")
	out, err := exec.Command("go", "build", "-o", bin, "../../jobs/wordcount").CombinedOutput()
	if err != nil {
		// The SDK is written concurrently with this command; a broken
		// build there is not this package's failure.
		t.Skipf("go build ./jobs/wordcount: %v\n%s", err, out)
	}
	g, err := describe(context.Background(), bin, "./wordcount", 2, []string{"--input", "in", "--output", "out"}, describeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if g.GetName() == "" || len(g.GetVertices()) == 0 {
		t.Fatalf("graph %v", g)
	}
	_, err = describe(context.Background(), bin, "./wordcount", 2, nil, describeTimeout)
	if want := "./wordcount rejected its arguments: wordcount needs --input and --output"; err == nil || err.Error() != want {
		t.Fatalf("describe without arguments: %v, want %q", err, want)
	}
}

// With several --coordinator addresses, a dead one is skipped: calls go to
// the next that answers, and stay there.
func TestCoordinatorListFailsOver(t *testing.T) {
	dead := freeLoopbackAddr(t)
	live := serveFake(t, &fakeJobs{workers: []*weirv1.WorkerInfo{{Id: "w1", Slots: 4}}})
	for range 2 {
		code, stdout, stderr := weir(context.Background(), "workers", "--coordinator", dead+","+live, "-o", "json")
		if code != 0 || !strings.Contains(stdout, `"w1"`) {
			t.Fatalf("workers through %s,%s = %d, stdout %q, stderr %q", dead, live, code, stdout, stderr)
		}
	}
	code, _, stderr := weir(context.Background(), "workers", "--coordinator", dead)
	if code == 0 || !strings.Contains(stderr, dead) {
		t.Fatalf("a dead coordinator alone = %d, stderr %q", code, stderr)
	}
}

// A client listing a standby first follows it to the leader; when the
// leader dies and the standby takes over, the same client's next call
// reaches it (the first address is retried too), and when every listed
// coordinator is down the error names them, not the one dialled first.
func TestCoordinatorListFollowsFailover(t *testing.T) {
	standby := &fakeJobs{workers: []*weirv1.WorkerInfo{{Id: "via-a", Slots: 1}}}
	a, stopA := serveFakeStoppable(t, standby)
	b, stopB := serveFakeStoppable(t, &fakeJobs{workers: []*weirv1.WorkerInfo{{Id: "via-b", Slots: 1}}})
	standby.mu.Lock()
	standby.leaderAt = b
	standby.mu.Unlock()
	c, err := dial(a+","+b, security{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	list := func() (string, error) {
		resp, err := unary(ctx, c, c.jobs.ListWorkers, &weirv1.ListWorkersRequest{})
		if err != nil {
			return "", err
		}
		return resp.GetWorkers()[0].GetId(), nil
	}
	if got, err := list(); err != nil || got != "via-b" {
		t.Fatalf("through the standby: %q, %v; want via-b", got, err)
	}
	stopB()
	standby.mu.Lock()
	standby.leaderAt = "" // it won the election
	standby.mu.Unlock()
	if got, err := list(); err != nil || got != "via-a" {
		t.Fatalf("after the leader died: %q, %v; want via-a", got, err)
	}
	stopA()
	_, err = list()
	if want := "cannot reach coordinator at " + a + ", " + b + ": connection refused"; err == nil || err.Error() != want {
		t.Fatalf("every coordinator down: %v, want %q", err, want)
	}
}

// freeLoopbackAddr is an address nothing listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestFlagsCommand: the hidden "weir flags" lists every command's flags,
// inherited ones and shorthands included, and marks deprecated ones.
func TestFlagsCommand(t *testing.T) {
	var out, errb bytes.Buffer
	code := execute(context.Background(), []string{"flags"}, streams{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
	if code != 0 {
		t.Fatalf("weir flags: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	for _, want := range []string{"run --parallelism", "run -p", "run --coordinator", "local --kafka-addr", "coordinator --worker-timeout", "coordinator --heartbeat-timeout deprecated", "tail --limit"} {
		if !slices.Contains(lines, want) {
			t.Errorf("weir flags lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "flags ") {
		t.Errorf("weir flags lists itself:\n%s", out.String())
	}
}
