package chaos

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Options configure a campaign.
type Options struct {
	Seed     uint64
	Faults   int           // how many faults to inject
	Duration time.Duration // the span they are spread over (each waits for the previous one's recovery)
	Kinds    []Kind        // the kinds to draw from (nil: all)
	Dir      string        // working directory: data, logs
	Bins     Binaries
	MaxRSS   int64         // bound on every daemon's RSS, bytes
	Recovery time.Duration // how long a fault may take to recover from before the campaign fails it
	Log      io.Writer     // progress
}

// FaultRecord is one injected fault.
type FaultRecord struct {
	Seq       int           `json:"seq"`
	Kind      Kind          `json:"kind"`
	Target    string        `json:"target"`
	At        time.Time     `json:"at"`
	Healed    time.Time     `json:"healed"`
	Recovery  time.Duration `json:"recovery_ns"` // injection to every running job's next completed checkpoint after the heal
	Recovered bool          `json:"recovered"`
	Error     string        `json:"error,omitempty"`
	Note      string        `json:"note,omitempty"` // what the fault's own check observed
	// Failover, for a fault that killed the leader, is the time from the
	// kill until another coordinator led.
	Failover time.Duration `json:"failover_ns,omitempty"`
}

// Stats are recovery times of one fault kind.
type Stats struct {
	N             int
	P50, P99, Max time.Duration
}

// Report is a campaign's outcome.
type Report struct {
	Seed      uint64
	Started   time.Time
	Faults    []FaultRecord
	Checks    []Check
	JobStates map[string]string
	Leaks     []string
	MaxRSS    map[string]int64
	RSSLimit  int64
	Skipped   []string // fault kinds asked for that this machine cannot inject, and why
	Problems  []string // every reason the verdict is FAIL
}

// Pass is the verdict.
func (r *Report) Pass() bool { return len(r.Problems) == 0 }

// Recovery are the recovery times by kind, over the faults that recovered.
func (r *Report) Recovery() map[Kind]Stats {
	by := map[Kind][]time.Duration{}
	for _, f := range r.Faults {
		if f.Recovered {
			by[f.Kind] = append(by[f.Kind], f.Recovery)
		}
	}
	st := map[Kind]Stats{}
	for k, ds := range by {
		slices.Sort(ds)
		// Nearest rank: the smallest value with at least p of them at or below it.
		q := func(p float64) time.Duration { return ds[max(0, int(math.Ceil(p*float64(len(ds))))-1)] }
		st[k] = Stats{N: len(ds), P50: q(0.5), P99: q(0.99), Max: ds[len(ds)-1]}
	}
	return st
}

// Print writes the fault log, the recovery times and the verdict.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos campaign, seed %d, %d faults, started %s\n\nfault log:\n", r.Seed, len(r.Faults), r.Started.UTC().Format(time.RFC3339))
	for _, f := range r.Faults {
		rec := "NOT RECOVERED"
		if f.Recovered {
			rec = "recovered in " + f.Recovery.Round(10*time.Millisecond).String()
		}
		if f.Error != "" {
			rec += " (" + f.Error + ")"
		}
		fmt.Fprintf(w, "  %2d  %s  +%6.1fs  %-17s %-28s healed +%.1fs, %s\n", f.Seq, f.At.UTC().Format("15:04:05.000"),
			f.At.Sub(r.Started).Seconds(), f.Kind, f.Target, f.Healed.Sub(f.At).Seconds(), rec)
		if f.Failover > 0 {
			fmt.Fprintf(w, "        leader failover in %v\n", f.Failover.Round(10*time.Millisecond))
		}
		if f.Note != "" {
			fmt.Fprintf(w, "        %s\n", f.Note)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "  not injected: %s\n", s)
	}
	fmt.Fprintf(w, "\nrecovery per kind (injection to every running job's first checkpoint completed after the heal):\n")
	st := r.Recovery()
	for _, k := range Kinds {
		if s, ok := st[k]; ok {
			fmt.Fprintf(w, "  %-24s n=%d  p50 %-8v p99 %-8v max %v\n", k, s.N, s.P50.Round(10*time.Millisecond), s.P99.Round(10*time.Millisecond), s.Max.Round(10*time.Millisecond))
		}
	}
	var fo []time.Duration
	for _, f := range r.Faults {
		if f.Failover > 0 {
			fo = append(fo, f.Failover)
		}
	}
	if len(fo) > 0 {
		slices.Sort(fo)
		fmt.Fprintf(w, "  %-24s n=%d  p50 %-8v max %v (kill to another coordinator leading)\n", "leader failover", len(fo),
			fo[(len(fo)-1)/2].Round(10*time.Millisecond), fo[len(fo)-1].Round(10*time.Millisecond))
	}
	fmt.Fprintf(w, "\noutputs:\n")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %s\n", c)
	}
	fmt.Fprintf(w, "jobs at the end: %v\nleaked job processes: %d %v\nmax RSS (limit %d MiB):", r.JobStates, len(r.Leaks), r.Leaks, r.RSSLimit>>20)
	names := make([]string, 0, len(r.MaxRSS))
	for n := range r.MaxRSS {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, " %s %d MiB", n, r.MaxRSS[n]>>20)
	}
	verdict := "PASS"
	if !r.Pass() {
		verdict = "FAIL:\n  " + strings.Join(r.Problems, "\n  ")
	}
	fmt.Fprintf(w, "\nverdict: %s\n", verdict)
}

// slots is each worker's: the three jobs (the file job's two regions
// apart) need 8 at parallelism 2, and a worker lost leaves 8.
const slots = 4

// Build compiles weir and the campaign's jobs from the module at root
// into dir (jobs statically, as weir run requires) and finds versitygw.
func Build(root, dir string) (Binaries, error) {
	var b Binaries
	for _, x := range []struct {
		dst *string
		pkg string
	}{{&b.Weir, "./cmd/weir"}, {&b.EOSCount, "./jobs/eoscount"}, {&b.BayVisits, "./jobs/bayvisits"}, {&b.TwoRegions, "./jobs/tworegions"}} {
		*x.dst = filepath.Join(dir, filepath.Base(x.pkg))
		cmd := exec.Command("go", "build", "-o", *x.dst, x.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("build %s: %v\n%s", x.pkg, err, out)
		}
	}
	return b, nil
}

// Run runs a campaign: it starts the cluster, submits the jobs, injects
// the faults, lets the jobs settle, verifies, and stops everything.
func Run(o Options) (*Report, error) {
	if o.Kinds == nil {
		o.Kinds = Kinds
	}
	if o.MaxRSS == 0 {
		o.MaxRSS = 1 << 30
	}
	if o.Recovery == 0 {
		o.Recovery = 90 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	logf := timestamped(o.Log)
	if err := becomeSubreaper(); err != nil {
		return nil, fmt.Errorf("become a subreaper (to find orphaned job processes): %w", err)
	}
	r := &Report{Seed: o.Seed, RSSLimit: o.MaxRSS, JobStates: map[string]string{}}
	fail := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }

	logf("starting the cluster under %s", o.Dir)
	t, err := startTopology(o.Dir, o.Bins, 3, slots, slices.Contains(o.Kinds, DiskFull))
	if err != nil {
		return nil, err
	}
	rss := startRSS(t)
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			r.MaxRSS = rss.end()
			t.stop()
		}
	}
	defer stopAll()
	w, err := newWorkload(t, o.Seed, o.Duration)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := w.submit(); err != nil {
		return nil, err
	}
	w.feed()
	logf("jobs %v running; injecting %d faults over %v (seed %d)", w.ids, o.Faults, o.Duration, o.Seed)
	if err := waitCheckpoint(t, w, 60*time.Second); err != nil {
		return nil, fmt.Errorf("before any fault: %w", err)
	}

	// Kinds this machine cannot inject are left out, and said so.
	kinds := slices.Clone(o.Kinds)
	for _, k := range []struct {
		kind Kind
		err  error
	}{{DiskFull, t.diskErr}, {IsolateWorker, t.isolateErr}} {
		if i := slices.Index(kinds, k.kind); i >= 0 && k.err != nil {
			kinds = slices.Delete(kinds, i, i+1)
			r.Skipped = append(r.Skipped, fmt.Sprintf("%s: %v", k.kind, k.err))
			logf("not injecting %s: %v", k.kind, k.err)
		}
	}
	in := &injector{t: t, w: w, rng: rand.New(rand.NewPCG(o.Seed, 0x1ec7))}
	r.Started = time.Now()
	gap := o.Duration / time.Duration(max(1, o.Faults))
	for i, k := range Schedule(o.Seed, o.Faults, kinds) {
		if wait := time.Until(r.Started.Add(time.Duration(i) * gap)); wait > 0 {
			time.Sleep(wait)
		}
		f := FaultRecord{Seq: i + 1, Kind: k, At: time.Now()}
		in.check, in.note, in.failover, in.at = nil, "", nil, time.Time{}
		target, heal, err := in.inject(k)
		if !in.at.IsZero() {
			f.At = in.at
		}
		f.Target = target
		if err != nil {
			f.Error = err.Error()
			f.Healed = time.Now()
			r.Faults = append(r.Faults, f)
			logf("fault %d %s: not injected: %v", f.Seq, k, err)
			fail("fault %d (%s) could not be injected: %v", f.Seq, k, err)
			continue
		}
		logf("fault %d %s: %s", f.Seq, k, target)
		if err := heal(); err != nil {
			f.Error = "heal: " + err.Error()
		}
		f.Healed = time.Now()
		if err := waitCheckpoint(t, w, o.Recovery); err != nil {
			f.Error = strings.TrimPrefix(f.Error+"; "+err.Error(), "; ")
			fail("fault %d (%s on %s) did not recover: %v", f.Seq, k, target, err)
		} else {
			f.Recovered, f.Recovery = true, time.Since(f.At)
			if in.check != nil {
				if err := in.check(); err != nil {
					f.Error = strings.TrimPrefix(f.Error+"; "+err.Error(), "; ")
					fail("fault %d (%s on %s): %v", f.Seq, k, target, err)
				}
			}
		}
		f.Note = in.note
		if in.failover != nil {
			if d := <-in.failover; d > 0 {
				f.Failover = d
			} else {
				fail("fault %d (%s): no other coordinator led within 30 s", f.Seq, k)
			}
		}
		logf("fault %d %s: healed after %.1fs, recovered %v in %v; failover %v; %s", f.Seq, k, f.Healed.Sub(f.At).Seconds(), f.Recovered,
			f.Recovery.Round(10*time.Millisecond), f.Failover.Round(10*time.Millisecond), f.Note)
		r.Faults = append(r.Faults, f)
		// Job processes of a killed worker die with it (Pdeathsig).
		if err := waitFor(10*time.Second, func() bool { return len(orphans()) == 0 }); err != nil {
			fail("after fault %d (%s): job processes outlived their worker: %v", f.Seq, k, orphans())
		}
	}

	logf("faults done; ending the input and verifying")
	// Every running job completes checkpoints after the last fault.
	r.Checks = endAndVerify(t, w, o.Recovery, 5*time.Minute, "after the last fault", fail)
	for name, id := range w.ids {
		st, err := t.status(id)
		r.JobStates[name] = st.State
		want := "RUNNING"
		if name == jobFiles {
			want = "FINISHED"
		}
		if err != nil || st.State != want {
			fail("job %s is %s (%v), want %s", name, st.State, err, want)
		}
	}
	for _, name := range []string{jobCounts, jobVisits} {
		if _, err := t.cli.CLI(30*time.Second, "cancel", w.ids[name]); err != nil {
			fail("cancel %s: %v", name, err)
		}
	}
	stopAll()
	if err := waitFor(10*time.Second, func() bool { r.Leaks = orphans(); return len(r.Leaks) == 0 }); err != nil {
		fail("job processes left after the cluster stopped: %v", r.Leaks)
	}
	for n, b := range r.MaxRSS {
		if b > o.MaxRSS {
			fail("%s reached %d MiB of RSS (limit %d MiB)", n, b>>20, o.MaxRSS>>20)
		}
	}
	for n, d := range t.daemons() {
		if d.Alive() {
			fail("%s still runs after the cluster stopped", n)
		}
	}
	return r, nil
}

// waitCheckpoint waits until every running job (a finished one counts as
// recovered) completes a checkpoint newer than every checkpoint it had,
// completed or not, when called: after a heal, one triggered after it.
// endAndVerify ends the workload's input, waits (up to ckWait) for every
// running job to complete a checkpoint after it and (up to filesWait) for
// the file job to finish, then has the verifier judge what the jobs wrote.
// Each problem goes to fail, after names when the checkpoints fail.
func endAndVerify(t *topology, w *workload, ckWait, filesWait time.Duration, after string, fail func(string, ...any)) []Check {
	if err := w.end(); err != nil {
		fail("input: %v", err)
	}
	if err := waitCheckpoint(t, w, ckWait); err != nil {
		fail("%s: %v", after, err)
	}
	if _, err := t.cli.Wait(w.ids[jobFiles], filesWait, nil); err != nil {
		fail("%s: %v", jobFiles, err)
	}
	checks := []Check{verifyCounts(t.brokers), verifyVisits(t.brokers), verifyFiles(w.fileOut, w.fileEvs)}
	for _, c := range checks {
		if !c.OK() {
			fail("output %s", c)
		}
	}
	return checks
}

func waitCheckpoint(t *topology, w *workload, timeout time.Duration) error {
	base := map[string]int64{}
	for name, id := range w.ids {
		cps, _ := t.checkpoints(id)
		for _, c := range cps {
			base[name] = max(base[name], c.ID)
		}
	}
	pending := map[string]bool{}
	for name := range w.ids {
		pending[name] = true
	}
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 {
		for name := range pending {
			id := w.ids[name]
			st, err := t.status(id)
			if err != nil {
				continue
			}
			if st.State == "FINISHED" {
				delete(pending, name)
				continue
			}
			if st.State == "FAILED" || st.State == "CANCELED" {
				return fmt.Errorf("job %s is %s: %s", name, st.State, st.Error)
			}
			cps, _ := t.checkpoints(id)
			for _, c := range cps {
				if c.Status == "COMPLETED" && c.ID > base[name] && st.State == "RUNNING" {
					delete(pending, name)
					break
				}
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for n := range pending {
				names = append(names, n)
			}
			slices.Sort(names)
			return errors.New("no checkpoint completed within " + timeout.String() + " by " + strings.Join(names, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// timestamped logs lines to w, each after the UTC time of day.
func timestamped(w io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
	}
}
