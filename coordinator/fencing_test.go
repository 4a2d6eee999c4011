package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/coordinator/leader"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/etcdserver"
	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDeposedLeaderIsFenced cuts the leader off from etcd with toxiproxy
// while it completes a checkpoint and records a job change. A standby takes
// over; the old leader steps down on its own, and once the partition heals
// its held writes reach etcd and are refused as fenced: the checkpoint is
// never recorded (its manifest may exist, but a checkpoint is complete only
// with its etcd record) and the job record stays the new leader's.
func TestDeposedLeaderIsFenced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := etcdserver.Start(ctx, etcdserver.Config{DataDir: filepath.Join(dir, "etcd"), ClientURL: "127.0.0.1:0", PeerURL: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	upstream := strings.TrimPrefix(srv.ClientEndpoints()[0], "http://")

	// The old leader reaches etcd only through the proxy.
	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(tp, "etcd", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer proxy.Stop()
	newClient := func(endpoint string) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		return cli
	}
	cliOld, cliNew := newClient(proxy.Listen), newClient(upstream)
	defer cliOld.Close()
	defer cliNew.Close()

	store, err := objstore.Open(ctx, "file://"+filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	coord := func(id string, cli *clientv3.Client) (*Coordinator, *leader.Elector) {
		c := &Coordinator{cfg: Config{ID: id, Store: "file://" + filepath.Join(dir, "store"), API: id + ":1"}, logger: logger.With("coordinator", id), etcd: cli, store: store}
		c.cfg.setDefaults()
		el, err := leader.NewElector(cli, etcdkeys.Election, id, c.cfg.API, c.cfg.LeaseTTL, logger)
		if err != nil {
			t.Fatal(err)
		}
		return c, el
	}
	oldC, oldEl := coord("old", cliOld)
	c0 := oldC.cfg
	defer oldEl.Close()
	newC, newEl := coord("new", cliNew)
	defer newEl.Close()

	if err := oldEl.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	old := newLeaderState(oldC, oldEl.Store())
	fenced, fence := context.WithCancelCause(context.Background())
	old.fence = fence
	rec := &weirv1.JobStatus{Id: "job1", Name: "j", State: weirv1.JobState_JOB_STATE_RUNNING, Attempt: 1,
		Spec: &weirv1.JobSpec{Graph: &weirv1.JobGraph{MaxParallelism: 128}}}
	j := newJob(rec, jobmaster.New(nil, time.Now()))
	old.jobs[rec.Id] = j
	persistNow(ctx, t, old, j)
	if fenced.Err() != nil {
		t.Fatalf("the leader's own write was fenced: %v", context.Cause(fenced))
	}

	// The standby campaigns; it waits in line behind the leader.
	newLed := make(chan error, 1)
	go func() { newLed <- newEl.Campaign(ctx) }()

	// Cut: every byte from the old leader to etcd, keep-alives included,
	// is held (a latency of an hour) until the toxic is removed, and then
	// delivered: a partition that heals with requests still in flight.
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(`{"name":"cut","type":"latency","stream":"upstream","attributes":{"latency":3600000}}`)); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()

	// Cut off, the old leader still believes it leads: it completes
	// checkpoint 7 and changes the job. Both writes are held in flight.
	const ck = 7
	done := make(chan struct{}, 2)
	// The effects the driver would hand its lanes, run as a lane runs them.
	storeCk := old.storeEffect(j, checkpoint.Complete{ID: ck, Acks: []*weirv1.CheckpointAck{
		{CheckpointId: ck, Snapshot: &weirv1.SubtaskSnapshot{VertexId: 1}},
	}})
	go func() {
		if ev := storeCk.run(ctx, old); ev != nil {
			t.Errorf("the deposed leader's checkpoint store reported %#v, want nothing (fenced)", ev)
		}
		done <- struct{}{}
	}()
	changed := proto.Clone(rec).(*weirv1.JobStatus)
	changed.State = weirv1.JobState_JOB_STATE_CANCELING
	go func() {
		persistNow(ctx, t, old, newJob(changed, jobmaster.New(nil, time.Now())))
		done <- struct{}{}
	}()

	// Its lease expires in etcd: the standby leads. The old leader steps
	// down on its own when its keep-alives go unanswered for the TTL.
	if err := <-newLed; err != nil {
		t.Fatal(err)
	}
	t.Logf("standby elected %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	// Normally the cut-off leader steps down by itself within the TTL (its
	// keep-alives go unanswered, or its watch sees its key deleted). That
	// is measured, not required: the fence below does not depend on it.
	select {
	case <-oldEl.Leading():
		t.Logf("old leader stepped down %v after the cut, while still cut off", time.Since(cutAt).Round(time.Millisecond))
	case <-time.After(5 * c0.LeaseTTL):
		t.Logf("old leader had not noticed its loss %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	}
	// The new leader records the job as it sees it.
	nl := newLeaderState(newC, newEl.Store())
	nl.fence = func(err error) { t.Errorf("the new leader was fenced: %v", err) }
	mine := proto.Clone(rec).(*weirv1.JobStatus)
	mine.Attempt = 2
	persistNow(ctx, t, nl, newJob(mine, jobmaster.New(nil, time.Now())))

	// Heal: the held writes reach etcd and are refused.
	if err := proxy.Toxics.RemoveToxic(ctx, "cut"); err != nil {
		t.Fatal(err)
	}
	<-done
	<-done
	select {
	case <-oldEl.Leading():
	default:
		t.Fatal("the deposed leader did not step down")
	}
	if !errors.Is(context.Cause(fenced), leader.ErrFenced) {
		t.Fatalf("old leader's writes ended with %v, want ErrFenced", context.Cause(fenced))
	}
	// Even healed, the old leader cannot write.
	if err := old.store.Put(ctx, etcdkeys.Jobs+"job1", []byte("x")); !errors.Is(err, leader.ErrFenced) {
		t.Fatalf("write after healing: %v, want ErrFenced", err)
	}

	got, err := cliNew.Get(ctx, checkpointKey("job1", ck))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 0 {
		t.Fatalf("the deposed leader recorded checkpoint %d", ck)
	}
	got, err = cliNew.Get(ctx, etcdkeys.Jobs+"job1")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("job record: %v %v", got, err)
	}
	var stored weirv1.JobStatus
	if err := proto.Unmarshal(got.Kvs[0].Value, &stored); err != nil {
		t.Fatal(err)
	}
	if stored.State != weirv1.JobState_JOB_STATE_RUNNING || stored.Attempt != 2 {
		t.Fatalf("job record is %v attempt %d, want the new leader's RUNNING attempt 2", stored.State, stored.Attempt)
	}
	// The manifest, written before the fenced record, is an orphan: no
	// leader lists it, because completion is the etcd record.
	if _, err := os.Stat(filepath.Join(dir, "store", storelayout.Manifest("job1", ck, false))); err != nil {
		t.Logf("manifest of checkpoint %d: %v", ck, err)
	}
	loaded := newJob(proto.Clone(rec).(*weirv1.JobStatus), jobmaster.New(nil, time.Now()))
	if err := nl.loadCheckpoints(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	if r := loaded.restoreFor(); r != nil {
		t.Fatalf("the new leader would restore %v", r)
	}
}

// persistNow runs the effect persist hands the job's record lane.
func persistNow(ctx context.Context, t *testing.T, s *leaderState, j *jobDriver) {
	e, err := s.persistEffect(j)
	if err != nil {
		t.Error(err)
		return
	}
	e.run(ctx, s)
}
