package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/taskenv"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		argv    []string
		want    mainFlags
		user    []string
		wantErr string
	}{
		{argv: []string{"job"}, want: mainFlags{mode: "local", parallelism: 1}},
		// Without "--" every argument belongs to the job, flag-like or not.
		{argv: []string{"/bin/job", "in.txt", "out"}, want: mainFlags{mode: "local", parallelism: 1}, user: []string{"in.txt", "out"}},
		{argv: []string{"job", "--mode=describe", "-p", "3"}, want: mainFlags{mode: "local", parallelism: 1},
			user: []string{"--mode=describe", "-p", "3"}},
		{argv: []string{"job", "--"}, want: mainFlags{mode: "local", parallelism: 1}, user: []string{}},
		{argv: []string{"job", "--mode=describe", "--parallelism=4", "--max-parallelism=256", "--", "a", "-b"},
			want: mainFlags{mode: "describe", parallelism: 4, maxParallelism: 256}, user: []string{"a", "-b"}},
		{argv: []string{"job", "-p", "2", "--mode", "task", "--"}, want: mainFlags{mode: "task", parallelism: 2}, user: []string{}},
		// Only the first "--" splits.
		{argv: []string{"job", "-p=5", "--", "x", "--", "-p", "0"}, want: mainFlags{mode: "local", parallelism: 5},
			user: []string{"x", "--", "-p", "0"}},
		{argv: taskArgv("task", 3, "--input", "f"), want: mainFlags{mode: "task", parallelism: 3}, user: []string{"--input", "f"}},
		{argv: []string{"job", "-p", "0", "--"}, wantErr: "parallelism 0 is below 1"},
		{argv: []string{"job", "--parallelism=-2", "--"}, wantErr: "parallelism -2 is below 1"},
		{argv: []string{"job", "stray", "--", "x"}, wantErr: `unexpected argument "stray" before "--"`},
		{argv: []string{"job", "--bogus", "--"}, wantErr: "flag provided but not defined"},
		{argv: []string{"job", "-p", "many", "--"}, wantErr: "invalid value"},
	} {
		t.Run(strings.Join(tc.argv[1:], " "), func(t *testing.T) {
			var stderr bytes.Buffer
			f, user, err := parseArgs(tc.argv, &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f != tc.want {
				t.Errorf("flags %+v, want %+v", f, tc.want)
			}
			if !slices.Equal(user, tc.user) {
				t.Errorf("job args %q, want %q", user, tc.user)
			}
		})
	}
}

// taskArgv is how a worker starts a job binary.
func taskArgv(mode string, p int, user ...string) []string {
	return append([]string{"job"}, taskenv.Args(mode, p, user)...)
}

// wordJob is a small job for Main: it counts the words of its arguments.
func wordJob(out *bag[KV[string, int64]], gotArgs *[]string) BuildFunc {
	return func(p *Pipeline, args []string) error {
		*gotArgs = args
		words := Generate(p, int64(len(args)), func(i int64) string { return args[i] }, WithUID("words"))
		counts := Aggregate(KeyBy(words, func(w string) string { return w }), Count[string](), EmitFinal(),
			WithName("Count"), WithUID("count"))
		out.sinkTo(counts, WithUID("out"))
		return nil
	}
}

func runMain(t *testing.T, argv []string, build BuildFunc) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(t.Context(), argv, build, &o, &e)
	return code, o.String(), e.String()
}

func TestMainDescribe(t *testing.T) {
	var out bag[KV[string, int64]]
	var args []string
	code, stdout, stderr := runMain(t, []string{"/opt/jobs/wc", "--mode=describe", "-p", "3", "--", "a", "b"}, wordJob(&out, &args))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !slices.Equal(args, []string{"a", "b"}) {
		t.Errorf("build got %q", args)
	}
	header, body, ok := strings.Cut(stdout, "\n")
	if !ok || header != taskenv.DescribeHeader {
		t.Fatalf("first line %q, want %q", header, taskenv.DescribeHeader)
	}
	if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
		t.Errorf("the graph is not exactly one line: %q", body)
	}
	var g weirv1.JobGraph
	if err := protojson.Unmarshal([]byte(body), &g); err != nil {
		t.Fatalf("graph does not parse: %v\n%s", err, body)
	}
	if g.Name != "wc" || g.MaxParallelism != int32(keygroup.DefaultMaxParallelism(3)) {
		t.Errorf("graph %q max parallelism %d", g.Name, g.MaxParallelism)
	}
	var names []string
	for _, v := range g.Vertices {
		names = append(names, fmt.Sprintf("%s/%d", v.Name, v.Parallelism))
	}
	if want := []string{"Source: Generate/3", "Count -> Collect/3"}; !slices.Equal(names, want) {
		t.Errorf("vertices %q, want %q", names, want)
	}
	if len(g.Edges) != 1 || g.Edges[0].Partitioning != weirv1.Partitioning_PARTITIONING_HASH {
		t.Errorf("edges %v", g.Edges)
	}
	if len(out.items()) != 0 {
		t.Error("describe ran the job")
	}

	code, stdout, _ = runMain(t, []string{"wc", "--mode=describe", "--max-parallelism=9", "--", "x"}, wordJob(&out, &args))
	_, body, _ = strings.Cut(stdout, "\n")
	if err := protojson.Unmarshal([]byte(body), &g); code != 0 || err != nil || g.MaxParallelism != 9 {
		t.Errorf("--max-parallelism=9: exit %d, %v, max parallelism %d", code, err, g.MaxParallelism)
	}
}

func TestMainLocal(t *testing.T) {
	var out bag[KV[string, int64]]
	var args []string
	// No "--": all arguments are the job's, and the mode is local.
	code, stdout, stderr := runMain(t, []string{"wc", "x", "y", "x", "-p"}, wordJob(&out, &args))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
	checkOutput(t, out.items(), []KV[string, int64]{{"x", 2}, {"y", 1}, {"-p", 1}})

	var out2 bag[KV[string, int64]]
	code, _, stderr = runMain(t, []string{"wc", "-p", "3", "--", "x", "y", "x"}, wordJob(&out2, &args))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkOutput(t, out2.items(), []KV[string, int64]{{"x", 2}, {"y", 1}})
	if fin, _ := out2.counts(); fin != 3 {
		t.Errorf("%d sink subtasks finished, want 3 (-p 3)", fin)
	}
}

func TestMainFailures(t *testing.T) {
	noJob := func(*Pipeline, []string) error { return nil }
	buildFails := func(*Pipeline, []string) error { return errors.New("wordcount needs --input") }
	panics := func(p *Pipeline, _ []string) error {
		var b bag[int64]
		b.sinkTo(Map(genSeq(p, 10), func(int64) int64 { panic("nope") }, WithName("Broken")))
		return nil
	}
	var out bag[KV[string, int64]]
	var args []string
	for _, tc := range []struct {
		name   string
		argv   []string
		build  BuildFunc
		code   int
		stderr []string
	}{
		{"zero parallelism", []string{"job", "-p", "0", "--"}, wordJob(&out, &args), 2, []string{"error: parallelism 0 is below 1"}},
		{"unknown flag", []string{"job", "--nope", "--"}, wordJob(&out, &args), 2, []string{"-nope", "usage: job"}},
		{"help", []string{"job", "-h", "--"}, wordJob(&out, &args), 2, []string{"usage: job", "-max-parallelism"}},
		{"unknown mode", []string{"job", "--mode=remote", "--"}, wordJob(&out, &args), 2, []string{`unknown mode "remote"`}},
		{"build error", []string{"job", "--", "x"}, buildFails, 2, []string{"error: wordcount needs --input"}},
		{"empty pipeline", []string{"job", "--mode=describe", "--"}, noJob, 2, []string{"error:", "empty"}},
		{"construction error", []string{"job"}, func(p *Pipeline, _ []string) error {
			sinkAway(genSeq(p, 1, WithUID("a b")), "Out")
			return nil
		}, 2, []string{`uid "a b"`}},
		{"job fails", []string{"job", "-p", "2", "--"}, panics, 1, []string{"error: job failed:", "panic", "Broken"}},
		{"task mode outside a worker", []string{"job", "--mode=task", "--"}, wordJob(&out, &args), 1, []string{"error:", "started by a weir worker"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "task mode outside a worker" {
				for _, k := range []string{taskenv.WorkerAddr, taskenv.Token, taskenv.JobID, taskenv.Attempt, taskenv.DataHost} {
					t.Setenv(k, "")
				}
			}
			code, stdout, stderr := runMain(t, tc.argv, tc.build)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %.300s", code, tc.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not mention %q: %.500s", want, stderr)
				}
			}
			if tc.name == "help" && strings.Contains(stderr, "error:") {
				t.Errorf("-h reported an error: %s", stderr)
			}
		})
	}
}

func TestMainCancelledLocalJob(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var o, e bytes.Buffer
	forever := func(p *Pipeline, _ []string) error {
		var b bag[int64]
		b.sinkTo(genSeq(p, -1))
		return nil
	}
	if code := run(ctx, []string{"job"}, forever, &o, &e); code != 1 || !strings.Contains(e.String(), "job failed") {
		t.Errorf("exit %d, stderr %q; an interrupted job has not completed", code, e.String())
	}
}

// WEIR_CPUPROFILE_DIR makes a job process write a CPU profile named after
// the job and its pid.
func TestCPUProfileDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profiles")
	stop, err := startCPUProfile(dir, "myjob")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("myjob-%d.pprof", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile is not a gzipped pprof file (%d bytes)", len(b))
	}
	if stop, err := startCPUProfile("", "myjob"); err != nil {
		t.Fatal(err)
	} else {
		stop()
	}
}
