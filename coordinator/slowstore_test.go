package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-run/weir/internal/etcdtest"
	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/s3test"
	"github.com/weir-run/weir/internal/sealing"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestSlowManifestWriteStallsOnlyItsJob runs a real leader (election, loop,
// gRPC services) on an embedded etcd and an S3 server (gofakes3) whose
// manifest writes for one job hang until released, with a scripted worker
// over the real ClusterService stream. While job A's first manifest write
// hangs for longer than the worker timeout: the worker keeps heartbeating
// and is not declared lost, the job API (submit, list, get) answers, and
// job B completes checkpoints. A's checkpoint completes only once its
// manifest write is released and recorded. (With the loop doing the write
// itself, everything stalled behind it and the worker was declared lost.)
// leaderHarness is a real leader (election, loop, gRPC services) on
// embedded etcd and gofakes3, whose S3 requests pass through wrap, with
// scripted workers on the real ClusterService stream.
type leaderHarness struct {
	t       testing.TB
	ctx     context.Context
	lctx    context.Context
	c       *Coordinator
	conn    *grpc.ClientConn
	api     weirv1.JobServiceClient
	store   *objstore.Store
	workers []*scriptedWorker
	// submit submits a two-vertex job of parallelism 1 checkpointing every
	// 200 ms; spec, when set, builds it (the harness's binary).
	submit   func(name string) string
	spec     func(name string) *weirv1.JobSpec
	etcd     *clientv3.Client
	storeURL string
	// stopLeader ends the leader's term and its workers' streams.
	stopLeader func()
}

// harnessOpts change the leader a harness runs.
type harnessOpts struct {
	// wrapStore wraps the S3 server's handler (nil: as is).
	wrapStore func(http.Handler) http.Handler
	// dataTLS: the leader asks for data-plane TLS.
	dataTLS bool
	// config changes the leader's configuration.
	config func(*Config)
	// kek is the leader's key-encryption key (nil: none).
	kek *sealing.KEK
}

func startLeaderHarness(t testing.TB, opts harnessOpts) *leaderHarness {
	wrap := opts.wrapStore
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cli := etcdtest.Start(t)

	s3test.SetEnv(t)
	backend := s3mem.New()
	if err := backend.CreateBucket(s3test.Bucket); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(wrap(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()))
	t.Cleanup(hs.Close)
	storeURL := s3test.StoreURL(hs.URL, s3test.Bucket)
	store, err := objstore.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	c := &Coordinator{cfg: Config{ID: "c", Store: storeURL, API: lis.Addr().String()}, logger: logger, etcd: cli, store: store}
	if opts.config != nil {
		opts.config(&c.cfg)
	}
	c.cfg.setDefaults()
	c.dataTLS, c.kek = opts.dataTLS, opts.kek
	gs := grpc.NewServer()
	weirv1.RegisterJobServiceServer(gs, &jobService{c: c})
	weirv1.RegisterClusterServiceServer(gs, &clusterService{c: c})
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	lctx, lcancel := context.WithCancel(ctx)
	led := make(chan error, 1)
	go func() { led <- c.campaignAndLead(lctx) }()
	h := &leaderHarness{t: t, ctx: ctx, lctx: lctx, c: c, store: store, etcd: cli, storeURL: storeURL}
	var stopOnce sync.Once
	h.stopLeader = func() {
		stopOnce.Do(func() {
			lcancel()
			for _, w := range h.workers {
				w.wait()
			}
			<-led
		})
	}
	t.Cleanup(h.stopLeader)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h.conn, h.api = conn, weirv1.NewJobServiceClient(conn)

	bin := []byte("a job binary the scripted worker never runs")
	sum := sha256.Sum256(bin)
	sha := hex.EncodeToString(sum[:])
	if _, err := store.PutBinary(ctx, bytes.NewReader(bin), sha); err != nil {
		t.Fatal(err)
	}
	h.spec = func(name string) *weirv1.JobSpec {
		return &weirv1.JobSpec{Name: name, BinarySha256: sha, BinarySize: int64(len(bin)),
			Parallelism: 1, Checkpoints: &weirv1.CheckpointPolicy{IntervalMs: 200, TimeoutMs: 120_000},
			Graph: &weirv1.JobGraph{Name: name, MaxParallelism: 8,
				Vertices: []*weirv1.Vertex{
					{Id: 1, Name: "src", Parallelism: 1, IsSource: true, Operators: []*weirv1.Operator{{Uid: "src", Name: "src", Kind: "source"}}},
					{Id: 2, Name: "sink", Parallelism: 1, Operators: []*weirv1.Operator{{Uid: "sink", Name: "sink", Kind: "sink"}}}},
				Edges: []*weirv1.Edge{{Source: 1, Target: 2, Partitioning: weirv1.Partitioning_PARTITIONING_FORWARD}}}}
	}
	h.submit = func(name string) string {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		r, err := h.api.SubmitJob(cctx, &weirv1.SubmitJobRequest{Spec: h.spec(name)})
		if err != nil {
			t.Fatalf("submit %s: %v", name, err)
		}
		return r.JobId
	}
	return h
}

// registered connects scripted worker id, retrying until the leader takes
// it.
func (h *leaderHarness) registered(t testing.TB, id string, opts scriptOpts) *scriptedWorker {
	t.Helper()
	var w *scriptedWorker
	eventually(t, 30*time.Second, "worker "+id+" registers", func() bool {
		var err error
		w, err = h.worker(id, opts)
		return err == nil
	})
	return w
}

// worker connects a scripted worker.
func (h *leaderHarness) worker(id string, opts scriptOpts) (*scriptedWorker, error) {
	w, err := startScriptedWorker(h.lctx, weirv1.NewClusterServiceClient(h.conn), id, h.c.cfg.HeartbeatInterval, opts)
	if err == nil {
		h.workers = append(h.workers, w)
	}
	return w, err
}

func TestSlowManifestWriteStallsOnlyItsJob(t *testing.T) {
	g := &manifestGate{release: make(chan struct{}), held: make(chan string, 1)}
	h := startLeaderHarness(t, harnessOpts{wrapStore: g.wrap})
	defer g.open() // before the S3 server closes: a held request must end for it
	ctx, c, api, submit := h.ctx, h.c, h.api, h.submit
	w := h.registered(t, "w1", scriptOpts{})

	a := submit("a")
	var heldJob string
	select {
	case heldJob = <-g.held:
	case <-time.After(60 * time.Second):
		t.Fatal("job a wrote no manifest")
	}
	if heldJob != a {
		t.Fatalf("the gate holds job %s, want a (%s)", heldJob, a)
	}
	heldAt := time.Now()
	t.Logf("job a's manifest write hangs")

	// While it hangs: the API answers, b checkpoints, the worker stays.
	b := submit("b")
	running := func(id string) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		st, err := api.GetJob(cctx, &weirv1.GetJobRequest{JobId: id})
		if err != nil {
			t.Fatalf("get job %s: %v", id, err)
		}
		if st.State != weirv1.JobState_JOB_STATE_RUNNING {
			t.Fatalf("job %s is %v (%s), want RUNNING", id, st.State, st.Error)
		}
	}
	bFirst := int64(0)
	for time.Since(heldAt) < c.cfg.WorkerTimeout+3*c.cfg.HeartbeatInterval || w.completed(b) < bFirst+3 {
		if time.Since(heldAt) > 90*time.Second {
			t.Fatalf("job b completed checkpoints up to %d while a's write hung", w.completed(b))
		}
		if bFirst == 0 {
			bFirst = w.completed(b)
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		list, err := api.ListJobs(cctx, &weirv1.ListJobsRequest{})
		ccancel()
		if err != nil {
			t.Fatalf("list jobs while a's manifest write hangs: %v", err)
		}
		if len(list.Jobs) != 2 {
			t.Fatalf("listed %d jobs, want 2", len(list.Jobs))
		}
		if err := w.err(); err != nil {
			t.Fatalf("the worker's stream ended while a's manifest write hung: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	running(a)
	running(b)
	if n := w.completed(a); n != 0 {
		t.Fatalf("job a's checkpoint %d completed while its manifest write hung", n)
	}
	t.Logf("after %v: b completed checkpoints up to %d; a none", time.Since(heldAt).Round(time.Millisecond), w.completed(b))

	// Released, a's checkpoint is stored, recorded and completes.
	g.open()
	eventually(t, 60*time.Second, "job a completes a checkpoint", func() bool { return w.completed(a) > 0 })
	if err := w.err(); err != nil {
		t.Fatalf("the worker's stream ended: %v", err)
	}
	running(a)
	running(b)
}

// manifestGate holds the manifest writes of the first job that writes one
// until open.
type manifestGate struct {
	mu       sync.Mutex
	job      string
	release  chan struct{}
	released bool
	held     chan string // the job, when its first write is held
}

func (g *manifestGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.released {
		g.released = true
		close(g.release)
	}
}

func (g *manifestGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		// Path style: /BUCKET/checkpoints/JOB/chk-N/_manifest.
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/_manifest") && len(parts) > 3 {
			job := parts[2]
			g.mu.Lock()
			if g.job == "" {
				g.job = job
			}
			hold := g.job == job
			g.mu.Unlock()
			if hold {
				select {
				case g.held <- job:
				default:
				}
				select {
				case <-g.release:
				case <-r.Context().Done():
					return
				}
			}
		}
		h.ServeHTTP(rw, r)
	})
}

// scriptedWorker is a worker on the ClusterService stream that runs no
// processes: it reports every deployed process ready, its tasks running
// once started, acks every checkpoint trigger at once, and remembers the
// newest checkpoint each job said was complete.
// scriptOpts change what a scripted worker does.
type scriptOpts struct {
	// holdAcks: a trigger is recorded (triggers) instead of acked, for the
	// test to ack (ack) or forge.
	holdAcks bool
	// cert is the certificate hash its processes report ready with.
	cert []byte
	// noLimits is why it says it cannot enforce memory limits.
	noLimits string
	// slots it offers (0: 8).
	slots int32
}

// trigger is a checkpoint a scripted worker was asked for, per subtask.
type trigger struct {
	key     *weirv1.ProcessKey
	id      int64
	subtask *weirv1.SubtaskRef
}

type scriptedWorker struct {
	// triggers receives held checkpoint triggers (scriptOpts.holdAcks).
	triggers chan trigger
	// report sends a process message with key k up the stream.
	report func(k *weirv1.ProcessKey, m *weirv1.ProcessMessage)
	done   chan struct{}
	mu     struct {
		sync.Mutex
		err      error
		complete map[string]int64
		deploys  []*weirv1.DeployProcess
		starts   []*weirv1.StartTasks
	}
}

func startScriptedWorker(ctx context.Context, client weirv1.ClusterServiceClient, id string, beat time.Duration, opts scriptOpts) (*scriptedWorker, error) {
	stream, err := client.Connect(ctx)
	if err != nil {
		return nil, err
	}
	slots := opts.slots
	if slots == 0 {
		slots = 8
	}
	if err := stream.Send(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Register{Register: &weirv1.RegisterWorker{
		WorkerId: id, Slots: slots, Host: "scripted", MemoryLimitUnavailable: opts.noLimits}}}); err != nil {
		return nil, err
	}
	if _, err := stream.Recv(); err != nil {
		return nil, err
	}
	w := &scriptedWorker{done: make(chan struct{}), triggers: make(chan trigger, 64)}
	w.mu.complete = map[string]int64{}
	out := make(chan *weirv1.WorkerMessage, 1024)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(beat)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-out:
				if err := stream.Send(m); err != nil {
					return
				}
			case <-tick.C:
				if err := stream.Send(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Heartbeat{Heartbeat: &weirv1.Heartbeat{UnixMs: time.Now().UnixMilli()}}}); err != nil {
					return
				}
			}
		}
	})
	send := func(m *weirv1.WorkerMessage) {
		select {
		case out <- m:
		case <-ctx.Done():
		}
	}
	report := func(k *weirv1.ProcessKey, m *weirv1.ProcessMessage) {
		m.Key = k
		send(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Process{Process: m}})
	}
	w.report = report
	go func() {
		defer close(w.done)
		defer wg.Wait()
		subtasks := map[procKey][]*weirv1.SubtaskRef{}
		for {
			m, err := stream.Recv()
			if err != nil {
				w.mu.Lock()
				if ctx.Err() == nil {
					w.mu.err = err
				}
				w.mu.Unlock()
				return
			}
			switch m := m.Msg.(type) {
			case *weirv1.CoordinatorMessage_Deploy:
				subtasks[keyOf(m.Deploy.Key)] = m.Deploy.GetAssign().GetSubtasks()
				w.mu.Lock()
				w.mu.deploys = append(w.mu.deploys, m.Deploy)
				w.mu.Unlock()
				send(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_ProcessReady{ProcessReady: &weirv1.ProcessReady{
					Key: m.Deploy.Key, DataAddress: "127.0.0.1:1", Pid: 1, DataCertSha256: opts.cert}}})
			case *weirv1.CoordinatorMessage_Process:
				k := m.Process.Key
				switch c := m.Process.Cmd.(type) {
				case *weirv1.ProcessCommand_Start:
					w.mu.Lock()
					w.mu.starts = append(w.mu.starts, c.Start)
					w.mu.Unlock()
					for _, r := range scriptedAnswer(subtasks, &weirv1.CoordinatorMessage{Msg: m}) {
						send(r)
					}
				case *weirv1.ProcessCommand_Trigger:
					for _, st := range subtasks[keyOf(k)] {
						if opts.holdAcks {
							select {
							case w.triggers <- trigger{key: k, id: c.Trigger.CheckpointId, subtask: st}:
							default:
							}
							continue
						}
						report(k, ackOf(c.Trigger.CheckpointId, st))
					}
				case *weirv1.ProcessCommand_Complete:
					w.mu.Lock()
					w.mu.complete[k.GetJobId()] = max(w.mu.complete[k.GetJobId()], c.Complete.CheckpointId)
					w.mu.Unlock()
				case *weirv1.ProcessCommand_Cancel:
					for _, r := range scriptedAnswer(subtasks, &weirv1.CoordinatorMessage{Msg: m}) {
						send(r)
					}
				}
			}
		}
	}()
	return w, nil
}

// seen returns the deploys and starts the worker was sent.
func (w *scriptedWorker) seen() ([]*weirv1.DeployProcess, []*weirv1.StartTasks) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.mu.deploys), slices.Clone(w.mu.starts)
}

// completed is the newest checkpoint of job the worker was told complete.
func (w *scriptedWorker) completed(job string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.complete[job]
}

// err is why the stream ended early, if it did.
func (w *scriptedWorker) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.err
}

func (w *scriptedWorker) wait() { <-w.done }

// scriptedAnswer is what a scripted worker says to m at once: its tasks
// run once started, they ack every trigger, and a cancelled process exits.
// subtasks are the processes' subtasks, by process, as deployed.
func scriptedAnswer(subtasks map[procKey][]*weirv1.SubtaskRef, m *weirv1.CoordinatorMessage) []*weirv1.WorkerMessage {
	c := m.GetProcess()
	if c == nil {
		return nil
	}
	k := c.Key
	var out []*weirv1.WorkerMessage
	report := func(pm *weirv1.ProcessMessage) {
		pm.Key = k
		out = append(out, &weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Process{Process: pm}})
	}
	switch c := c.Cmd.(type) {
	case *weirv1.ProcessCommand_Start:
		for _, st := range subtasks[keyOf(k)] {
			report(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TaskState{TaskState: &weirv1.TaskStateUpdate{
				VertexId: st.VertexId, Subtask: st.Subtask, State: weirv1.TaskState_TASK_STATE_RUNNING}}})
		}
	case *weirv1.ProcessCommand_Trigger:
		for _, st := range subtasks[keyOf(k)] {
			report(ackOf(c.Trigger.CheckpointId, st))
		}
	case *weirv1.ProcessCommand_Cancel:
		out = append(out, &weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_ProcessExited{ProcessExited: &weirv1.ProcessExited{Key: k}}})
	}
	return out
}

// ackOf is subtask st's ack of checkpoint id, with empty state.
func ackOf(id int64, st *weirv1.SubtaskRef) *weirv1.ProcessMessage {
	return &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_CheckpointAck{CheckpointAck: &weirv1.CheckpointAck{
		CheckpointId: id, Snapshot: &weirv1.SubtaskSnapshot{VertexId: st.VertexId, Subtask: st.Subtask}}}}
}

func eventually(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
