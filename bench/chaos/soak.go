package chaos

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SoakOptions configure a soak: the campaign's cluster and jobs, no
// faults, for a long time.
type SoakOptions struct {
	Duration time.Duration // how long the jobs run
	// Load is the share of the machine's CPU (all cores) the cluster (its
	// daemons and their job processes) is steered to use: the input rate
	// is adjusted during the first sixth of the soak (at most 10 min),
	// then held.
	Load   float64
	Sample time.Duration // between samples of every daemon (1 min)
	Window time.Duration // the trailing span slopes are fitted over (30 min)
	Seed   uint64
	Dir    string
	Bins   Binaries
	Log    io.Writer
}

// SoakSample is one daemon's reading.
type SoakSample struct {
	Elapsed    time.Duration `json:"elapsed_ns"`
	Daemon     string        `json:"daemon"` // a daemon, or "W-jobs": worker W's job processes together
	RSS        int64         `json:"rss_bytes"`
	Threads    int           `json:"threads"`
	Goroutines int           `json:"goroutines"` // -1: the daemon serves no /metrics
}

// SoakRate is one interval's throughput.
type SoakRate struct {
	Elapsed   time.Duration `json:"elapsed_ns"`
	InputRPS  float64       `json:"input_rps"`  // records produced to counts-in and visits-in a second
	CountsRPS float64       `json:"counts_rps"` // counts-out's end offsets a second (records and transaction markers)
	VisitsRPS float64       `json:"visits_rps"`
	CPU       float64       `json:"cpu"` // the cluster's share of the machine's CPU over the interval
	Scale     float64       `json:"scale"`
}

// Slope is a linear fit over the trailing window.
type Slope struct {
	Daemon       string
	RSSPct       float64 // RSS change per 10 min, % of the window's mean
	GoroutinePct float64 // likewise (NaN when not known)
	RSSMiB       float64 // the window's last RSS
}

// MarshalJSON writes an unknown (NaN) slope as null: JSON has no NaN.
func (s Slope) MarshalJSON() ([]byte, error) {
	num := func(f float64) any {
		if math.IsNaN(f) {
			return nil
		}
		return f
	}
	return json.Marshal(map[string]any{"daemon": s.Daemon, "rss_pct_per_10m": num(s.RSSPct),
		"goroutine_pct_per_10m": num(s.GoroutinePct), "rss_mib": s.RSSMiB})
}

// SoakReport is a soak's outcome.
type SoakReport struct {
	Started  time.Time
	Duration time.Duration
	Load     float64
	Samples  []SoakSample
	Rates    []SoakRate
	Slopes   []Slope
	Window   time.Duration
	Checks   []Check
	Problems []string
}

// Soak runs the campaign's three jobs for o.Duration at o.Load without
// faults, sampling every daemon's RSS, threads and goroutines every
// o.Sample, then verifies the outputs as a campaign does.
func Soak(o SoakOptions) (*SoakReport, error) {
	if o.Sample == 0 {
		o.Sample = time.Minute
	}
	if o.Window == 0 {
		o.Window = 30 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	logf := timestamped(o.Log)
	r := &SoakReport{Duration: o.Duration, Load: o.Load, Window: o.Window}
	logf("starting the cluster under %s", o.Dir)
	t, err := startTopology(o.Dir, o.Bins, 3, 3, false)
	if err != nil {
		return nil, err
	}
	defer t.stop()
	// The file job runs for the whole soak (its events last 0.8 of the
	// span given) and ends a little after it.
	w, err := newWorkload(t, o.Seed, o.Duration*13/10)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := w.submit(); err != nil {
		return nil, err
	}
	w.feed()
	if err := waitCheckpoint(t, w, 60*time.Second); err != nil {
		return nil, fmt.Errorf("before the soak: %w", err)
	}
	r.Started = time.Now()
	logf("jobs %v running; soaking for %v at %.0f%% of the machine's CPU", w.ids, o.Duration, 100*o.Load)

	calibrate := min(o.Duration/6, 10*time.Minute)
	scale := 1.0
	step := min(o.Sample, 20*time.Second)
	meter := &cpuMeter{}
	prevCPU, prevAt := meter.read(t), time.Now()
	prevIn := w.producedCount()
	prevOff := endOffsets(t.brokers, "counts-out", "visits-out")
	nextSample := r.Started
	for now := time.Now(); now.Sub(r.Started) < o.Duration; now = time.Now() {
		if !now.Before(nextSample) {
			el := now.Sub(r.Started)
			r.Samples = append(r.Samples, sampleDaemons(t, el)...)
			nextSample = nextSample.Add(o.Sample)
		}
		time.Sleep(min(step, time.Until(nextSample)))
		cpu, at := meter.read(t), time.Now()
		dt := at.Sub(prevAt).Seconds()
		if dt < 5 {
			continue
		}
		share := (cpu - prevCPU) / dt / float64(runtime.NumCPU())
		in := w.producedCount()
		off := endOffsets(t.brokers, "counts-out", "visits-out")
		rate := SoakRate{Elapsed: at.Sub(r.Started), InputRPS: float64(in-prevIn) / dt, CPU: share, Scale: scale,
			CountsRPS: float64(off["counts-out"]-prevOff["counts-out"]) / dt, VisitsRPS: float64(off["visits-out"]-prevOff["visits-out"]) / dt}
		r.Rates = append(r.Rates, rate)
		prevCPU, prevAt, prevIn, prevOff = cpu, at, in, off
		if at.Sub(r.Started) < calibrate && share > 0 && o.Load > 0 {
			scale = math.Max(0.1, math.Min(100, scale*math.Max(0.5, math.Min(2, math.Sqrt(o.Load/share)))))
			w.setScale(scale)
		}
		logf("+%v cpu %.0f%% input %.0f/s counts-out %.0f/s visits-out %.0f/s (scale %.2f)", rate.Elapsed.Round(time.Second),
			100*share, rate.InputRPS, rate.CountsRPS, rate.VisitsRPS, scale)
	}
	r.Samples = append(r.Samples, sampleDaemons(t, time.Since(r.Started))...)
	r.Slopes = slopes(r.Samples, o.Window)

	logf("soak done; ending the input and verifying")
	fail := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	r.Checks = endAndVerify(t, w, 90*time.Second, 10*time.Minute, "after the soak", fail)
	for _, name := range []string{jobCounts, jobVisits} {
		t.cli.CLI(30*time.Second, "cancel", w.ids[name])
	}
	return r, nil
}

// cpuMeter adds up the CPU time the daemons and their child processes
// (job processes) use, from /proc.
type cpuMeter struct {
	last  map[int]int64 // ticks by pid at the previous read
	total int64
}

// read is the CPU time, in seconds, used so far: each live process's
// ticks since the previous read (all of them for a new one); a process
// that exited in between loses its last interval's.
func (m *cpuMeter) read(t *topology) float64 {
	pids := map[int]bool{}
	for _, d := range t.daemons() {
		pids[d.Pid()] = true
	}
	now := map[int]int64{}
	for _, p := range procs() {
		if pids[p.pid] || pids[p.ppid] {
			now[p.pid] = p.utime + p.stime
			m.total += max(0, now[p.pid]-m.last[p.pid])
		}
	}
	m.last = now
	return float64(m.total) / 100 // USER_HZ
}

type procStat struct {
	pid, ppid    int
	utime, stime int64
	rss          int64 // pages
	threads      int
}

// procs reads every process's /proc/PID/stat.
func procs() []procStat {
	var ps []procStat
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// After comm: state(0) ppid(1) ... utime(11) stime(12) ... num_threads(17) ... rss(21).
		if len(f) < 22 {
			continue
		}
		p := procStat{pid: pid}
		p.ppid, _ = strconv.Atoi(f[1])
		p.utime, _ = strconv.ParseInt(f[11], 10, 64)
		p.stime, _ = strconv.ParseInt(f[12], 10, 64)
		p.threads, _ = strconv.Atoi(f[17])
		p.rss, _ = strconv.ParseInt(f[21], 10, 64)
		ps = append(ps, p)
	}
	return ps
}

// sampleDaemons reads every daemon's RSS, threads and goroutines, and each
// worker's job processes' RSS and threads together.
func sampleDaemons(t *topology, el time.Duration) []SoakSample {
	page := int64(os.Getpagesize())
	ds := t.daemons()
	byPid := map[int]string{}
	for n, d := range ds {
		byPid[d.Pid()] = n
	}
	out := map[string]*SoakSample{}
	for _, p := range procs() {
		if n, ok := byPid[p.pid]; ok {
			out[n] = &SoakSample{Elapsed: el, Daemon: n, RSS: p.rss * page, Threads: p.threads, Goroutines: goroutines(t.metrics[n])}
		} else if n, ok := byPid[p.ppid]; ok && strings.HasPrefix(n, "w") {
			j := out[n+"-jobs"]
			if j == nil {
				j = &SoakSample{Elapsed: el, Daemon: n + "-jobs", Goroutines: -1}
				out[n+"-jobs"] = j
			}
			j.RSS += p.rss * page
			j.Threads += p.threads
		}
	}
	var s []SoakSample
	for _, v := range out {
		s = append(s, *v)
	}
	slices.SortFunc(s, func(a, b SoakSample) int { return strings.Compare(a.Daemon, b.Daemon) })
	return s
}

// goroutines reads go_goroutines from the /metrics at addr (-1 if none).
func goroutines(addr string) int {
	if addr == "" {
		return -1
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(n)
			}
		}
	}
	return -1
}

// endOffsets sums the end offsets of each topic's partitions (0 for a
// topic the broker does not answer for).
func endOffsets(brokers string, topics ...string) map[string]int64 {
	out := map[string]int64{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return out
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	for _, tp := range topics {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = tp
		for p := range int32(partitions) {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = -1 // the end
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return out
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode == 0 {
				out[rt.Topic] += rp.Offset
			}
		}
	}
	return out
}

// slopes fits each daemon's RSS and goroutines over the samples of the
// trailing window by least squares.
func slopes(samples []SoakSample, window time.Duration) []Slope {
	if len(samples) == 0 {
		return nil
	}
	end := samples[len(samples)-1].Elapsed
	by := map[string][]SoakSample{}
	for _, s := range samples {
		if s.Elapsed >= end-window {
			by[s.Daemon] = append(by[s.Daemon], s)
		}
	}
	var out []Slope
	for n, ss := range by {
		xs := make([]float64, len(ss))
		rss := make([]float64, len(ss))
		gs := make([]float64, len(ss))
		known := true
		for i, s := range ss {
			xs[i] = s.Elapsed.Minutes() / 10
			rss[i] = float64(s.RSS)
			gs[i] = float64(s.Goroutines)
			known = known && s.Goroutines >= 0
		}
		sl := Slope{Daemon: n, RSSPct: fitPct(xs, rss), GoroutinePct: math.NaN(), RSSMiB: rss[len(rss)-1] / (1 << 20)}
		if known {
			sl.GoroutinePct = fitPct(xs, gs)
		}
		out = append(out, sl)
	}
	slices.SortFunc(out, func(a, b Slope) int { return strings.Compare(a.Daemon, b.Daemon) })
	return out
}

// fitPct is the least-squares slope of ys over xs as a percentage of ys's
// mean (NaN with fewer than two points).
func fitPct(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return math.NaN()
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 || sy == 0 {
		return math.NaN()
	}
	return 100 * (n*sxy - sx*sy) / den / (sy / n)
}

// Print writes the slopes, throughput and verdict.
func (r *SoakReport) Print(w io.Writer) {
	fmt.Fprintf(w, "soak, %v at %.0f%% CPU target, started %s\n\n", r.Duration, 100*r.Load, r.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "trend over the last %v (least-squares slope, %% of the window's mean per 10 min):\n", r.Window)
	fmt.Fprintf(w, "  %-10s %9s %11s %11s\n", "daemon", "RSS MiB", "RSS %/10m", "gor. %/10m")
	for _, s := range r.Slopes {
		g := "n/a"
		if !math.IsNaN(s.GoroutinePct) {
			g = fmt.Sprintf("%+.2f", s.GoroutinePct)
		}
		fmt.Fprintf(w, "  %-10s %9.1f %+11.2f %11s\n", s.Daemon, s.RSSMiB, s.RSSPct, g)
	}
	var in, counts, visits, cpu float64
	var n float64
	for _, x := range r.Rates {
		if x.Elapsed >= r.Duration-r.Window {
			in, counts, visits, cpu, n = in+x.InputRPS, counts+x.CountsRPS, visits+x.VisitsRPS, cpu+x.CPU, n+1
		}
	}
	if n > 0 {
		fmt.Fprintf(w, "\nthroughput over the same window: input %.0f records/s, counts-out %.0f/s, visits-out %.0f/s; cluster CPU %.0f%% of the machine\n",
			in/n, counts/n, visits/n, 100*cpu/n)
	}
	fmt.Fprintf(w, "\noutputs:\n")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %s\n", c)
	}
	verdict := "PASS"
	if len(r.Problems) > 0 {
		verdict = "FAIL:\n  " + strings.Join(r.Problems, "\n  ")
	}
	fmt.Fprintf(w, "verdict: %s\n", verdict)
}

// WriteCSV writes the samples (elapsed_s,daemon,rss_mib,threads,goroutines)
// and, to ratesPath, the throughput (elapsed_s,input_rps,counts_rps,visits_rps,cpu,scale).
func (r *SoakReport) WriteCSV(samplesPath, ratesPath string) error {
	write := func(path string, rows [][]string) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		cw := csv.NewWriter(f)
		cw.WriteAll(rows)
		if err := cw.Error(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	rows := [][]string{{"elapsed_s", "daemon", "rss_mib", "threads", "goroutines"}}
	for _, s := range r.Samples {
		rows = append(rows, []string{fmt.Sprintf("%.0f", s.Elapsed.Seconds()), s.Daemon, fmt.Sprintf("%.1f", float64(s.RSS)/(1<<20)),
			strconv.Itoa(s.Threads), strconv.Itoa(s.Goroutines)})
	}
	if err := write(samplesPath, rows); err != nil {
		return err
	}
	rows = [][]string{{"elapsed_s", "input_rps", "counts_rps", "visits_rps", "cpu", "scale"}}
	for _, x := range r.Rates {
		rows = append(rows, []string{fmt.Sprintf("%.0f", x.Elapsed.Seconds()), fmt.Sprintf("%.1f", x.InputRPS), fmt.Sprintf("%.1f", x.CountsRPS),
			fmt.Sprintf("%.1f", x.VisitsRPS), fmt.Sprintf("%.3f", x.CPU), fmt.Sprintf("%.3f", x.Scale)})
	}
	return write(ratesPath, rows)
}

// SVG is a line chart of every daemon's RSS (left) and the coordinators'
// and workers' goroutines (right) over the soak.
func (r *SoakReport) SVG() string {
	by := map[string][]SoakSample{}
	var names []string
	for _, s := range r.Samples {
		if by[s.Daemon] == nil {
			names = append(names, s.Daemon)
		}
		by[s.Daemon] = append(by[s.Daemon], s)
	}
	slices.Sort(names)
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
		"#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"}
	const W, H, top, left, pw, ph = 980, 470, 40, 60, 400, 320
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", W, H)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	maxT := r.Duration.Minutes()
	for _, s := range r.Samples {
		maxT = math.Max(maxT, s.Elapsed.Minutes())
	}
	panel := func(x0 int, title string, val func(SoakSample) (float64, bool)) {
		var maxV float64
		for _, n := range names {
			for _, s := range by[n] {
				if v, ok := val(s); ok {
					maxV = math.Max(maxV, v)
				}
			}
		}
		if maxV == 0 {
			maxV = 1
		}
		maxV *= 1.1
		fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", x0, title)
		for i := 0; i <= 4; i++ {
			y := float64(top) + float64(ph)*(1-float64(i)/4)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
				x0, y, x0+pw, y, x0-4, y+4, maxV*float64(i)/4)
		}
		for i := 0; i <= 6; i++ {
			x := float64(x0) + float64(pw)*float64(i)/6
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%.0f</text>`+"\n", x, top+ph+14, maxT*float64(i)/6)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">minutes</text>`+"\n", x0+pw/2, top+ph+28)
		for ci, n := range names {
			var pts []string
			for _, s := range by[n] {
				if v, ok := val(s); ok {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", float64(x0)+float64(pw)*s.Elapsed.Minutes()/maxT, float64(top)+float64(ph)*(1-v/maxV)))
				}
			}
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"><title>%s</title></polyline>`+"\n",
					colors[ci%len(colors)], strings.Join(pts, " "), n)
			}
		}
	}
	panel(left, "RSS (MiB) per daemon", func(s SoakSample) (float64, bool) { return float64(s.RSS) / (1 << 20), true })
	panel(left+pw+90, "goroutines (coordinators, workers)", func(s SoakSample) (float64, bool) { return float64(s.Goroutines), s.Goroutines >= 0 })
	for ci, n := range names {
		x, y := left+(ci%8)*110, top+ph+48+(ci/8)*16
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, y-9, colors[ci%len(colors)], x+14, y, n)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
