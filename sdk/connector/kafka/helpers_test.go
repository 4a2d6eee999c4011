package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

// TestMain checks that the connector leaves no goroutine behind. The test
// broker's own per-connection goroutines are not the connector's: they end
// a moment after the broker closes the connection, sometimes after goleak
// stopped waiting (1 run in 7 failed on them).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).read"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).write"))
}

// task is a sdk.TaskInfo for driving readers and writers directly.
type task struct {
	subtask, parallelism int
	attempt              int64
	job, uid             string
	all                  [][]byte
	restored             bool
	checkpointing        bool
}

func (t task) Subtask() int                  { return t.subtask }
func (t task) Parallelism() int              { return t.parallelism }
func (t task) Attempt() int64                { return t.attempt }
func (t task) JobID() string                 { return t.job }
func (t task) UID() string                   { return t.uid }
func (t task) Restored() ([][]byte, bool)    { return nil, t.restored }
func (t task) RestoredAll() ([][]byte, bool) { return t.all, t.restored }
func (t task) Checkpointing() bool           { return t.checkpointing }
func (t task) RestoredParallelism() int {
	if t.restored {
		return t.parallelism
	}
	return 0
}
func (t task) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// broker starts an in-process Kafka with the topics, each of partitions
// partitions.
func broker(t *testing.T, partitions int32, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// benchCluster is broker for benchmarks.
func benchCluster(b *testing.B, topics ...string) []string {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c.ListenAddrs()
}

func client(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes values (keyed by themselves) to topic, committed.
func produce(t *testing.T, brokers []string, topic string, values ...string) {
	t.Helper()
	cl := client(t, brokers, kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Key: []byte(v), Value: []byte(v)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readCommitted returns every committed value of topic, sorted, reading
// until nothing new arrives for a while.
func readCommitted(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	cl := client(t, brokers, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)); n++ })
		if n == 0 {
			break
		}
	}
	sort.Strings(out)
	return out
}

func values(prefix string, from, to int) []string {
	var vs []string
	for i := from; i < to; i++ {
		vs = append(vs, prefix+strconv.Itoa(i))
	}
	return vs
}

func sorted(vs []string) []string {
	vs = append([]string(nil), vs...)
	sort.Strings(vs)
	return vs
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }
