package worker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/bytesize"
	"github.com/weir-run/weir/internal/chunkio"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/pki"
	"github.com/weir-run/weir/internal/procstat"
	"github.com/weir-run/weir/internal/taskenv"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"github.com/weir-run/weir/worker/bincache"
	"github.com/weir-run/weir/worker/supervisor"
)

// stopGrace is how long a cancelled job process gets to exit after SIGTERM.
const stopGrace = 5 * time.Second

// Exited processes are remembered for the next leader's registration, so a
// job that finished or failed while no coordinator led is not mistaken for
// one whose processes vanished. Bounded in count and age: a leader that
// re-attaches needs only the exits of the attempts it restores.
const (
	recentExits   = 64
	recentExitAge = 10 * time.Minute
)

// Worker is one running worker.
type Worker struct {
	weirv1.UnimplementedTaskServiceServer
	cfg      Config
	logger   *slog.Logger
	etcd     *clientv3.Client
	cache    *bincache.Cache
	taskAddr string
	// cgroups places job processes with a memory limit in groups of their
	// own; nil when the worker cannot, and noLimits says why.
	cgroups  *cgroups
	noLimits string

	mu struct {
		sync.Mutex
		procs  map[procKey]*jobProc
		recent []exitedProc               // newest last
		out    chan *weirv1.WorkerMessage // current coordinator stream; nil when disconnected
		client weirv1.ClusterServiceClient
	}
	live liveness
	wg   sync.WaitGroup // liveness updates and the etcd probe in flight
}

// exitedProc is a job process that exited, as the next leader must hear it.
type exitedProc struct {
	at   time.Time
	info *weirv1.RunningProcess
}

// procKey names a job process (weirv1.ProcessKey as a map key): a job with
// several pipelined regions runs one process per region on a worker, each
// at its region's attempt.
type procKey struct {
	job     string
	attempt int64
	region  int32
}

func keyOf(k *weirv1.ProcessKey) procKey {
	return procKey{k.GetJobId(), k.GetAttempt(), k.GetRegion()}
}

func (k procKey) proto() *weirv1.ProcessKey {
	return &weirv1.ProcessKey{JobId: k.job, Attempt: k.attempt, Region: k.region}
}

// jobProc is a job process this worker started for one attempt.
type jobProc struct {
	key   procKey
	token string
	// channelSecret is the attempt's, for the process's environment.
	channelSecret string
	dataTLS       bool // the data plane runs TLS (DeployProcess.data_tls)
	subtasks      []*weirv1.SubtaskRef
	assign        *weirv1.AssignTasks         // for the process when it attaches
	cmds          chan *weirv1.ProcessCommand // to the attached process
	started       chan struct{}               // closed once proc is set
	proc          *supervisor.Process
	stopping      bool
	// What the process reported, for a new leader's registration.
	dataAddr string
	dataCert []byte // SHA-256 of its DataService certificate, under TLS
	tasks    map[taskKey]*weirv1.TaskStateUpdate
	// metrics is the process's latest report, for the worker's /metrics.
	metrics *weirv1.ProcessMetrics
}

type taskKey struct{ vertex, subtask int32 }

// infoLocked describes jp for a registration. w.mu must be held.
func (jp *jobProc) infoLocked() *weirv1.RunningProcess {
	rp := &weirv1.RunningProcess{JobId: jp.key.job, Attempt: jp.key.attempt, Region: jp.key.region, DataAddress: jp.dataAddr,
		DataCertSha256: jp.dataCert, Subtasks: jp.subtasks}
	if jp.proc != nil {
		rp.Pid = int32(jp.proc.Pid())
	}
	for _, st := range jp.subtasks {
		if u := jp.tasks[taskKey{st.VertexId, st.Subtask}]; u != nil {
			rp.Tasks = append(rp.Tasks, u)
		}
	}
	return rp
}

// Run runs the worker until ctx is done, then stops its job processes.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger = logger.With("worker", cfg.ID)
	cli, err := clientv3.New(etcdkeys.ClientConfig(cfg.Etcd, cfg.TLS))
	if err != nil {
		return fmt.Errorf("worker: etcd: %w", err)
	}
	defer cli.Close()
	w := &Worker{cfg: cfg, logger: logger, etcd: cli}
	w.mu.procs = make(map[procKey]*jobProc)
	if err := privateDir(cfg.DataDir, "jobs"); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if w.cgroups, w.noLimits = setupCgroups(); w.noLimits != "" {
		logger.Warn("job memory limits (weir run --memory) are not enforced on this worker", "reason", w.noLimits)
	}
	if w.cache, err = bincache.New(filepath.Join(cfg.DataDir, "binaries"), w.fetch, logger); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	// Job processes are this worker's children: TaskService stays on loopback.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("worker: listen for job processes: %w", err)
	}
	w.taskAddr = lis.Addr().String()
	if cfg.Meter != nil {
		if err := w.registerMetrics(cfg.Meter); err != nil {
			return err
		}
	}
	if cfg.HTTP != "" && cfg.Metrics != nil {
		hl, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			return fmt.Errorf("worker: listen on --http %s: %w", cfg.HTTP, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", cfg.Metrics)
		// Probes (the image's HEALTHCHECK, Kubernetes): the worker serves.
		mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(rw, "{\"id\":%q}\n", cfg.ID)
		})
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(hl)
		defer hs.Close()
		logger.Info("worker metrics served", "http", hl.Addr().String()) // the port picked for :0
	}
	if cfg.TLS == nil && (!pki.IsLoopback(cfg.Host) || (cfg.HTTP != "" && !pki.IsLoopback(cfg.HTTP))) {
		logger.Warn("INSECURE: plaintext beyond loopback (--insecure-plaintext): anyone who reaches the job processes' data ports can read and inject records", "host", cfg.Host)
	}
	srv := grpc.NewServer()
	weirv1.RegisterTaskServiceServer(srv, w)
	go srv.Serve(lis)
	defer srv.Stop()

	defer func() {
		w.wg.Wait()
		w.live.close()
	}()
	w.wg.Go(func() { etcdkeys.LogReachability(ctx, w.etcd, etcdProbeInterval, w.logger) })
	w.follow(ctx)
	w.stopAll()
	return nil
}

// etcdProbeInterval is how often a worker checks that etcd answers, to log
// an outage (see etcdkeys.LogReachability).
const etcdProbeInterval = 5 * time.Second

// follow keeps a session with whichever coordinator leads, moving to a new
// leader as soon as etcd names it rather than after the old stream times
// out, until ctx is done.
func (w *Worker) follow(ctx context.Context) {
	leaders := etcdkeys.Watch(ctx, w.etcd, etcdkeys.Election)
	addr := ""
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if addr == "" {
			select {
			case addr = <-leaders:
			case <-ctx.Done():
			}
			continue
		}
		sctx, cancel := context.WithCancelCause(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func(addr string) { done <- w.session(sctx, addr) }(addr)
		var err error
		changed := false
	running:
		for {
			select {
			case a := <-leaders:
				if a != addr {
					addr, changed = a, true
					cancel(errors.New("the leader changed"))
				}
			case err = <-done:
				break running
			}
		}
		cancel(nil)
		if ctx.Err() != nil {
			return
		}
		if changed {
			w.logger.Info("following the new leader", "coordinator", addr)
			backoff = 100 * time.Millisecond
			continue
		}
		if time.Since(start) > 5*time.Second {
			backoff = 100 * time.Millisecond
		}
		w.logger.Warn("coordinator connection ended; reconnecting", "err", err, "in", backoff)
		// Wait out the backoff, but not past a leader change.
		t := time.NewTimer(backoff)
	wait:
		for {
			select {
			case <-ctx.Done():
				break wait
			case <-t.C:
				break wait
			case a := <-leaders:
				if a != addr {
					addr = a
					backoff = 50 * time.Millisecond
					break wait
				}
			}
		}
		t.Stop()
		backoff = min(2*backoff, 2*time.Second)
	}
}

// session registers with the coordinator at addr and serves it until the
// stream or ctx ends.
func (w *Worker) session(ctx context.Context, addr string) error {
	creds := insecure.NewCredentials()
	if w.cfg.TLS != nil {
		creds = credentials.NewTLS(w.cfg.TLS.ClientConfig(pki.RoleCoordinator))
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, scancel := context.WithCancelCause(ctx)
	defer scancel(nil)
	client := weirv1.NewClusterServiceClient(conn)
	stream, err := client.Connect(sctx)
	if err != nil {
		return err
	}
	// The registration lists this worker's processes as of the moment out
	// starts collecting reports, so the leader misses no task state between
	// the two: later reports queue behind the registration.
	out := make(chan *weirv1.WorkerMessage, 1024)
	w.mu.Lock()
	procs := w.processesLocked()
	w.mu.out, w.mu.client = out, client
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		if w.mu.out == out {
			w.mu.out = nil
		}
		w.mu.Unlock()
	}()
	host, _ := os.Hostname()
	if err := stream.Send(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Register{Register: &weirv1.RegisterWorker{
		WorkerId: w.cfg.ID, Slots: int32(w.cfg.Slots), Host: host, Pid: int32(os.Getpid()), Processes: procs,
		MemoryLimitUnavailable: w.noLimits, Goos: runtime.GOOS, Goarch: runtime.GOARCH,
	}}}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("register with %s: %w", addr, err)
	}
	interval := time.Second
	r := first.GetRegistered()
	if r != nil && r.HeartbeatIntervalMs > 0 {
		interval = time.Duration(r.HeartbeatIntervalMs) * time.Millisecond
	}
	w.logger.Info("registered with coordinator", "coordinator", addr, "slots", w.cfg.Slots, "processes", len(procs))
	if r != nil && r.WorkerTimeoutMs > 0 {
		w.wg.Go(func() {
			w.live.ensure(w.etcd, etcdkeys.Workers+w.cfg.ID, host, time.Duration(r.WorkerTimeoutMs)*time.Millisecond, w.logger)
		})
	}

	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case m := <-out:
				if err := stream.Send(m); err != nil {
					scancel(err)
					return
				}
			case <-tick.C:
				mem := procstat.Memory()
				hb := &weirv1.Heartbeat{UnixMs: time.Now().UnixMilli(), RssBytes: mem.RssBytes, Memory: mem}
				if err := stream.Send(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Heartbeat{Heartbeat: hb}}); err != nil {
					scancel(err)
					return
				}
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			if c := context.Cause(sctx); c != nil {
				return c
			}
			return err
		}
		switch m := m.Msg.(type) {
		case *weirv1.CoordinatorMessage_Deploy:
			w.deploy(ctx, m.Deploy)
		case *weirv1.CoordinatorMessage_Describe:
			w.describe(ctx, m.Describe)
		case *weirv1.CoordinatorMessage_Process:
			// The one command the worker carries out itself; the others
			// go to the process as they came.
			if m.Process.GetCancel() != nil {
				w.stop(keyOf(m.Process.Key))
				continue
			}
			w.command(keyOf(m.Process.Key), m.Process)
		}
	}
}

// reportLocked queues a message for the coordinator without blocking (no
// I/O under the lock), if connected. Reports made while disconnected are
// dropped: what a new leader needs of them is in the next registration
// (processesLocked).
func (w *Worker) reportLocked(m *weirv1.WorkerMessage) {
	if w.mu.out == nil {
		return
	}
	select {
	case w.mu.out <- m:
	default:
		w.logger.Warn("coordinator stream backlogged; dropping report")
	}
}

// processesLocked lists the running job processes and the recent exits for
// a registration. w.mu must be held.
func (w *Worker) processesLocked() []*weirv1.RunningProcess {
	var out []*weirv1.RunningProcess
	for _, jp := range w.mu.procs {
		out = append(out, jp.infoLocked())
	}
	cut := time.Now().Add(-recentExitAge)
	keep := w.mu.recent[:0]
	for _, e := range w.mu.recent {
		if e.at.After(cut) {
			keep = append(keep, e)
			out = append(out, e.info)
		}
	}
	w.mu.recent = keep
	return out
}

// fetch streams a binary from the leader into the cache.
func (w *Worker) fetch(ctx context.Context, sha string) (io.ReadCloser, error) {
	w.mu.Lock()
	client := w.mu.client
	w.mu.Unlock()
	if client == nil {
		return nil, errors.New("not connected to a coordinator")
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := client.DownloadBinary(ctx, &weirv1.DownloadBinaryRequest{Sha256: sha})
	if err != nil {
		cancel()
		return nil, err
	}
	return readCloser{chunkio.NewReader(func() ([]byte, error) {
		c, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return c.Data, nil
	}), cancel}, nil
}

// readCloser ends a download's stream when the cache is done reading.
type readCloser struct {
	io.Reader
	cancel context.CancelFunc
}

func (r readCloser) Close() error { r.cancel(); return nil }

// deploy starts the job process of an attempt. Older attempts of the same
// job and region still running here are stopped: the coordinator has moved
// on. Other regions restart on their own and keep their processes.
func (w *Worker) deploy(ctx context.Context, d *weirv1.DeployProcess) {
	key := keyOf(d.Key)
	assign := d.Assign
	if assign == nil {
		assign = &weirv1.AssignTasks{}
	}
	jp := &jobProc{key: key, token: randomToken(), channelSecret: d.ChannelSecret, dataTLS: d.DataTls, subtasks: assign.Subtasks, assign: assign,
		cmds: make(chan *weirv1.ProcessCommand, 16), started: make(chan struct{}), tasks: make(map[taskKey]*weirv1.TaskStateUpdate)}
	w.mu.Lock()
	if w.mu.procs[key] != nil {
		w.mu.Unlock()
		return
	}
	var stale []procKey
	for k := range w.mu.procs {
		if k.job == key.job && k.region == key.region && k.attempt < key.attempt {
			stale = append(stale, k)
		}
	}
	w.mu.procs[key] = jp
	w.mu.Unlock()
	for _, k := range stale {
		w.stop(k)
	}
	logger := w.logger.With("job", key.job, "attempt", key.attempt, "region", key.region)
	go func() {
		exit := func(code int32, reason string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			delete(w.mu.procs, key)
			info := jp.infoLocked()
			info.Exited, info.ExitCode, info.Error = true, code, reason
			w.mu.recent = append(w.mu.recent, exitedProc{at: time.Now(), info: info})
			if len(w.mu.recent) > recentExits {
				w.mu.recent = w.mu.recent[len(w.mu.recent)-recentExits:]
			}
			w.reportLocked(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_ProcessExited{ProcessExited: &weirv1.ProcessExited{
				Key: key.proto(), ExitCode: code, Error: reason,
			}}})
		}
		exe, err := w.cache.Exec(ctx, d.BinarySha256)
		if err != nil {
			close(jp.started)
			exit(-1, fmt.Sprintf("fetch job binary: %v", err))
			return
		}
		dir := filepath.Join(w.cfg.DataDir, "jobs", fmt.Sprintf("%s-%d-%d", key.job, key.attempt, key.region))
		defer os.RemoveAll(dir)
		if err := privateDir(dir, "tmp"); err != nil {
			exe.Close()
			close(jp.started)
			exit(-1, err.Error())
			return
		}
		limit := d.MemoryLimitBytes
		cg, cgDir, err := w.memoryGroup(key, limit, logger)
		if err != nil {
			exe.Close()
			close(jp.started)
			exit(-1, err.Error())
			return
		}
		if cg != nil {
			defer os.Remove(cgDir)
		}
		env := taskenv.Task{WorkerAddr: w.taskAddr, Token: jp.token, JobID: key.job, Attempt: key.attempt, DataHost: w.cfg.Host, LogFormat: w.cfg.LogFormat,
			ChannelSecret: jp.channelSecret, DataTLS: jp.dataTLS}
		proc, err := supervisor.Start(supervisor.Spec{
			Path: exe.Path(), Name: "weir-job-" + d.BinarySha256[:16], Args: taskenv.Args("task", int(d.Parallelism), d.Args),
			Env: jobEnv(os.Environ(), dir, append(env.Env(), goRuntimeEnv(d.Gogc, d.GomemlimitBytes, limit, w.cfg.slotsMemory(d.GetAssign().GetSubtasks()))...)), Dir: dir, Logger: logger, Cgroup: cg,
		})
		exe.Close() // the process runs its own mapping of it
		if cg != nil {
			cg.Close()
		}
		w.mu.Lock()
		jp.proc = proc
		stopping := jp.stopping
		w.mu.Unlock()
		close(jp.started)
		if err != nil {
			exit(-1, fmt.Sprintf("start job binary: %v", err))
			return
		}
		logger.Info("job process started", "pid", proc.Pid())
		if stopping {
			go proc.Stop(stopGrace)
		}
		<-proc.Done()
		res := proc.Result()
		reason := ""
		if res.Err != nil && !w.stopping(jp) {
			reason = res.Err.Error()
			if cg != nil && oomKilled(cgDir) {
				reason = fmt.Sprintf("memory limit exceeded (%s, weir run --memory): %s", bytesize.Format(limit), reason)
			}
			if tail := strings.TrimSpace(res.StderrTail); tail != "" {
				reason += "; last output: " + lastLines(tail, 5)
			}
			logger.Warn("job process failed", "pid", proc.Pid(), "err", res.Err)
		}
		exit(int32(res.ExitCode), reason)
	}()
}

// memoryGroup makes the cgroup a job process with a memory limit starts in
// (nil when there is no limit, or the worker cannot enforce one: that is
// logged, and the coordinator shows it in the job's status).
func (w *Worker) memoryGroup(key procKey, limit int64, logger *slog.Logger) (*os.File, string, error) {
	if limit <= 0 {
		return nil, "", nil
	}
	if w.cgroups == nil {
		logger.Warn("memory limit not enforced", "limit", bytesize.Format(limit), "reason", w.noLimits)
		return nil, "", nil
	}
	f, dir, err := w.cgroups.create(fmt.Sprintf("%s-%d-%d", key.job, key.attempt, key.region), limit)
	if err != nil {
		return nil, "", fmt.Errorf("memory limit: %w", err)
	}
	return f, dir, nil
}

// stopping reports whether the worker is stopping jp on purpose, so its exit
// is no failure.
func (w *Worker) stopping(jp *jobProc) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return jp.stopping
}

// stop terminates an attempt's process (SIGTERM, then SIGKILL after the grace).
func (w *Worker) stop(key procKey) {
	w.mu.Lock()
	jp := w.mu.procs[key]
	if jp == nil {
		w.mu.Unlock()
		return
	}
	jp.stopping = true
	proc := jp.proc
	w.mu.Unlock()
	if proc != nil {
		go proc.Stop(stopGrace)
	}
}

func (w *Worker) stopAll() {
	w.mu.Lock()
	var procs []*supervisor.Process
	for _, jp := range w.mu.procs {
		jp.stopping = true
		if jp.proc != nil {
			procs = append(procs, jp.proc)
		}
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.Stop(stopGrace) })
	}
	wg.Wait()
}

// command queues a command for an attempt's process.
func (w *Worker) command(key procKey, c *weirv1.ProcessCommand) {
	w.mu.Lock()
	jp := w.mu.procs[key]
	w.mu.Unlock()
	if jp == nil {
		return
	}
	select {
	case jp.cmds <- c:
	default:
		w.logger.Warn("job process command queue full", "job", key.job, "attempt", key.attempt)
	}
}

// Attach serves one job process: it proves who it is, gets its subtasks and
// the coordinator's commands, and its reports are relayed to the coordinator
// under the key of this stream, whatever job the reports themselves name.
func (w *Worker) Attach(stream weirv1.TaskService_AttachServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHello()
	if h == nil {
		return status.Error(codes.InvalidArgument, "a job process must say hello first")
	}
	// The hello names no region: the token tells the processes of one
	// attempt apart.
	var jp *jobProc
	w.mu.Lock()
	for k, p := range w.mu.procs {
		// Constant time: the token is the process's only proof of identity.
		if k.job == h.JobId && k.attempt == h.Attempt && subtle.ConstantTimeCompare([]byte(p.token), []byte(h.Token)) == 1 {
			jp = p
		}
	}
	w.mu.Unlock()
	if jp == nil {
		return status.Error(codes.PermissionDenied, "unknown job process")
	}
	<-jp.started
	pid := int32(0)
	if jp.proc != nil {
		pid = int32(jp.proc.Pid())
	}
	if err := stream.Send(&weirv1.ProcessCommand{Key: jp.key.proto(), Cmd: &weirv1.ProcessCommand_Assign{Assign: jp.assign}}); err != nil {
		return err
	}
	w.mu.Lock()
	jp.dataAddr, jp.dataCert = h.DataAddress, h.DataCertSha256
	w.reportLocked(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_ProcessReady{ProcessReady: &weirv1.ProcessReady{
		Key: jp.key.proto(), DataAddress: h.DataAddress, Pid: pid, DataCertSha256: h.DataCertSha256,
	}}})
	w.mu.Unlock()
	ctx := stream.Context()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-jp.cmds:
				if err := stream.Send(c); err != nil {
					return
				}
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			// EOF: the process reported everything and is exiting.
			return nil
		}
		if m.GetHello() != nil || m.Msg == nil {
			continue // only the first message may be a hello
		}
		// The key is this stream's: a process speaks only for itself.
		m.Key = jp.key.proto()
		out := &weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Process{Process: m}}
		// What a registration lists is remembered and queued in one step,
		// so a registration made meanwhile has it either in its list or
		// behind it.
		w.mu.Lock()
		switch r := m.Msg.(type) {
		case *weirv1.ProcessMessage_TaskState:
			jp.tasks[taskKey{r.TaskState.VertexId, r.TaskState.Subtask}] = r.TaskState
		case *weirv1.ProcessMessage_Metrics:
			jp.metrics = r.Metrics
		}
		w.reportLocked(out)
		w.mu.Unlock()
	}
}

// privateDir makes dir and its subdirectories subs mode 0700, also when
// they exist (made by an older worker with a wider mode).
func privateDir(dir string, subs ...string) error {
	for _, d := range append([]string{dir}, subs...) {
		if d != dir {
			d = filepath.Join(dir, d)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
