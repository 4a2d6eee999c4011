package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-run/weir/internal/kafkaproc"
)

// TestMain lets a test run weir as a process of its own, to kill it -9:
// with $WEIR_TEST_MAIN=1 the test binary is weir.
func TestMain(m *testing.M) {
	if os.Getenv("WEIR_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// startKafkaProc runs this test binary as `weir kafka` on dir and addr.
func startKafkaProc(t *testing.T, dir, addr string) *kafkaproc.Proc {
	t.Helper()
	return kafkaproc.Start(t, os.Args[0], []string{"WEIR_TEST_MAIN=1"}, dir, addr)
}

// A kill -9 of `weir kafka`, restarted on the same data dir, loses no
// transaction open at the kill: its producer commits it after the restart,
// from the client that wrote it (a sink that lived on) or with a bare
// EndTxn of the producer id and epoch a checkpoint recorded (a sink
// restored from it, as sdk/connector/kafka's recommit does), and
// read_committed readers see its records exactly once, on every partition
// it wrote. One its producer never ends is aborted at its timeout, never
// visible, and a later commit of it is refused. Later transactions of the
// same transactional ids are visible. The broker is killed twice before
// anyone commits, so the transactions it keeps open survive a second crash
// too.
func TestKafkaKill9KeepsOpenTransactionsCommittable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs weir kafka as a process")
	}
	dir, addr := t.TempDir(), closedAddr(t)
	broker := startKafkaProc(t, dir, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	producer := func(id string, timeout time.Duration) *kgo.Client {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(id), kgo.TransactionTimeout(timeout),
			kgo.DefaultProduceTopic("out"), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	// produce writes values, value i to partition i, and flushes: what
	// the sink's pre-commit does.
	produce := func(cl *kgo.Client, values ...string) {
		t.Helper()
		for i, v := range values {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v), Partition: int32(i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit := func(cl *kgo.Client) {
		t.Helper()
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	const long = time.Minute
	before := producer("sink-0", long)
	produce(before, "before")
	commit(before)

	live := producer("sink-0", long) // its sink lives on across the broker's crash
	produce(live, "live-0", "live-1")
	restored := producer("sink-1", long) // its sink is restored from a checkpoint
	produce(restored, "restored-0")
	pid, epoch, err := restored.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restored.Close()
	const short = 8 * time.Second
	never := producer("sink-2", short) // never ended
	produce(never, "never-0")
	neverPID, neverEpoch, err := never.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	never.Close()

	broker.Kill(t)
	broker = startKafkaProc(t, dir, addr)
	if n := strings.Count(broker.Log(), "is kept open for its producer"); n != 3 {
		t.Fatalf("the restarted broker kept %d transactions open, want 3: %s", n, broker.Log())
	}
	broker.Kill(t)
	// The restored sink recommits as soon as the broker takes
	// connections, as it did in the chaos campaign: the broker must not
	// answer before it can end the transactions it kept.
	recommitted := make(chan error, 1)
	go func() { recommitted <- endTxn(ctx, addr, "sink-1", pid, epoch) }()
	restartedAt := time.Now()
	broker = startKafkaProc(t, dir, addr)
	if n := strings.Count(broker.Log(), "is kept open for its producer"); n < 2 {
		t.Fatalf("after a second kill the broker kept %d transactions open, want at least 2: %s", n, broker.Log())
	}

	if err := <-recommitted; err != nil {
		t.Fatalf("recommit of the restored sink's transaction, sent while the broker started: %v", err)
	}
	commit(live)
	// A retried commit gets the same answer.
	if err := endTxn(ctx, addr, "sink-1", pid, epoch); err != nil {
		t.Fatalf("recommit of the restored sink's transaction again: %v", err)
	}
	// The one never ended holds back read_committed readers until its
	// timeout, then is aborted: a late commit is refused.
	time.Sleep(time.Until(restartedAt.Add(short + time.Second)))
	if err := endTxn(ctx, addr, "sink-2", neverPID, neverEpoch); !errors.Is(err, kerr.InvalidTxnState) {
		t.Errorf("commit after the timeout: %v, want %v", err, kerr.InvalidTxnState)
	}
	for _, id := range []string{"sink-0", "sink-1", "sink-2"} {
		later := producer(id, long)
		produce(later, "later "+id)
		commit(later)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := []string{"before", "later sink-0", "later sink-1", "later sink-2", "live-0", "live-1", "restored-0"}
	var got []string
	// Until all are in, then a little longer for anything extra.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if end := time.Now().Add(time.Second); len(got) >= len(want) && end.Before(deadline) {
			deadline = end
		}
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		pcancel()
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed after two kills: %q, want %q\nbroker log:\n%s", got, want, broker.Log())
	}
	if !strings.Contains(broker.Log(), "kafka: aborted a transaction open") {
		t.Errorf("the broker did not log the timed-out transaction:\n%s", broker.Log())
	}
	b, err := os.ReadFile(filepath.Join(dir, openTxnsFile))
	if err == nil {
		t.Errorf("the journal still lists transactions whose ids were initialised again: %s", b)
	}
}

// endTxn commits producer pid's transaction at epoch with a bare EndTxn, as
// the exactly-once sink's recommit does (sdk/connector/kafka/txn.go),
// retrying until the broker at addr answers.
func endTxn(ctx context.Context, addr, id string, pid int64, epoch int16) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, true
		resp, err := req.RequestWith(ctx, cl)
		switch {
		case err == nil:
			return kerr.ErrorForCode(resp.ErrorCode)
		case ctx.Err() != nil:
			return err
		}
		time.Sleep(5 * time.Millisecond) // not up yet
	}
}
