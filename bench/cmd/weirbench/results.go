package main

import (
	"cmp"
	"slices"
	"time"

	"github.com/weir-run/weir/bench/nexmark"
)

// Results is one bench run, as written to bench/results/<timestamp>.json.
type Results struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Commit   string    `json:"commit"`
	Machine  string    `json:"machine"`
	// Cores is how many CPUs the run could use (GOMAXPROCS, which follows
	// a container's CPU quota; 0 in results from before it was recorded).
	Cores    int       `json:"cores,omitempty"`
	Config   Config    `json:"config"`
	Queries  []Query   `json:"queries"`
	Peers    []Peer    `json:"peers,omitempty"`
	Recovery *Recovery `json:"recovery,omitempty"`
	// Overheads are the features' costs (--tls-overhead, --kek-overhead).
	Overheads []Overhead `json:"overheads,omitempty"`
	// ScaleOut are the runs with a CPU per worker (--scale-out).
	ScaleOut []ScaleOut `json:"scale_out,omitempty"`
}

// Config is what the run was asked to do.
type Config struct {
	Events             int64    `json:"events"`
	Seed               uint64   `json:"seed"`
	Queries            []string `json:"queries"`
	Parallelism        []int    `json:"parallelism"`
	CheckpointInterval string   `json:"checkpoint_interval"`
	Workers            int      `json:"workers"`
	Slots              int      `json:"slots,omitempty"`  // per worker; absent (1) before 2026-12-07
	Rounds             int      `json:"rounds,omitempty"` // runs per parallelism; absent (1) before 2026-12-07
	PeerEvents         int64    `json:"peer_events,omitempty"`
}

// Run is one measured execution over Events events.
type Run struct {
	Events   int64            `json:"events"`
	WallSec  float64          `json:"wall_s"`
	CPUSec   float64          `json:"cpu_s"`
	Checksum nexmark.Checksum `json:"checksum"`
}

// PerSec is the throughput in events per wall-clock second.
func (r Run) PerSec() float64 { return ratio(float64(r.Events), r.WallSec) }

// PerCore is the throughput per CPU-second.
func (r Run) PerCore() float64 { return ratio(float64(r.Events), r.CPUSec) }

// Cores is how many cores the run kept busy on average: its CPU time over
// its wall time.
func (r Run) Cores() float64 { return ratio(r.CPUSec, r.WallSec) }

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// Query is everything measured for one query.
type Query struct {
	Name     string `json:"name"`
	Baseline Run    `json:"baseline"`
	// Weir is the median run (by events/s) of each parallelism, in the
	// order of --parallelism; Rounds is every run, in the order run.
	Weir    []WeirRun `json:"weir"`
	Rounds  []WeirRun `json:"rounds,omitempty"`
	Latency *Latency  `json:"latency,omitempty"`
	// FlinkPerCore is Flink 1.13's published throughput per core (ev/s),
	// 0 for the queries it has no figure for.
	FlinkPerCore float64 `json:"flink_per_core,omitempty"`
	Error        string  `json:"error,omitempty"`
}

// WeirRun is the query on the cluster at one parallelism.
type WeirRun struct {
	Parallelism int          `json:"parallelism"`
	Run         Run          `json:"run"`
	Checkpoints []checkpoint `json:"checkpoints"`
	Restarts    int32        `json:"restarts"`
	ChecksumOK  bool         `json:"checksum_ok"`
	Profiles    []string     `json:"profiles,omitempty"`
}

// Latency is the output latency of a paced run.
type Latency struct {
	Parallelism int     `json:"parallelism"`
	Rate        float64 `json:"rate"` // events per second offered
	Outputs     uint64  `json:"outputs"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
}

// Peer is another engine running the same query over the same events.
type Peer struct {
	Engine     string `json:"engine"`
	Query      string `json:"query"`
	Run        Run    `json:"run"`
	ChecksumOK bool   `json:"checksum_ok"`
	Error      string `json:"error,omitempty"`
}

// Recovery is the worker-kill scenario.
type Recovery struct {
	Query       string  `json:"query"`
	Parallelism int     `json:"parallelism"`
	Rate        float64 `json:"rate"`
	Events      int64   `json:"events"`
	KilledAfter string  `json:"killed_after"` // which checkpoint had completed
	// RunningSec is from the kill until the job is RUNNING again in a new
	// attempt; FlowingSec until its sink sees records again.
	RunningSec float64 `json:"running_s"`
	FlowingSec float64 `json:"flowing_s"`
	// KillSec is from the submission to the kill, DoneSec from the kill
	// until the job finished: a restored job that keeps up ends about when
	// its paced input does (scheduleLeft).
	KillSec float64 `json:"kill_s"`
	DoneSec float64 `json:"done_s"`
	// PeakRSSBefore and PeakRSSAfter are the largest peak RSS (VmHWM) of
	// a job process before the kill and after it, in bytes.
	PeakRSSBefore int64  `json:"peak_rss_before"`
	PeakRSSAfter  int64  `json:"peak_rss_after"`
	Restarts      int32  `json:"restarts"`
	ChecksumOK    bool   `json:"checksum_ok"`
	Error         string `json:"error,omitempty"`
}

// scheduleLeft is how long after the kill the paced input's schedule ends.
func (r *Recovery) scheduleLeft() float64 { return float64(r.Events)/r.Rate - r.KillSec }

// keptUp says the restored job kept up with its paced input. It replays at
// most a checkpoint interval of input, and at twice the rate (the rate is
// half its throughput) it catches up with that and with what came during
// its restart in about as long again: so it ends no later than that after
// the input's schedule. A job that only limps along ends much later.
func (r *Recovery) keptUp(interval time.Duration) bool {
	return r.DoneSec <= r.scheduleLeft()+r.RunningSec+interval.Seconds()
}

// Overhead is what a feature costs: one query run alternately on two
// clusters that differ only in the feature's coordinator flags, so the
// machine's noise hits both alike.
type Overhead struct {
	Feature     string    `json:"feature"`
	Query       string    `json:"query"`
	Parallelism int       `json:"parallelism"`
	Off         []WeirRun `json:"off"`
	On          []WeirRun `json:"on"`
	Error       string    `json:"error,omitempty"`
}

// Ratio is the runs with the feature's median throughput over those
// without.
func (o Overhead) Ratio() float64 {
	return ratio(medianPerSec(o.On), medianPerSec(o.Off))
}

// ScaleOut is one query run alternately at p=1 and p=2 on two workers that
// each have a CPU of their own.
type ScaleOut struct {
	Query string    `json:"query"`
	P1    []WeirRun `json:"p1"`
	P2    []WeirRun `json:"p2"`
	Error string    `json:"error,omitempty"`
}

// Speedup is p=2's median throughput over p=1's.
func (s ScaleOut) Speedup() float64 { return ratio(medianPerSec(s.P2), medianPerSec(s.P1)) }

// checksumsOK reports whether every run's output equalled its baseline's.
func checksumsOK(runs ...[]WeirRun) bool {
	for _, rs := range runs {
		for _, w := range rs {
			if !w.ChecksumOK {
				return false
			}
		}
	}
	return true
}

// outputText says in the report whether outputs equalled the baseline's.
func outputText(ok bool) string {
	if ok {
		return "equal to the baseline's"
	}
	return "**different from the baseline's**"
}

// checkpointMs is the median duration of the runs' completed checkpoints.
func checkpointMs(runs []WeirRun) float64 {
	var v []float64
	for _, r := range runs {
		for _, c := range r.Checkpoints {
			if c.Status == "COMPLETED" {
				v = append(v, float64(c.DurationMs))
			}
		}
	}
	return median(v)
}

func medianPerSec(runs []WeirRun) float64 { return medianOf(runs, Run.PerSec) }

// medianRun is the run at parallelism p with the median events/s (of an
// even number, the slower middle one), so every figure the report gives for
// p (rate, CPU, checkpoints) comes from one real run.
func medianRun(runs []WeirRun, p int) WeirRun {
	var at []WeirRun
	for _, r := range runs {
		if r.Parallelism == p {
			at = append(at, r)
		}
	}
	if len(at) == 0 {
		return WeirRun{Parallelism: p}
	}
	slices.SortStableFunc(at, func(a, b WeirRun) int { return cmp.Compare(a.Run.PerSec(), b.Run.PerSec()) })
	return at[(len(at)-1)/2]
}

// medianOf is the median of f over the runs.
func medianOf(runs []WeirRun, f func(Run) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r.Run)
	}
	return median(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// flinkPerCore are Flink 1.13's published Nexmark throughputs per core, in
// events per second (docs/architecture.md, "Design targets").
var flinkPerCore = map[string]float64{
	"q0": 155e3, "q1": 158e3, "q2": 175e3, "q3": 152e3, "q4": 34.3e3,
	"q5": 22.1e3, "q7": 12.3e3, "q8": 146e3, "q11": 39.7e3,
}
