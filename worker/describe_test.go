package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/describe"
	"github.com/weir-run/weir/internal/taskenv"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"github.com/weir-run/weir/worker/bincache"
)

// describeHelperEnv makes the test binary, run by a worker's describe,
// act as a job binary in describe mode (see describeHelper). It starts
// with LC_ so that the job environment passes it.
const describeHelperEnv = "LC_WEIR_WORKER_DESCRIBE_HELPER"

// helperGraph is what the helper describes.
var helperGraph = &weirv1.JobGraph{Name: "helper", MaxParallelism: 128, Vertices: []*weirv1.Vertex{
	{Id: 0, Name: "Source: s", Parallelism: 3, IsSource: true, Operators: []*weirv1.Operator{{Uid: "s", Name: "s", Kind: "source"}}},
}}

// sandboxFacts is what the helper reports of the process it runs in.
type sandboxFacts struct {
	Argv0      string
	Args       []string
	Dir        string
	Env        []string
	Interfaces []string
	UpNonLo    int // interfaces up, other than loopback
}

// describeHelper runs as the job binary: os.Args[4] (after "--mode=describe
// --parallelism=N --") says how.
func describeHelper() {
	switch os.Args[len(os.Args)-1] {
	case "hang":
		time.Sleep(time.Minute)
	case "flood":
		os.Stdout.Write(bytes.Repeat([]byte("x"), maxDescribeOutput+1))
		return
	}
	f := sandboxFacts{Argv0: os.Args[0], Args: os.Args[1:], Env: os.Environ()}
	f.Dir, _ = os.Getwd()
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		f.Interfaces = append(f.Interfaces, i.Name)
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagLoopback == 0 {
			f.UpNonLo++
		}
	}
	b, _ := json.Marshal(f)
	fmt.Fprintln(os.Stderr, string(b))
	g, _ := protojson.Marshal(helperGraph)
	fmt.Println("a stray print")
	fmt.Println(taskenv.DescribeHeader)
	fmt.Println(string(g))
}

// describeWorker is a worker whose cache serves the test binary itself.
func describeWorker(t *testing.T) (*Worker, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(content)
	sha := hex.EncodeToString(h[:])
	dir := t.TempDir()
	if err := privateDir(dir, "jobs"); err != nil {
		t.Fatal(err)
	}
	fetch := func(_ context.Context, want string) (io.ReadCloser, error) {
		if want != sha {
			return nil, fmt.Errorf("no binary %s", want)
		}
		return io.NopCloser(bytes.NewReader(content)), nil
	}
	w := &Worker{cfg: Config{DataDir: dir}, logger: slog.New(slog.DiscardHandler)}
	if w.cache, err = bincache.New(filepath.Join(dir, "binaries"), fetch, w.logger); err != nil {
		t.Fatal(err)
	}
	return w, sha
}

// A worker describes a binary in a private directory (removed after), with
// the job environment only, without network where user namespaces are
// allowed, and the outcome reads as a local describe's.
func TestDescribeSandbox(t *testing.T) {
	t.Setenv(describeHelperEnv, "1")
	t.Setenv("WEIR_TOKEN", "the worker's secret")
	w, sha := describeWorker(t)
	r := &weirv1.DescribeRequest{RequestId: "r1", BinarySha256: sha, Args: []string{"--input", "in", "graph"}, Parallelism: 3, TimeoutMs: 10000,
		BinaryName: "wordcount"}
	reply := w.runDescribe(context.Background(), r)
	if reply.Error != "" {
		t.Fatalf("describe failed: %s", reply.Error)
	}
	g, err := describe.Graph(reply.Outcome, "helper")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(g, helperGraph) {
		t.Fatalf("graph = %v, want %v", g, helperGraph)
	}
	var f sandboxFacts
	if err := json.Unmarshal([]byte(strings.TrimSpace(reply.Outcome.StderrTail)), &f); err != nil {
		t.Fatalf("helper's report %q: %v", reply.Outcome.StderrTail, err)
	}
	if want := []string{"--mode=describe", "--parallelism=3", "--", "--input", "in", "graph"}; !slices.Equal(f.Args, want) {
		t.Errorf("args = %q, want %q", f.Args, want)
	}
	if f.Argv0 != "wordcount" {
		t.Errorf("argv[0] = %q, want the submitter's file name", f.Argv0)
	}
	if filepath.Dir(f.Dir) != filepath.Join(w.cfg.DataDir, "jobs") || !strings.HasPrefix(filepath.Base(f.Dir), "describe-") {
		t.Errorf("ran in %s, want a describe- directory of %s/jobs", f.Dir, w.cfg.DataDir)
	}
	for _, kv := range f.Env {
		k, _, _ := strings.Cut(kv, "=")
		if !passes(k) && k != "HOME" && k != "TMPDIR" {
			t.Errorf("the describe's environment has %s, which the job environment does not pass", k)
		}
	}
	if !slices.Contains(f.Env, "HOME="+f.Dir) || !slices.Contains(f.Env, "TMPDIR="+filepath.Join(f.Dir, "tmp")) {
		t.Errorf("HOME and TMPDIR are not the private directory %s: %q", f.Dir, f.Env)
	}
	if reply.Outcome.NetworkIsolated {
		if f.UpNonLo != 0 || !slices.Equal(f.Interfaces, []string{"lo"}) {
			t.Errorf("isolated describe sees interfaces %q (%d up)", f.Interfaces, f.UpNonLo)
		}
	} else {
		t.Logf("user namespaces are not allowed here: the describe ran with network (interfaces %q)", f.Interfaces)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.cfg.DataDir, "jobs")); len(ents) != 0 {
		t.Errorf("the describe left %d entries in jobs/", len(ents))
	}
}

func TestDescribeLimits(t *testing.T) {
	t.Setenv(describeHelperEnv, "1")
	w, sha := describeWorker(t)
	start := time.Now()
	reply := w.runDescribe(context.Background(), &weirv1.DescribeRequest{BinarySha256: sha, Args: []string{"hang"}, Parallelism: 1, TimeoutMs: 300})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a hanging describe took %v with a 300ms timeout", took)
	}
	if _, err := describe.Graph(reply.Outcome, "X"); err == nil || err.Error() != "X did not describe its job graph within 300ms" {
		t.Errorf("hanging: %v (reply %v)", err, reply)
	}

	reply = w.runDescribe(context.Background(), &weirv1.DescribeRequest{BinarySha256: sha, Args: []string{"flood"}, Parallelism: 1, TimeoutMs: 10000})
	if _, err := describe.Graph(reply.Outcome, "X"); err == nil || err.Error() != "X printed more than 4 MiB in describe mode: it is not a weir job" {
		t.Errorf("flooding: %v", err)
	}
	if n := len(reply.Outcome.GetStdout()); n != maxDescribeOutput {
		t.Errorf("kept %d bytes of stdout, want the cap %d", n, maxDescribeOutput)
	}

	reply = w.runDescribe(context.Background(), &weirv1.DescribeRequest{BinarySha256: strings.Repeat("0", 64), Parallelism: 1})
	if !strings.HasPrefix(reply.Error, "fetch job binary: ") || reply.Outcome != nil {
		t.Errorf("unknown binary: %v", reply)
	}
}
