// Command weirbench is the Nexmark bench harness. For each query it runs the
// single-threaded baseline, then starts a multi-process weir cluster on this
// machine (etcd, a coordinator, a worker with two slots) and runs the query
// as a job with exactly-once checkpoints at each parallelism (three runs of
// each, taking turns; the median counts), then once paced at half its
// throughput to measure latency. It checks every job's output checksum
// against the baseline's, runs the Beam/Prism peer on the windowed counts,
// runs the keyed queries again on two workers confined to a CPU each (the
// scale-out of adding a machine), kills a worker in one run to time
// recovery, and writes
// bench/results/<timestamp>.json and bench/REPORT.md with SVG charts.
//
//	go run ./bench/cmd/weirbench --events 10000000 --queries q0,q1,q2,q5,q7,q8
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// allQueries is the default list, in report order.
var allQueries = []string{"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11", "wcount", "scount"}

// peerQueries are the queries the Beam peer runs.
var peerQueries = map[string]bool{"wcount": true, "scount": true}

type options struct {
	events          int64
	seed            uint64
	queries         []string
	parallelism     []int
	checkpointEvery time.Duration
	workers         int
	slots           int
	rounds          int
	latencySeconds  float64
	recovery        string
	recoveryRate    float64
	tlsQueries      []string
	kekQueries      []string
	scaleOut        []string
	scaleOutRounds  int
	overheadRounds  int
	gogc            int
	peer            string
	peerEvents      int64
	pprof           string
	out             string
	report          string
	keep            bool
	render          string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(2)
	}
	res, err := bench(o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if !res.allChecksumsOK() {
		fmt.Fprintln(os.Stderr, "error: some outputs differ from their baselines' (see the report)")
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("weirbench", flag.ContinueOnError)
	fs.Int64Var(&o.events, "events", 10_000_000, "events per query run")
	fs.Uint64Var(&o.seed, "seed", 1, "generator seed")
	queries := fs.String("queries", strings.Join(allQueries, ","), "comma-separated queries")
	par := fs.String("parallelism", "1,2", "comma-separated parallelisms to run each query at")
	fs.DurationVar(&o.checkpointEvery, "checkpoint-interval", 10*time.Second, "checkpoint interval of the jobs (exactly-once)")
	fs.IntVar(&o.workers, "workers", 1, "workers in the cluster of the main runs (the scale-out, recovery and overhead runs start clusters of two)")
	fs.IntVar(&o.rounds, "rounds", 3, "runs of each query at each parallelism, the parallelisms taking turns (the tables give each one's median run)")
	fs.IntVar(&o.slots, "slots", 2, "slots per worker in the cluster of the main runs: a job's subtasks on one worker share its job process")
	fs.Float64Var(&o.latencySeconds, "latency-seconds", 5, "length of the paced latency run per query (0: skip)")
	fs.StringVar(&o.recovery, "recovery", "q5", "query of the worker-kill scenario (empty: skip)")
	fs.Float64Var(&o.recoveryRate, "recovery-rate", 0, "events per second in the recovery run (0: half the query's measured throughput)")
	tlsQueries := fs.String("tls-overhead", "q0,q5", "queries to run alternately with the data plane in TLS and in plaintext at parallelism 2 (empty: skip)")
	kekQueries := fs.String("kek-overhead", "q5", "queries to run alternately with state encrypted at rest (--kek) and not, at parallelism 2 (empty: skip)")
	scaleOut := fs.String("scale-out", "q5,q7,q8,wcount", "queries to run at p=1 and p=2 on two workers that each have a CPU of their own (empty: skip)")
	fs.IntVar(&o.scaleOutRounds, "scale-out-rounds", 3, "runs at each parallelism per --scale-out query (medians are reported)")
	fs.IntVar(&o.overheadRounds, "overhead-rounds", 3, "runs of each kind per --tls-overhead and --kek-overhead query")
	fs.StringVar(&o.peer, "peer", "beam", "peer engine for wcount and scount: beam or none")
	fs.Int64Var(&o.peerEvents, "peer-events", 2_000_000, "events per peer run (and weir's comparison run)")
	fs.IntVar(&o.gogc, "gogc", 0, "GOGC of the job processes (weir run --gogc; 0: the workers' default)")
	fs.StringVar(&o.pprof, "pprof", "", "save the job processes' CPU profiles under this directory (one folder per query, scale-out-QUERY and recovery-QUERY)")
	fs.StringVar(&o.out, "out", "", "results directory (default bench/results in the repository)")
	fs.StringVar(&o.report, "report", "", "report file (default bench/REPORT.md in the repository)")
	fs.BoolVar(&o.keep, "keep", false, "keep the clusters' directories and logs")
	fs.StringVar(&o.render, "render", "", "run nothing: write the report and charts again from this results file (after a change to the report)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.events < 1 {
		return o, errors.New("--events must be at least 1")
	}
	known := map[string]bool{}
	for _, q := range allQueries {
		known[q] = true
	}
	for _, q := range strings.Split(*queries, ",") {
		if q = strings.TrimSpace(q); q == "" {
			continue
		}
		if !known[q] {
			return o, fmt.Errorf("unknown query %q (want some of %s)", q, strings.Join(allQueries, ","))
		}
		o.queries = append(o.queries, q)
	}
	if len(o.queries) == 0 {
		return o, errors.New("--queries is empty")
	}
	if o.workers < 1 || o.slots < 1 {
		return o, fmt.Errorf("--workers and --slots must be at least 1 (got %d and %d)", o.workers, o.slots)
	}
	for _, s := range strings.Split(*par, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 1 {
			return o, fmt.Errorf("bad parallelism %q", s)
		}
		if p > o.workers*o.slots {
			return o, fmt.Errorf("parallelism %d needs at least %d slots (--workers %d × --slots %d)", p, p, o.workers, o.slots)
		}
		o.parallelism = append(o.parallelism, p)
	}
	for _, list := range []struct {
		flag string
		in   *string
		out  *[]string
	}{{"--tls-overhead", tlsQueries, &o.tlsQueries}, {"--kek-overhead", kekQueries, &o.kekQueries}, {"--scale-out", scaleOut, &o.scaleOut}} {
		for _, q := range strings.Split(*list.in, ",") {
			if q = strings.TrimSpace(q); q == "" {
				continue
			}
			if !known[q] {
				return o, fmt.Errorf("unknown %s query %q", list.flag, q)
			}
			*list.out = append(*list.out, q)
		}
	}
	if len(o.tlsQueries)+len(o.kekQueries) > 0 && o.overheadRounds < 1 {
		return o, errors.New("--tls-overhead and --kek-overhead need --overhead-rounds ≥ 1")
	}
	if o.rounds < 1 {
		return o, errors.New("--rounds must be at least 1")
	}
	if len(o.scaleOut) > 0 && o.scaleOutRounds < 1 {
		return o, errors.New("--scale-out needs --scale-out-rounds ≥ 1")
	}
	if o.recovery != "" && !known[o.recovery] {
		return o, fmt.Errorf("unknown --recovery query %q", o.recovery)
	}
	if o.peer != "beam" && o.peer != "none" {
		return o, fmt.Errorf("unknown --peer %q (want beam or none)", o.peer)
	}
	return o, nil
}

// repoRoot finds the weir repository from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/weir-run/weir\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run weirbench inside the weir repository")
		}
		dir = parent
	}
}

// goBuild builds pkg (run in dir) into out, statically (weir run accepts
// only static job binaries).
func goBuild(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s, %s %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func (r *Results) allChecksumsOK() bool {
	for _, q := range r.Queries {
		if !q.checksumsOK() {
			return false
		}
	}
	for _, p := range r.Peers {
		if p.Error == "" && !p.ChecksumOK {
			return false
		}
	}
	for _, t := range r.Overheads {
		if !checksumsOK(t.Off, t.On) {
			return false
		}
	}
	for _, s := range r.ScaleOut {
		if !checksumsOK(s.P1, s.P2) {
			return false
		}
	}
	return r.Recovery == nil || r.Recovery.Error != "" || r.Recovery.ChecksumOK
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
