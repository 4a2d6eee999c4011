package sdk_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/kafka"
	"github.com/weir-run/weir/sdk/internal/runtime"
)

type discard[T any] struct{}

func (discard[T]) Write(T) error { return nil }
func (discard[T]) Close() error  { return nil }
func (discard[T]) Finish() error { return nil }

// sourceStatus is what a job's Kafka source subtasks report: the minimum
// of their watermarks (ok when every one has one) and every partition's
// lag in records (-1: unknown).
func sourceStatus(d *runtime.Deployment) (wm int64, ok bool, lag map[string]int64) {
	wm, ok = int64(1<<63-1), true
	n := 0
	for ref, s := range d.Watermarks(time.Now()) {
		if ref.Vertex != 0 {
			continue
		}
		n++
		ok = ok && s.Known
		wm = min(wm, s.Watermark)
	}
	lag = map[string]int64{}
	for _, tm := range d.ProcessMetrics(time.Now()).Tasks {
		for _, l := range tm.Lag {
			lag[fmt.Sprintf("%s/%d", l.Topic, l.Partition)] = l.Records
		}
	}
	return wm, ok && n > 0, lag
}

// A restarted job reports its restored state before any new data reaches
// its partitions: the source's watermark is the one restored with the
// partitions (not "none"), and every partition's lag is known, counted
// from the restored offset (not -1). The only data after the restore is
// in an open transaction, invisible to the read_committed source.
func TestRestoredJobReportsWatermarkAndLag(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.ManualPartitioner())}
	plain, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	txn, err := kgo.NewClient(append(opts, kgo.TransactionalID("late-writer"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	produce := func(cl *kgo.Client, tsOf func(p int32) int64) {
		for p := range int32(3) {
			rec := &kgo.Record{Value: []byte("v"), Partition: p, Timestamp: time.UnixMilli(tsOf(p))}
			if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Partition p's latest record is at (p+1)*10 s: the source's
	// watermark is the minimum, 10 s minus the 1 s bound minus 1 ms.
	produce(plain, func(p int32) int64 { return int64(p+1) * 10_000 })
	const want = 10_000 - 1_000 - 1

	ws := sdk.BoundedOutOfOrder(time.Second)
	c := sdk.NewCkCluster(t.TempDir(), 20*time.Millisecond, func(p *sdk.Pipeline) {
		src := kafka.Source(p, kafka.SourceConfig{Brokers: brokers, Topics: []string{"in"}, Watermarks: &ws, DiscoveryInterval: -1},
			sdk.StringCodec{}, sdk.WithUID("in"))
		sdk.NewSink(sdk.Map(src, func(r kafka.Record[string]) string { return r.Value }), "Discard",
			func(sdk.TaskInfo) (sdk.SinkWriter[string], error) { return discard[string]{}, nil })
	})
	req := make(chan runtime.CheckpointRequest, 1)
	c.Requests = req
	// Attempt 1 reads everything, then checkpoints and is killed.
	c.Started = func(_ int64, d *runtime.Deployment) {
		go func() {
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if wm, ok, _ := sourceStatus(d); ok && wm == want {
					break
				}
			}
			req <- runtime.CheckpointRequest{Kill: true}
		}()
	}
	if finished, err := c.RunAttempt(t.Context(), 0); finished || err != nil {
		t.Fatalf("attempt 1: finished %v, %v", finished, err)
	}

	// Records newer than the restored state, but not committed.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(txn, func(p int32) int64 { return 100_000 })
	ctx, cancel := context.WithCancel(t.Context())
	var got struct {
		wm  int64
		ok  bool
		lag map[string]int64
	}
	c.Started = func(_ int64, d *runtime.Deployment) {
		go func() {
			defer cancel()
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				got.wm, got.ok, got.lag = sourceStatus(d)
				known := len(got.lag) == 3
				for _, n := range got.lag {
					known = known && n >= 0
				}
				if got.ok && known {
					return
				}
			}
		}()
	}
	c.RunAttempt(ctx, 0)
	if !got.ok || got.wm != want {
		t.Errorf("restored job's source watermark %d (known %v), want the restored %d", got.wm, got.ok, want)
	}
	for p := range 3 {
		if n, ok := got.lag[fmt.Sprintf("in/%d", p)]; !ok || n != 0 {
			t.Errorf("partition %d: lag %d (reported %v), want 0 records: its restored offset is its last stable offset", p, n, ok)
		}
	}
	txn.EndTransaction(context.Background(), kgo.TryAbort)
}
