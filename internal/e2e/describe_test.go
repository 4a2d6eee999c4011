package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// jobService dials the JobService of a plaintext weir local.
func jobService(t *testing.T, api string) weirv1.JobServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(api, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return weirv1.NewJobServiceClient(cc)
}

// wordcountInput writes a small input and returns its path and the lines
// wordcount must commit for it.
func wordcountInput(t *testing.T, dir string) (string, []string) {
	t.Helper()
	var text strings.Builder
	want := map[string]int{}
	for i := range 3000 {
		w := fmt.Sprintf("w%d", (i*7)%211)
		want[w]++
		text.WriteString(w)
		text.WriteString(" ")
		if i%9 == 8 {
			text.WriteString("\n")
		}
	}
	input := filepath.Join(dir, "input.txt")
	if err := os.WriteFile(input, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for w, n := range want {
		lines = append(lines, w+"\t"+strconv.Itoa(n))
	}
	sort.Strings(lines)
	return input, lines
}

// A graph described on a worker (--describe remote) is the proto a local
// describe gives; workers report their platform.
func TestRemoteDescribeEqualsLocal(t *testing.T) {
	api := startLocal(t, 1, 4)
	dir := t.TempDir()
	input, _ := wordcountInput(t, dir)
	jobs := jobService(t, api)
	graphs := map[string]*weirv1.JobGraph{}
	for _, mode := range []string{"local", "remote"} {
		stdout, stderr, code := weir(t, 60*time.Second, "run", "--coordinator", api, "--describe", mode, "-p", "2", "--detach",
			bins.wordcount, "--", "--input", input, "--output", filepath.Join(dir, "out-"+mode))
		if code != 0 {
			t.Fatalf("weir run --describe %s exited %d: %s", mode, code, stderr)
		}
		if described := strings.Contains(stderr, "described "+bins.wordcount+" on worker worker-"); described != (mode == "remote") {
			t.Errorf("--describe %s: stderr %q", mode, stderr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		j, err := jobs.GetJob(ctx, &weirv1.GetJobRequest{JobId: strings.TrimSpace(stdout)})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		graphs[mode] = j.GetSpec().GetGraph()
	}
	if len(graphs["local"].GetVertices()) == 0 || !proto.Equal(graphs["local"], graphs["remote"]) {
		t.Fatalf("remote graph differs from the local one:\nlocal:  %v\nremote: %v", graphs["local"], graphs["remote"])
	}

	out, _, code := weir(t, 10*time.Second, "workers", "--coordinator", api, "-o", "json")
	var ws []struct {
		Platform string `json:"platform"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &ws) != nil || len(ws) != 1 || ws[0].Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("weir workers -o json = %s, want one worker of %s/%s", out, runtime.GOOS, runtime.GOARCH)
	}
}

// A CLI that cannot run the binary (its exec fails with an exec format
// error, as a linux/amd64 binary's on a Mac) has a worker describe it, and
// the job runs to the exact result.
func TestSubmitBinaryTheCLICannotRun(t *testing.T) {
	api := startLocal(t, 2, 2)
	dir := t.TempDir()
	input, want := wordcountInput(t, dir)
	out := filepath.Join(dir, "out")
	t.Setenv("WEIR_TEST_LOCAL_EXEC", "enoexec")

	_, stderr, code := weir(t, 60*time.Second, "run", "--coordinator", api, "--describe", "local", bins.wordcount, "--", "--input", input, "--output", out)
	if wantErr := "weir: " + bins.wordcount + " is not a program for this platform (" + runtime.GOOS + "/" + runtime.GOARCH + ")\n"; code != 1 || stderr != wantErr {
		t.Fatalf("--describe local of a binary this CLI cannot run: exit %d, stderr %q, want 1 and %q", code, stderr, wantErr)
	}

	_, stderr, code = weir(t, 60*time.Second, "run", "--coordinator", api, "-p", "2", bins.wordcount, "--", "--input", input, "--output", out)
	if code != 0 {
		t.Fatalf("weir run exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "described "+bins.wordcount+" on worker worker-") {
		t.Errorf("weir run did not describe on a worker: %s", stderr)
	}
	if got := committedLines(t, out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("output differs: got %d lines, want %d", len(got), len(want))
	}
}

// Each refusal of a remote describe is one line.
func TestRemoteDescribeRefusals(t *testing.T) {
	api := startLocal(t, 1, 2)
	dir := t.TempDir()

	_, stderr, code := weir(t, 60*time.Second, "run", "--coordinator", api, "--describe", "remote", bins.wordcount, "--")
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	want := []string{
		"described " + bins.wordcount + " on worker worker-1 (" + runtime.GOOS + "/" + runtime.GOARCH + ")",
		"weir: " + bins.wordcount + " rejected its arguments: wordcount needs --input and --output (described on worker worker-1)",
	}
	if code != 1 || len(lines) != 3 || !strings.HasPrefix(lines[0], "uploading "+bins.wordcount) || lines[1] != want[0] || lines[2] != want[1] {
		t.Errorf("bad arguments: exit %d, stderr %q, want an upload line then %q", code, stderr, want)
	}

	_, stderr, code = weir(t, 10*time.Second, "run", "--coordinator", api, "--describe", "sometimes", bins.wordcount, "--", "--input", dir, "--output", dir)
	if want := "weir: --describe must be local, remote or auto, got \"sometimes\"\n"; code != 2 || !strings.HasPrefix(stderr, want) {
		t.Errorf("bad --describe: exit %d, stderr %q", code, stderr)
	}

	jobs := jobService(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sha := strings.Repeat("ab", 32)
	_, err := jobs.DescribeBinary(ctx, &weirv1.DescribeBinaryRequest{BinarySha256: sha, Parallelism: 1})
	if want := "binary " + sha + " was not uploaded"; status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != want {
		t.Errorf("DescribeBinary of a binary not uploaded: %v, want FailedPrecondition %q", err, want)
	}
	_, err = jobs.DescribeBinary(ctx, &weirv1.DescribeBinaryRequest{BinarySha256: "nope", Parallelism: 1})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("DescribeBinary of a bad digest: %v", err)
	}
}
