package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
)

// Kind is a kind of fault.
type Kind string

// The fault kinds, in the order of docs/chaos.md.
const (
	KillWorker      Kind = "kill-worker"      // kill -9 a worker hosting tasks; restart it 2 s later on its data dir
	KillJobProcess  Kind = "kill-job-process" // kill -9 one job process
	KillLeader      Kind = "kill-leader"      // kill -9 the leading coordinator; restart it 1 s later
	KillEtcd        Kind = "kill-etcd"        // kill -9 an etcd member; restart it 3 s later on its data dir
	KillBroker      Kind = "kill-broker"      // kill -9 weir kafka; restart it 1 s later on its data dir
	StopBroker      Kind = "stop-broker"      // stop weir kafka (SIGTERM); restart it 1 s later on its data dir
	KillStore       Kind = "kill-store"       // kill -9 versitygw; restart it 2 s later on its directory
	NetLatency      Kind = "net-latency"      // 200±50 ms each way on every client's link to the broker, 5 s
	NetBandwidth    Kind = "net-bandwidth"    // 32 KB/s each way on every link to the store, 5 s
	NetReset        Kind = "net-reset"        // connections to the broker reset at once, 2 s
	NetBlackhole    Kind = "net-blackhole"    // the leader's links to etcd drop everything, 6 s
	PartitionWorker Kind = "partition-worker" // a worker's links to etcd drop everything, 8 s (past --worker-timeout)
	SlowStore       Kind = "slow-store"       // 1 s each way on every link to the store, 6 s
	// DiskFull fills a worker's data directory (a tmpfs of its own): every
	// block and inode; one of its job processes is killed so that its
	// region restarts and needs the disk; freed 6 s later.
	DiskFull Kind = "disk-full"
	// IsolateWorker cuts every link of a worker and its job processes at
	// once (iptables drops every packet their group sends), 8 s.
	IsolateWorker Kind = "isolate-worker"
	// LeaderInRegionRestart kills -9 a job process and, while its region
	// restarts, the leading coordinator (restarted 1 s later): only that
	// region may restart.
	LeaderInRegionRestart Kind = "leader-in-region-restart"
)

// Kinds lists every fault kind.
var Kinds = []Kind{KillWorker, KillJobProcess, KillLeader, KillEtcd, KillBroker, StopBroker, KillStore,
	NetLatency, NetBandwidth, NetReset, NetBlackhole, PartitionWorker, SlowStore, DiskFull, IsolateWorker, LeaderInRegionRestart}

// ParseKinds reads a comma-separated list of kinds.
func ParseKinds(s string) ([]Kind, error) {
	var ks []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		found := false
		for _, known := range Kinds {
			found = found || k == known
		}
		if !found {
			return nil, fmt.Errorf("unknown fault kind %q (known: %v)", k, Kinds)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// Schedule is the seeded order of n faults: every kind once in a random
// order, then again in another, so a campaign of len(kinds) faults or more
// has each kind.
func Schedule(seed uint64, n int, kinds []Kind) []Kind {
	rng := rand.New(rand.NewPCG(seed, 0xfa017))
	var s []Kind
	for len(s) < n {
		p := rng.Perm(len(kinds))
		for _, i := range p {
			if len(s) < n {
				s = append(s, kinds[i])
			}
		}
	}
	return s
}

// injector injects faults into a topology.
type injector struct {
	t   *topology
	w   *workload
	rng *rand.Rand
	// check, when an injection sets it, judges the fault once the jobs
	// recovered; note is what the injection observed, for the report.
	check func() error
	note  string
	// at is when the injection did its first harm: what it looked up
	// before (job status through the CLI, slow on a loaded machine) is not
	// the fault's.
	at time.Time
	// failover, when a leader was killed, gets the time until another
	// coordinator led (0: none did within 30 s).
	failover chan time.Duration
}

// mark records the injection's first harm, once.
func (in *injector) mark() {
	if in.at.IsZero() {
		in.at = time.Now()
	}
}

// watchFailover measures, from now, the time until a coordinator other
// than old leads, as etcd's election says.
func (in *injector) watchFailover(old string) {
	start := time.Now()
	ch := make(chan time.Duration, 1)
	in.failover = ch
	go func() {
		for time.Since(start) < 30*time.Second {
			if l := in.t.leader(); l != "" && l != old {
				ch <- time.Since(start)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		ch <- 0
	}()
}

// inject starts fault k and returns what it hit and how to end it; heal
// restarts what was killed or removes the toxics.
func (in *injector) inject(k Kind) (target string, heal func() error, err error) {
	t := in.t
	restartAfter := func(name string, d time.Duration) func() error {
		return func() error { time.Sleep(d); return t.start(name) }
	}
	kill := func(name string) { in.mark(); t.daemon(name).Kill() }
	switch k {
	case KillWorker:
		w := in.busyWorker()
		kill(w)
		return w, restartAfter(w, 2*time.Second), nil
	case KillJobProcess:
		job, pid, worker, err := in.jobProcess()
		if err != nil {
			return "", nil, err
		}
		in.mark()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return "", nil, fmt.Errorf("kill job process %d: %w", pid, err)
		}
		return fmt.Sprintf("%s pid %d on %s", job, pid, worker), func() error { return nil }, nil
	case KillLeader:
		l := t.leader()
		if l == "" {
			return "", nil, fmt.Errorf("no coordinator leads")
		}
		kill("coord-" + l)
		in.watchFailover(l)
		return "coord-" + l, restartAfter("coord-"+l, time.Second), nil
	case KillEtcd:
		e := etcdName(in.rng.IntN(3))
		kill(e)
		return e, restartAfter(e, 3*time.Second), nil
	case KillBroker:
		kill(kafkaName)
		return kafkaName, restartAfter(kafkaName, time.Second), nil
	case StopBroker:
		in.mark()
		t.daemon(kafkaName).Stop(10 * time.Second)
		return kafkaName, restartAfter(kafkaName, time.Second), nil
	case KillStore:
		kill(storeName)
		return storeName, restartAfter(storeName, 2*time.Second), nil
	case NetLatency:
		return in.toxic(kafkaName, 5*time.Second, `"type":"latency","attributes":{"latency":200,"jitter":50}`)
	case NetBandwidth:
		return in.toxic(storeName, 5*time.Second, `"type":"bandwidth","attributes":{"rate":32}`)
	case NetReset:
		return in.toxic(kafkaName, 2*time.Second, `"type":"reset_peer","attributes":{"timeout":0}`)
	case NetBlackhole:
		l := t.leader()
		if l == "" {
			return "", nil, fmt.Errorf("no coordinator leads")
		}
		return in.toxic("coord-"+l+"-e", 6*time.Second, `"type":"timeout","attributes":{"timeout":0}`)
	case PartitionWorker:
		return in.toxic(in.busyWorker()+"-e", 8*time.Second, `"type":"timeout","attributes":{"timeout":0}`)
	case SlowStore:
		return in.toxic(storeName, 6*time.Second, `"type":"latency","attributes":{"latency":1000}`)
	case DiskFull:
		return in.diskFull()
	case IsolateWorker:
		if t.isolateErr != nil {
			return "", nil, t.isolateErr
		}
		w := in.busyWorker()
		in.mark()
		if err := isolate(t.gids[w]); err != nil {
			return "", nil, err
		}
		return w + " (every link)", func() error { time.Sleep(8 * time.Second); unisolate(t.gids[w]); return nil }, nil
	case LeaderInRegionRestart:
		return in.leaderInRegionRestart()
	}
	return "", nil, fmt.Errorf("unknown fault kind %q", k)
}

// toxic adds the toxic attrs, both ways, to every proxy whose name starts
// with prefix, and heals by removing it after hold.
func (in *injector) toxic(prefix string, hold time.Duration, attrs string) (string, func() error, error) {
	ps := in.t.proxiesOf(prefix)
	if len(ps) == 0 {
		return "", nil, fmt.Errorf("no proxy %s*", prefix)
	}
	var added []*toxiproxy.Proxy
	in.mark()
	for _, p := range ps {
		for _, stream := range []string{"upstream", "downstream"} {
			js := fmt.Sprintf(`{"name":"chaos-%s",%s,"stream":%q}`, stream, attrs, stream)
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				return "", nil, fmt.Errorf("toxic on %s: %w", p.Name, err)
			}
		}
		added = append(added, p)
	}
	heal := func() error {
		time.Sleep(hold)
		for _, p := range added {
			p.Toxics.RemoveToxic(context.Background(), "chaos-upstream")
			p.Toxics.RemoveToxic(context.Background(), "chaos-downstream")
		}
		return nil
	}
	return fmt.Sprintf("%s* (%d links)", prefix, len(added)), heal, nil
}

// busyWorker is a random worker hosting tasks of a running job (any
// worker when none is known).
func (in *injector) busyWorker() string {
	var hosts []string
	for _, id := range in.w.ids {
		if st, err := in.t.status(id); err == nil {
			for _, tk := range st.Tasks {
				hosts = append(hosts, tk.Worker)
			}
		}
	}
	for i := len(hosts) - 1; i >= 0; i-- {
		if in.t.comps[hosts[i]] == nil {
			hosts = append(hosts[:i], hosts[i+1:]...)
		}
	}
	if len(hosts) == 0 {
		return in.t.workers[in.rng.IntN(len(in.t.workers))]
	}
	return hosts[in.rng.IntN(len(hosts))]
}

// jobProcess is a random job process of a running job.
func (in *injector) jobProcess() (job string, pid int, worker string, err error) {
	ps := in.jobProcesses("")
	if len(ps) == 0 {
		return "", 0, "", fmt.Errorf("no running job process")
	}
	p := ps[in.rng.IntN(len(ps))]
	return p.job, p.pid, p.worker, nil
}

// jobProc is one job process of a running job.
type jobProc struct {
	job, worker string
	pid         int
}

// jobProcesses lists the job processes of the running jobs, each once, on
// worker w ("": on any).
func (in *injector) jobProcesses(w string) []jobProc {
	var ps []jobProc
	for _, name := range []string{jobCounts, jobVisits, jobFiles} {
		st, err := in.t.status(in.w.ids[name])
		if err != nil || st.State != "RUNNING" {
			continue
		}
		seen := map[int32]bool{}
		for _, tk := range st.Tasks {
			if tk.PID > 0 && !seen[tk.PID] && (w == "" || tk.Worker == w) {
				seen[tk.PID] = true
				ps = append(ps, jobProc{name, tk.Worker, int(tk.PID)})
			}
		}
	}
	return ps
}

// diskFull fills a busy worker's data directory and kills one of its job
// processes, so that the region restarts while the disk is full (on that
// worker or elsewhere); the disk is freed 6 s later. The note is the
// first log line that names the full disk.
func (in *injector) diskFull() (string, func() error, error) {
	t := in.t
	if t.diskErr != nil {
		return "", nil, t.diskErr
	}
	w := in.busyWorker()
	dir := t.disks[w]
	offsets := logSizes(t)
	in.mark()
	n, files, err := fillDisk(dir)
	if err != nil {
		freeDisk(dir)
		return "", nil, fmt.Errorf("fill %s: %w", dir, err)
	}
	target := fmt.Sprintf("%s (%d MiB, %d inodes)", w, n>>20, files)
	if job, pid, err := in.jobProcessOn(w); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
		target += fmt.Sprintf(", %s pid %d killed", job, pid)
	}
	return target, func() error {
		time.Sleep(6 * time.Second)
		err := freeDisk(dir)
		in.note = firstLogLine(t, offsets, "no space left on device")
		if in.note == "" {
			in.note = "no log line names the full disk (no restart needed it)"
		}
		return err
	}, nil
}

// leaderInRegionRestart kills -9 a job process of a multi-region job
// (files, when it runs), waits until the coordinator restarts its region,
// and kills -9 the leading coordinator then. The check: every other region
// of the job kept its attempt (the new leader did not restart the whole
// job), and the killed region runs a newer one.
func (in *injector) leaderInRegionRestart() (string, func() error, error) {
	t := in.t
	job, pid, worker, region, before, err := in.regionProcess()
	if err != nil {
		return "", nil, err
	}
	in.mark()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return "", nil, fmt.Errorf("kill job process %d: %w", pid, err)
	}
	// The region is restarting once one of its tasks left RUNNING or its
	// attempt moved on.
	restarting := func() bool {
		st, err := t.status(in.w.ids[job])
		if err != nil {
			return false
		}
		for _, tk := range st.Tasks {
			if tk.Region == region && (tk.State != "RUNNING" || tk.Attempt != before[region]) {
				return true
			}
		}
		return false
	}
	waited := time.Now()
	seen := waitFor(5*time.Second, restarting) == nil
	l := t.leader()
	if l == "" {
		return "", nil, fmt.Errorf("no coordinator leads")
	}
	t.daemon("coord-" + l).Kill()
	in.watchFailover(l)
	target := fmt.Sprintf("%s region %d (pid %d on %s), then coord-%s", job, region, pid, worker, l)
	if seen {
		target += fmt.Sprintf(" %.1fs later, mid-restart", time.Since(waited).Seconds())
	} else {
		target += " (the region's restart was not seen within 5 s)"
	}
	id := in.w.ids[job]
	in.check = func() error {
		st, err := t.status(id)
		if err != nil {
			return err
		}
		if st.State == "FINISHED" {
			return nil
		}
		var errs []string
		seen := map[int32]bool{}
		for _, tk := range st.Tasks {
			if seen[tk.Region] {
				continue
			}
			seen[tk.Region] = true
			switch {
			case tk.Region != region && tk.Attempt != before[tk.Region]:
				errs = append(errs, fmt.Sprintf("the whole job restarted: region %d went from attempt %d to %d although only region %d failed", tk.Region, before[tk.Region], tk.Attempt, region))
			case tk.Region == region && tk.Attempt == before[region]:
				errs = append(errs, fmt.Sprintf("region %d still runs attempt %d, whose process was killed", region, tk.Attempt))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s: %s", job, strings.Join(errs, "; "))
		}
		in.note = fmt.Sprintf("%s: only region %d restarted (attempt %d); the job has %d region(s)", job, region, before[region], len(before))
		return nil
	}
	return target, func() error { time.Sleep(time.Second); return t.start("coord-" + l) }, nil
}

// regionProcess is a job process of a running job, preferring one with
// more than one region, with its region and every region's attempt.
func (in *injector) regionProcess() (job string, pid int, worker string, region int32, attempts map[int32]int64, err error) {
	for _, name := range []string{jobFiles, jobCounts, jobVisits} {
		st, err := in.t.status(in.w.ids[name])
		if err != nil || !st.AllRunning() {
			continue
		}
		attempts = map[int32]int64{}
		for _, tk := range st.Tasks {
			attempts[tk.Region] = tk.Attempt
		}
		if len(attempts) < 2 && name == jobFiles {
			continue
		}
		tk := st.Tasks[in.rng.IntN(len(st.Tasks))]
		if tk.PID <= 0 {
			continue
		}
		return name, int(tk.PID), tk.Worker, tk.Region, attempts, nil
	}
	return "", 0, "", 0, nil, fmt.Errorf("no job runs all its tasks")
}

// jobProcessOn is a random job process on worker w.
func (in *injector) jobProcessOn(w string) (job string, pid int, err error) {
	ps := in.jobProcesses(w)
	if len(ps) == 0 {
		return "", 0, fmt.Errorf("no job process on %s", w)
	}
	p := ps[in.rng.IntN(len(ps))]
	return p.job, p.pid, nil
}
