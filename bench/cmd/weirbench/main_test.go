package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-run/weir/bench/cluster"
)

// The harness end to end, small: every query's output equals its baseline's
// on a real multi-process cluster at p=1 and p=2, the latency run records
// every output, the worker kill is survived exactly once, and the results,
// report and charts are written.
func TestBenchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts clusters")
	}
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	// The scale-out runs confine each worker to a CPU of its own: they need
	// two and taskset, which CI has (WEIR_REQUIRE_PINNING).
	scaleOut := "q5"
	if err := cluster.CanPinWorkers(2); err != nil {
		if os.Getenv("WEIR_REQUIRE_PINNING") != "" {
			t.Fatalf("WEIR_REQUIRE_PINNING is set but %v", err)
		}
		t.Logf("no scale-out runs: %v", err)
		scaleOut = ""
	}
	o, err := parseFlags([]string{"--events", "60000", "--queries", "q0,q5", "--checkpoint-interval", "1s", "--rounds", "2",
		"--latency-seconds", "1", "--recovery", "q5", "--recovery-rate", "20000", "--peer", "none", "--tls-overhead", "q5", "--kek-overhead", "q5", "--overhead-rounds", "1",
		"--scale-out", scaleOut, "--scale-out-rounds", "1", "--out", filepath.Join(dir, "results"), "--report", filepath.Join(dir, "REPORT.md")})
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	res, err := bench(o, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !res.allChecksumsOK() {
		t.Fatalf("checksums differ:\n%s", log.String())
	}
	for _, q := range res.Queries {
		if len(q.Weir) != 2 {
			t.Fatalf("%s: %d weir runs, want p=1 and p=2", q.Name, len(q.Weir))
		}
		if got := parallelisms(q.Rounds); !slices.Equal(got, []int{1, 2, 1, 2}) {
			t.Errorf("%s: runs at parallelisms %v, want them taking turns over 2 rounds", q.Name, got)
		}
		for _, w := range q.Weir {
			if w.Run.Checksum.Count == 0 || w.Run.PerSec() <= 0 || w.Run.PerCore() <= 0 {
				t.Errorf("%s p=%d: empty measurement %+v", q.Name, w.Parallelism, w.Run)
			}
			if w.Restarts != 0 {
				t.Errorf("%s p=%d restarted %d times", q.Name, w.Parallelism, w.Restarts)
			}
		}
		if q.Latency == nil || q.Latency.Outputs == 0 || q.Latency.P99Ms <= 0 {
			t.Errorf("%s: no latency measured: %+v", q.Name, q.Latency)
		}
	}
	r := res.Recovery
	if r == nil || r.Error != "" || !r.ChecksumOK || r.Restarts < 1 || r.FlowingSec <= 0 || r.RunningSec <= 0 {
		t.Fatalf("recovery: %+v\n%s", r, log.String())
	}
	if ov := res.Overheads; len(ov) != 2 || ov[0].Feature != "data-plane TLS" || ov[1].Feature != "encryption at rest" {
		t.Fatalf("overhead scenarios: %+v\n%s", ov, log.String())
	}
	for _, o := range res.Overheads {
		if o.Error != "" || len(o.On) != 1 || len(o.Off) != 1 || o.Ratio() <= 0 {
			t.Fatalf("%s: %+v\n%s", o.Feature, o, log.String())
		}
	}
	if so := res.ScaleOut; scaleOut != "" && (len(so) != 1 || so[0].Error != "" || len(so[0].P1) != 1 || len(so[0].P2) != 1 || so[0].Speedup() <= 0) {
		t.Fatalf("scale-out: %+v\n%s", so, log.String())
	}
	names, _ := filepath.Glob(filepath.Join(dir, "results", "*.json"))
	if len(names) != 1 {
		t.Fatalf("results files: %v", names)
	}
	var back Results
	if b, err := os.ReadFile(names[0]); err != nil || json.Unmarshal(b, &back) != nil || len(back.Queries) != 2 {
		t.Fatalf("results JSON does not read back: %v", err)
	}
	report, err := os.ReadFile(filepath.Join(dir, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| q0 | yes |", "| q5 | yes |", "## Recovery from a worker's kill -9", "## Scaling on this machine", "## What security costs", "| data-plane TLS | q5 | 1 |", "| encryption at rest | q5 | 1 |", "## Targets", "charts/throughput.svg"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if scaleOut != "" {
		_, sec, _ := strings.Cut(string(report), "## Scale-out: a CPU per worker")
		sec, _, _ = strings.Cut(sec, "\n## ")
		if !strings.Contains(sec, "\n| q5 | 1 | ") || !strings.Contains(string(report), "Scale-out with a CPU per worker") {
			t.Errorf("report lacks the scale-out section's q5 row or its target:\n%s", report)
		}
	}
	for _, chart := range []string{"throughput.svg", "cost.svg"} {
		f, err := os.Open(filepath.Join(dir, "charts", chart))
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(f)
		for {
			if _, err := d.Token(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("%s is not well-formed: %v", chart, err)
				}
				break
			}
		}
		f.Close()
	}
	t.Logf("bench took %v:\n%s", time.Since(res.Started).Round(time.Second), table(res))
}

func parallelisms(runs []WeirRun) []int {
	var ps []int
	for _, r := range runs {
		ps = append(ps, r.Parallelism)
	}
	return ps
}

// medianRun represents a parallelism by one real run: the median by
// events/s, the slower middle one of an even number, ignoring the other
// parallelism's runs.
func TestMedianRun(t *testing.T) {
	run := func(p int, wall float64, tag int32) WeirRun {
		return WeirRun{Parallelism: p, Run: Run{Events: 1_000_000, WallSec: wall}, Restarts: tag}
	}
	for _, tc := range []struct {
		name string
		runs []WeirRun
		p    int
		want int32 // the tag (Restarts) of the run chosen; -1: none
	}{
		{"one", []WeirRun{run(1, 1, 7)}, 1, 7},
		{"odd", []WeirRun{run(1, 3, 1), run(2, 9, 9), run(1, 1, 2), run(2, 9, 9), run(1, 2, 3)}, 1, 3},
		{"even takes the slower middle", []WeirRun{run(2, 1, 1), run(2, 4, 2), run(2, 2, 3), run(2, 3, 4)}, 2, 4},
		{"other parallelisms only", []WeirRun{run(1, 1, 1)}, 2, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := medianRun(tc.runs, tc.p)
			if got.Parallelism != tc.p {
				t.Fatalf("parallelism %d, want %d", got.Parallelism, tc.p)
			}
			if tc.want < 0 {
				if got.Run.Events != 0 {
					t.Fatalf("got a run %+v from no runs", got)
				}
				return
			}
			if got.Restarts != tc.want {
				t.Fatalf("chose run %d, want %d", got.Restarts, tc.want)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--queries", "q6"}, `unknown query "q6"`},
		{[]string{"--parallelism", "3"}, "parallelism 3 needs at least 3 slots (--workers 1 × --slots 2)"},
		{[]string{"--parallelism", "0"}, `bad parallelism "0"`},
		{[]string{"--events", "0"}, "--events must be at least 1"},
		{[]string{"--peer", "flink"}, `unknown --peer "flink"`},
		{[]string{"--recovery", "q9"}, `unknown --recovery query "q9"`},
		{[]string{"--tls-overhead", "q9"}, `unknown --tls-overhead query "q9"`},
		{[]string{"--overhead-rounds", "0"}, "need --overhead-rounds ≥ 1"},
		{[]string{"--kek-overhead", "q9"}, `unknown --kek-overhead query "q9"`},
		{[]string{"--scale-out", "q9"}, `unknown --scale-out query "q9"`},
		{[]string{"--scale-out-rounds", "0"}, "--scale-out needs --scale-out-rounds ≥ 1"},
		{[]string{"--rounds", "0"}, "--rounds must be at least 1"},
		{[]string{"--slots", "0"}, "--workers and --slots must be at least 1 (got 1 and 0)"},
	} {
		_, err := parseFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestReportKeepsChaosSection(t *testing.T) {
	old := "# Nexmark bench report\n\n## Targets\n\n- x\n\n## Chaos campaigns\n\n### 2026-12-06\n\nverdict: PASS\n\n## Later\n\nnot kept\n"
	if got, want := keptSection(old, "## Chaos campaigns"), "\n## Chaos campaigns\n\n### 2026-12-06\n\nverdict: PASS\n"; got != want {
		t.Fatalf("keptSection = %q, want %q", got, want)
	}
	if got := keptSections("# Nexmark bench report\n"); got != "" {
		t.Fatalf("a report without the section: %q", got)
	}
}

// The targets list holds the scaling goals (p=2 against p=1) and the
// latency goal for the per-record queries only: the others' latency is
// listed, not judged.
func TestTargetsScalingAndLatency(t *testing.T) {
	run := func(p int, wall float64) WeirRun {
		return WeirRun{Parallelism: p, Run: Run{Events: 100, WallSec: wall, CPUSec: wall}, ChecksumOK: true}
	}
	res := &Results{Config: Config{Parallelism: []int{1, 2}}, Queries: []Query{
		{Name: "q1", Baseline: Run{Events: 100, WallSec: 1}, Weir: []WeirRun{run(1, 1), run(2, 0.5)},
			Latency: &Latency{P99Ms: 3}},
		{Name: "q5", Baseline: Run{Events: 100, WallSec: 1}, Weir: []WeirRun{run(1, 1), run(2, 0.9)},
			Latency: &Latency{Outputs: 5, P99Ms: 40}},
		{Name: "q8", Baseline: Run{Events: 100, WallSec: 1}, Weir: []WeirRun{run(1, 1), run(2, 1.25)},
			Latency: &Latency{P99Ms: 25}},
	}, ScaleOut: []ScaleOut{
		{Query: "q3", P1: []WeirRun{run(1, 1)}, P2: []WeirRun{run(2, 0.95)}},
		{Query: "q5", P1: []WeirRun{run(1, 1), run(1, 3), run(1, 0.5)}, P2: []WeirRun{run(2, 0.625), run(2, 0.1), run(2, 9)}},
		{Query: "q8", P1: []WeirRun{run(1, 1)}, P2: []WeirRun{run(2, 0.9)}},
	}}
	got := strings.Join(misses(res), "\n")
	for _, want := range []string{
		"Weir at p=2 ≥ weir at p=1: **missed by q8**; met by q1, q5.",
		"Weir at p=2 ≥ 1.25 × weir at p=1: **missed by q5, q8**.",
		"Latency p99 < 20 ms at half load, per-record queries: **missed by q8**; met by q1.",
		"(goal: no worse than before, see Before → after): q5 40.0 ms (5 results).",
		"and ≥ p=1 (others): **missed by q8 (1.11)**; met by q3 (1.05), q5 (1.60).",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
}

// A restored job that limps along misses its target even though it was
// running again in time: 18 s of input, the kill 11.4 s after the
// submission, so the input's schedule ends 6.6 s after the kill.
func TestRestoredJobKeepsUp(t *testing.T) {
	for _, c := range []struct {
		done float64
		want string
	}{
		{10.2, "met by all (q5)"},
		{17.8, "met by all (q5)"},
		{31.5, "**missed by q5**"},
	} {
		res := &Results{Config: Config{CheckpointInterval: "10s"}, Recovery: &Recovery{Query: "q5", Rate: 1000, Events: 18000,
			KillSec: 11.4, RunningSec: 1.3, FlowingSec: 1.3, DoneSec: c.done, ChecksumOK: true}}
		got := strings.Join(misses(res), "\n")
		if want := "after its input's schedule: " + c.want; !strings.Contains(got, want) {
			t.Errorf("ended %.1f s after the kill: targets lack %q:\n%s", c.done, want, got)
		}
	}
}

// --render writes the report again from a results file, running nothing;
// a file that is not one is refused.
func TestRender(t *testing.T) {
	dir := t.TempDir()
	res := &Results{Started: time.Date(2026, 12, 7, 18, 42, 43, 0, time.UTC), Config: Config{CheckpointInterval: "10s"},
		Recovery: &Recovery{Query: "q5", Rate: 1000, Events: 18000, KillSec: 11.4, RunningSec: 1.3, FlowingSec: 1.3, DoneSec: 10.2, ChecksumOK: true}}
	path := filepath.Join(dir, "in.json")
	if err := writeJSON(path, res); err != nil {
		t.Fatal(err)
	}
	o := options{render: path, out: filepath.Join(dir, "out"), report: filepath.Join(dir, "R.md")}
	if _, err := bench(o, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(o.report)
	if want := "- Kill to the job's end: 10.2 s (the paced input's schedule ends 6.6 s after the kill)"; err != nil || !strings.Contains(string(b), want) {
		t.Fatalf("report lacks %q (%v):\n%s", want, err, b)
	}
	o.render = filepath.Join(dir, "R.md")
	if _, err := bench(o, io.Discard); err == nil || !strings.Contains(err.Error(), "--render: ") {
		t.Fatalf("rendering a file that is no results: %v", err)
	}
}
