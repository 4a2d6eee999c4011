package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weir-run/weir/bench/cluster"
	"github.com/weir-run/weir/internal/sealing"
)

// peers runs the Beam/Prism peer on the selected peer queries over
// --peer-events events, and checks its output against the baseline's.
func (h *harness) peers(res *Results) []Peer {
	if h.o.peer == "none" {
		return nil
	}
	var qs []string
	for _, q := range h.o.queries {
		if peerQueries[q] {
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return nil
	}
	res.Config.PeerEvents = h.o.peerEvents
	fmt.Fprintln(h.out, "building the Beam/Prism peer (its own module; minutes the first time)")
	bin := filepath.Join(h.tmp, "beampeer")
	if err := goBuild(filepath.Join(h.root, "bench", "peers", "beam"), bin, "."); err != nil {
		return []Peer{{Engine: "beam-prism", Query: qs[0], Error: err.Error()}}
	}
	var out []Peer
	for _, q := range qs {
		fmt.Fprintf(h.out, "%s: Beam/Prism peer over %d events\n", q, h.o.peerEvents)
		p := Peer{Engine: "beam-prism", Query: q}
		base, err := h.runBaseline(q, h.o.peerEvents)
		if err == nil {
			p.Run, err = runResultJSON(exec.Command(bin, "--query", q, "--events", strconv.FormatInt(h.o.peerEvents, 10),
				"--seed", strconv.FormatUint(h.o.seed, 10)))
		}
		if err != nil {
			p.Error = err.Error()
		}
		p.ChecksumOK = err == nil && p.Run.Checksum == base.Checksum
		out = append(out, p)
	}
	return out
}

// recovery runs one query paced at half its throughput on a cluster whose
// workers have room for the whole job on one of them, kills the worker of
// the first task with SIGKILL once a checkpoint has completed, and times
// how long until the job runs again and its sink sees records again. The
// output must still equal the baseline's: exactly once across the kill.
func (h *harness) recovery(res *Results) *Recovery {
	q := h.o.recovery
	p := slices.Max(h.o.parallelism)
	rate := h.o.recoveryRate
	for _, qr := range res.Queries {
		if qr.Name == q && len(qr.Weir) > 0 && rate == 0 {
			rate = qr.Weir[len(qr.Weir)-1].Run.PerSec() / 2
		}
	}
	if rate == 0 {
		rate = 100_000
	}
	// Long enough for a checkpoint, the kill, the restart and some more.
	secs := h.o.checkpointEvery.Seconds() + 8
	r := &Recovery{Query: q, Parallelism: p, Rate: float64(int64(rate)), Events: int64(rate * secs)}
	fmt.Fprintf(h.out, "recovery: %s at parallelism %d, %.0f events/s, a worker killed after the first checkpoint\n", q, p, r.Rate)
	fail := func(err error) *Recovery { r.Error = err.Error(); return r }
	base, err := h.runBaseline(q, r.Events)
	if err != nil {
		return fail(err)
	}
	dir := filepath.Join(h.tmp, "recovery")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	env, _ := h.profileEnv("recovery-" + q)
	c, err := cluster.StartSimple(h.weir, dir, cluster.SimpleConfig{Workers: 2, Slots: p, Env: env})
	if err != nil {
		return fail(err)
	}
	defer c.Stop()
	reportDir := filepath.Join(dir, "reports")
	os.MkdirAll(reportDir, 0o755)
	submitted := time.Now()
	id, err := c.Submit(runFlags("nexmark-recovery-"+q, p, h.o.checkpointEvery, h.o.gogc), h.job,
		h.jobArgs(q, r.Events, reportDir, "--rate", strconv.FormatFloat(r.Rate, 'f', 0, 64))...)
	if err != nil {
		return fail(err)
	}
	// Wait for a completed checkpoint, so the restart restores state.
	deadline := time.Now().Add(3*h.o.checkpointEvery + 30*time.Second)
	for {
		r.PeakRSSBefore = max(r.PeakRSSBefore, jobPeakRSS(c))
		cps, _ := c.Checkpoints(id)
		if i := slices.IndexFunc(cps, func(c checkpoint) bool { return c.Status == "COMPLETED" }); i >= 0 {
			r.KilledAfter = fmt.Sprintf("checkpoint %d", cps[i].ID)
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("no checkpoint completed within %v", 3*h.o.checkpointEvery+30*time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err := c.Status(id)
	if err != nil || len(st.Tasks) == 0 {
		return fail(fmt.Errorf("status before the kill: %v", err))
	}
	attempt := st.Attempt
	victim := st.Tasks[0].Worker
	killed := time.Now()
	r.KillSec = killed.Sub(submitted).Seconds()
	if err := c.Kill(victim); err != nil {
		return fail(err)
	}
	st, err = c.Wait(id, jobTimeout(r.Events), func(s jobStatus) {
		if r.RunningSec == 0 && s.Attempt > attempt && s.AllRunning() {
			r.RunningSec = time.Since(killed).Seconds()
		}
		if s.Attempt > attempt {
			r.PeakRSSAfter = max(r.PeakRSSAfter, jobPeakRSS(c))
		}
	})
	if err != nil {
		return fail(err)
	}
	r.DoneSec = time.Since(killed).Seconds()
	r.Restarts = st.Restarts
	reps, err := readReports(reportDir)
	if err != nil {
		return fail(err)
	}
	var flowing int64
	for _, rep := range reps {
		if rep.Attempt > attempt && rep.FirstWriteNs > 0 && (flowing == 0 || rep.FirstWriteNs < flowing) {
			flowing = rep.FirstWriteNs
		}
	}
	if flowing > 0 {
		r.FlowingSec = float64(flowing-killed.UnixNano()) / 1e9
	}
	r.ChecksumOK = summarize(reps, r.Events, 0).Checksum == base.Checksum
	return r
}

// feature is what an overhead scenario turns on and off: coordinator
// flags for a cluster under dir.
type feature struct {
	name    string
	off, on func(dir string) ([]string, error)
}

func fixedFlags(flags ...string) func(string) ([]string, error) {
	return func(string) ([]string, error) { return flags, nil }
}

var (
	dataPlaneTLS = feature{name: "data-plane TLS",
		off: fixedFlags("--data-plane-tls", "off"), on: fixedFlags("--data-plane-tls", "on")}
	encryptionAtRest = feature{name: "encryption at rest", off: fixedFlags("--kek", "none"),
		on: func(dir string) ([]string, error) {
			path := filepath.Join(dir, "kek")
			return []string{"--kek", "file:" + path}, sealing.GenerateKEKFile(path)
		}}
)

// overhead runs q at parallelism 2 (one subtask per worker, so every
// shuffled record crosses processes) on two clusters that differ only in
// f, alternating runs without and with it.
func (h *harness) overhead(res *Results, f feature, q string) Overhead {
	const p = 2
	o := Overhead{Feature: f.name, Query: q, Parallelism: p}
	fmt.Fprintf(h.out, "%s: %s at parallelism %d, %d rounds\n", f.name, q, p, h.o.overheadRounds)
	fail := func(err error) Overhead { o.Error = err.Error(); return o }
	base, err := h.measuredBaseline(res, q)
	if err != nil {
		return fail(err)
	}
	modes := []struct {
		name  string
		flags func(string) ([]string, error)
		runs  *[]WeirRun
	}{{"off", f.off, &o.Off}, {"on", f.on, &o.On}}
	clusters := make([]*cluster.Simple, len(modes))
	for i, m := range modes {
		dir := filepath.Join(h.tmp, fmt.Sprintf("overhead-%s-%s-%s", strings.ReplaceAll(f.name, " ", "-"), q, m.name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail(err)
		}
		flags, err := m.flags(dir)
		if err != nil {
			return fail(err)
		}
		c, err := cluster.StartSimple(h.weir, dir, cluster.SimpleConfig{Workers: 2, Slots: 1, CoordinatorFlags: flags})
		if err != nil {
			return fail(err)
		}
		defer c.Stop()
		clusters[i] = c
	}
	for round := range h.o.overheadRounds {
		for i, m := range modes {
			w, _, err := h.runJob(clusters[i], q, p, h.o.events, fmt.Sprintf("%s-%d", m.name, round))
			if err != nil {
				return fail(fmt.Errorf("%s %s: %w", f.name, m.name, err))
			}
			w.ChecksumOK = w.Run.Checksum == base.Checksum
			*m.runs = append(*m.runs, w)
		}
	}
	return o
}

// scaleOut runs q alternately at parallelism 1 and 2 (--scale-out-rounds
// of each) on a cluster of two workers of one slot, each confined to a CPU
// of its own (SimpleConfig.PinWorkers), so that p=2 has twice p=1's cores,
// as when a user adds a machine. In the main runs every worker may use
// every core: p=1 already keeps more than one busy (its source and its
// keyed operator run side by side), and p=2 can gain only what the cores
// it leaves idle allow (the scaling table).
func (h *harness) scaleOut(res *Results, q string) ScaleOut {
	s := ScaleOut{Query: q}
	fmt.Fprintf(h.out, "scale-out: %s at parallelism 1 and 2, each worker on a CPU of its own, %d rounds\n", q, h.o.scaleOutRounds)
	fail := func(err error) ScaleOut { s.Error = err.Error(); return s }
	base, err := h.measuredBaseline(res, q)
	if err != nil {
		return fail(err)
	}
	dir := filepath.Join(h.tmp, "scale-out-"+q)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	env, profDir := h.profileEnv("scale-out-" + q)
	c, err := cluster.StartSimple(h.weir, dir, cluster.SimpleConfig{Workers: 2, Slots: 1, PinWorkers: true, Env: env})
	if err != nil {
		return fail(err)
	}
	defer c.Stop()
	for round := range h.o.scaleOutRounds {
		for _, at := range []struct {
			p    int
			runs *[]WeirRun
		}{{1, &s.P1}, {2, &s.P2}} {
			w, err := h.profiledRun(c, profDir, q, at.p, fmt.Sprintf("p%d-%d", at.p, round))
			if err != nil {
				return fail(fmt.Errorf("p=%d: %w", at.p, err))
			}
			w.ChecksumOK = w.Run.Checksum == base.Checksum
			*at.runs = append(*at.runs, w)
		}
	}
	return s
}
