package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/weir-run/weir/bench/cluster"
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/internal/taskenv"
)

// harness holds what every measurement needs.
type harness struct {
	o                         options
	root, tmp                 string
	weir, job, baseline, peer string
	out                       io.Writer
}

func bench(o options, stdout io.Writer) (*Results, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if o.render != "" {
		var res Results
		b, err := os.ReadFile(o.render)
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err != nil {
			return nil, fmt.Errorf("--render: %w", err)
		}
		return &res, (&harness{o: o, root: root, out: stdout}).write(&res)
	}
	tmp, err := os.MkdirTemp("", "weirbench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(stdout, "clusters' directories and logs: %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	h := &harness{o: o, root: root, tmp: tmp, out: stdout,
		weir: filepath.Join(tmp, "weir"), job: filepath.Join(tmp, "nexmark"), baseline: filepath.Join(tmp, "baseline")}
	fmt.Fprintln(stdout, "building weir, the nexmark job and the baselines")
	for bin, pkg := range map[string]string{h.weir: "./cmd/weir", h.job: "./bench/job", h.baseline: "./bench/cmd/baseline"} {
		if err := goBuild(root, bin, pkg); err != nil {
			return nil, err
		}
	}
	res := &Results{Started: time.Now().UTC(), Commit: commit(root), Machine: machine(), Cores: runtime.GOMAXPROCS(0), Config: Config{
		Events: o.events, Seed: o.seed, Queries: o.queries, Parallelism: o.parallelism,
		CheckpointInterval: o.checkpointEvery.String(), Workers: o.workers, Slots: o.slots, Rounds: o.rounds,
	}}
	fmt.Fprintf(stdout, "%d events per run on %s\n", o.events, res.Machine)
	for _, q := range o.queries {
		qr := h.query(q)
		res.Queries = append(res.Queries, qr)
		fmt.Fprintln(stdout, summaryLine(qr))
	}
	res.Peers = h.peers(res)
	for _, f := range []struct {
		feature
		queries []string
	}{{dataPlaneTLS, o.tlsQueries}, {encryptionAtRest, o.kekQueries}} {
		for _, q := range f.queries {
			ov := h.overhead(res, f.feature, q)
			res.Overheads = append(res.Overheads, ov)
			fmt.Fprintln(stdout, overheadLine(ov))
		}
	}
	for _, q := range o.scaleOut {
		so := h.scaleOut(res, q)
		res.ScaleOut = append(res.ScaleOut, so)
		fmt.Fprintln(stdout, scaleOutLine(so))
	}
	if o.recovery != "" {
		res.Recovery = h.recovery(res)
		fmt.Fprintln(stdout, recoveryLine(res.Recovery))
	}
	res.Finished = time.Now().UTC()
	if err := h.write(res); err != nil {
		return res, err
	}
	fmt.Fprint(stdout, "\n"+table(res))
	return res, nil
}

func (h *harness) jobArgs(q string, events int64, reportDir string, extra ...string) []string {
	return append([]string{"--query", q, "--events", strconv.FormatInt(events, 10),
		"--seed", strconv.FormatUint(h.o.seed, 10), "--report-dir", reportDir}, extra...)
}

// measuredBaseline is q's baseline over --events events: the one res measured
// already, or a new run.
func (h *harness) measuredBaseline(res *Results, q string) (Run, error) {
	for _, qr := range res.Queries {
		if qr.Name == q && qr.Error == "" && qr.Baseline.Events == h.o.events {
			return qr.Baseline, nil
		}
	}
	return h.runBaseline(q, h.o.events)
}

// runBaseline runs the single-threaded baseline of q over events.
func (h *harness) runBaseline(q string, events int64) (Run, error) {
	return runResultJSON(exec.Command(h.baseline, "--query", q, "--events", strconv.FormatInt(events, 10),
		"--seed", strconv.FormatUint(h.o.seed, 10)))
}

// runResultJSON runs a command that prints a baseline-style result line.
func runResultJSON(cmd *exec.Cmd) (Run, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Run{}, fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, strings.TrimSpace(stderr.String()))
	}
	var r nexmark.RunResult
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return Run{}, fmt.Errorf("%s printed no result: %w", filepath.Base(cmd.Path), err)
	}
	return Run{Events: r.Events, WallSec: r.WallSec, CPUSec: r.CPUSec, Checksum: r.Checksum}, nil
}

// profileEnv is the environment of a cluster whose job processes save
// their CPU profiles under --pprof's directory name (when --pprof is set).
func (h *harness) profileEnv(name string) (env []string, dir string) {
	if h.o.pprof == "" {
		return nil, ""
	}
	dir = filepath.Join(h.o.pprof, name)
	return []string{taskenv.CPUProfileDir + "=" + dir}, dir
}

// query measures one query: baseline, weir at each parallelism, latency.
func (h *harness) query(q string) Query {
	qr := Query{Name: q, FlinkPerCore: flinkPerCore[q]}
	fmt.Fprintf(h.out, "%s: baseline\n", q)
	base, err := h.runBaseline(q, h.o.events)
	if err != nil {
		qr.Error = err.Error()
		return qr
	}
	qr.Baseline = base
	dir := filepath.Join(h.tmp, q)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		qr.Error = err.Error()
		return qr
	}
	env, profDir := h.profileEnv(q)
	c, err := cluster.StartSimple(h.weir, dir, cluster.SimpleConfig{Workers: h.o.workers, Slots: h.o.slots, Env: env})
	if err != nil {
		qr.Error = err.Error()
		return qr
	}
	defer c.Stop()
	// The parallelisms take turns, round after round, so the machine's
	// drifts in speed hit each alike; each is then represented by its
	// median run.
	for round := range h.o.rounds {
		for _, p := range h.o.parallelism {
			fmt.Fprintf(h.out, "%s: weir at parallelism %d (round %d of %d)\n", q, p, round+1, h.o.rounds)
			tag := fmt.Sprintf("p%d", p)
			if round > 0 {
				tag = fmt.Sprintf("p%d-r%d", p, round+1)
			}
			w, err := h.profiledRun(c, profDir, q, p, tag)
			if err != nil {
				qr.Error = err.Error()
				return qr
			}
			w.ChecksumOK = w.Run.Checksum == base.Checksum
			qr.Rounds = append(qr.Rounds, w)
		}
	}
	for _, p := range h.o.parallelism {
		qr.Weir = append(qr.Weir, medianRun(qr.Rounds, p))
	}
	if h.o.latencySeconds > 0 && len(qr.Weir) > 0 {
		rate := math.Round(qr.Weir[0].Run.PerSec() / 2)
		events := int64(rate * h.o.latencySeconds)
		if events > 0 {
			fmt.Fprintf(h.out, "%s: latency at %.0f events/s (half of parallelism %d's throughput)\n", q, rate, qr.Weir[0].Parallelism)
			_, reps, err := h.runJob(c, q, qr.Weir[0].Parallelism, events, "latency",
				"--rate", strconv.FormatFloat(rate, 'f', 0, 64), "--latency")
			if err != nil {
				qr.Error = err.Error()
				return qr
			}
			var hist nexmark.Histogram
			for _, r := range reps {
				hist.Merge(&r.Latency)
			}
			qr.Latency = &Latency{Parallelism: qr.Weir[0].Parallelism, Rate: rate, Outputs: hist.Total,
				P50Ms: ms(hist.Quantile(0.5)), P99Ms: ms(hist.Quantile(0.99)), MaxMs: ms(hist.Max)}
		}
	}
	return qr
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// profiledRun runs q at parallelism p over --events, and moves the
// profiles its job processes saved under profDir (when profiling) to
// profDir/tag.
func (h *harness) profiledRun(c *cluster.Simple, profDir, q string, p int, tag string) (WeirRun, error) {
	before := listFiles(profDir)
	w, _, err := h.runJob(c, q, p, h.o.events, tag)
	if err == nil && profDir != "" {
		w.Profiles = moveNewFiles(profDir, before, filepath.Join(profDir, tag))
	}
	return w, err
}

// runJob runs q on c at parallelism p to the end and measures it.
func (h *harness) runJob(c *cluster.Simple, q string, p int, events int64, tag string, extra ...string) (WeirRun, []nexmark.SinkReport, error) {
	w := WeirRun{Parallelism: p}
	reportDir := filepath.Join(c.Dir, "reports-"+tag)
	if err := os.MkdirAll(reportDir, 0o755); err != nil {
		return w, nil, err
	}
	cpu0 := childCPU(c)
	id, err := c.Run(jobTimeout(events), runFlags(fmt.Sprintf("nexmark-%s-%s", q, tag), p, h.o.checkpointEvery, h.o.gogc), h.job, h.jobArgs(q, events, reportDir, extra...)...)
	if err != nil {
		return w, nil, err
	}
	st, err := c.Status(id)
	if err != nil {
		return w, nil, err
	}
	w.Restarts = st.Restarts
	// The job processes' CPU reaches the workers' children totals when the
	// workers have reaped them.
	waitChildrenGone(c, 30*time.Second)
	cpu := childCPU(c) - cpu0
	if w.Checkpoints, err = c.Checkpoints(id); err != nil {
		return w, nil, err
	}
	reps, err := readReports(reportDir)
	if err != nil {
		return w, nil, err
	}
	w.Run = summarize(reps, events, cpu)
	return w, reps, nil
}

func jobTimeout(events int64) time.Duration {
	return 2*time.Minute + time.Duration(events/20_000)*time.Second
}

// summarize merges the sinks' reports: wall time from the first sink's open
// to the last one's end, CPU as measured by the caller.
func summarize(reps []nexmark.SinkReport, events int64, cpu time.Duration) Run {
	r := Run{Events: events, CPUSec: cpu.Seconds()}
	var first, last int64 = math.MaxInt64, 0
	for _, rep := range reps {
		r.Checksum.Merge(rep.Checksum)
		first, last = min(first, rep.OpenNs), max(last, rep.FinishNs)
	}
	if len(reps) > 0 {
		r.WallSec = float64(last-first) / 1e9
	}
	return r
}

func readReports(dir string) ([]nexmark.SinkReport, error) {
	names, err := filepath.Glob(filepath.Join(dir, "sink-*.json"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("the job wrote no sink reports to %s", dir)
	}
	var reps []nexmark.SinkReport
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var r nexmark.SinkReport
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		reps = append(reps, r)
	}
	return reps, nil
}

// childCPU is the CPU time of the workers' reaped children (their job
// processes), from /proc: cutime and cstime, in clock ticks of 10 ms.
func childCPU(c *cluster.Simple) time.Duration {
	var total time.Duration
	for _, d := range c.Workers {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.Pid()))
		if err != nil {
			continue
		}
		// Fields after the parenthesized command name; cutime and cstime
		// are fields 16 and 17 of the whole line.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 15 {
			continue
		}
		cu, _ := strconv.ParseInt(f[13], 10, 64)
		cs, _ := strconv.ParseInt(f[14], 10, 64)
		total += time.Duration(cu+cs) * 10 * time.Millisecond
	}
	return total
}

// waitChildrenGone waits until the workers have no child processes left:
// the job processes have ended and been reaped.
func waitChildrenGone(c *cluster.Simple, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && hasChildren(c) {
		time.Sleep(20 * time.Millisecond)
	}
}

// hasChildren reports whether a worker has a child process.
func hasChildren(c *cluster.Simple) bool { return len(children(c)) > 0 }

// children lists the workers' child processes (their job processes), from
// each of their threads' /proc children list (a child belongs to the
// thread that started it).
func children(c *cluster.Simple) []string {
	var pids []string
	for _, d := range c.Workers {
		lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", d.Pid()))
		for _, l := range lists {
			if b, err := os.ReadFile(l); err == nil {
				pids = append(pids, strings.Fields(string(b))...)
			}
		}
	}
	return pids
}

// jobPeakRSS is the largest peak resident set (VmHWM) of the workers' job
// processes, in bytes.
func jobPeakRSS(c *cluster.Simple) int64 {
	var peak int64
	for _, pid := range children(c) {
		b, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				peak = max(peak, kb<<10)
			}
		}
	}
	return peak
}

func listFiles(dir string) map[string]bool {
	seen := map[string]bool{}
	if dir == "" {
		return seen
	}
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		seen[e.Name()] = true
	}
	return seen
}

// moveNewFiles moves the profiles a run added to dir into sub.
func moveNewFiles(dir string, before map[string]bool, sub string) []string {
	var moved []string
	os.MkdirAll(sub, 0o755)
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if e.IsDir() || before[e.Name()] {
			continue
		}
		to := filepath.Join(sub, e.Name())
		if os.Rename(filepath.Join(dir, e.Name()), to) == nil {
			moved = append(moved, to)
		}
	}
	return moved
}
