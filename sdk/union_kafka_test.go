package sdk_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/kafka"
	"github.com/weir-run/weir/sdk/internal/runtime"
)

// rulesJob merges two Kafka rule topics with sdk.UnionKeyed (sources at
// parallelism 2 and 1), counts each rule key's records in keyed state, and
// writes every record with its key's running count ("value|n") to one
// exactly-once Kafka sink.
func rulesJob(brokers []string) func(p *sdk.Pipeline) {
	return func(p *sdk.Pipeline) {
		p.SetMaxParallelism(16)
		key := func(r kafka.Record[string]) string { return string(r.Key) }
		a := kafka.Source(p, kafka.SourceConfig{Brokers: brokers, Topics: []string{"rules-a"}, DiscoveryInterval: -1},
			sdk.StringCodec{}, sdk.WithUID("rules-a"), sdk.WithParallelism(2))
		b := kafka.Source(p, kafka.SourceConfig{Brokers: brokers, Topics: []string{"rules-b"}, DiscoveryInterval: -1},
			sdk.StringCodec{}, sdk.WithUID("rules-b"), sdk.WithParallelism(1))
		counted := sdk.KeyedProcess(sdk.UnionKeyed(sdk.KeyBy(a, key), sdk.KeyBy(b, key)),
			func(s *sdk.StateStore) (func(string, kafka.Record[string], func(kafka.Record[string])) error, error) {
				n := sdk.NewValueState[int64](s, "n")
				return func(k string, r kafka.Record[string], emit func(kafka.Record[string])) error {
					c, _, err := n.Get()
					if err != nil {
						return err
					}
					c++
					emit(kafka.Record[string]{Key: r.Key, Value: r.Value + "|" + strconv.FormatInt(c, 10)})
					return n.Set(c)
				}, nil
			}, sdk.WithUID("count"))
		kafka.Sink(counted, kafka.SinkConfig{Brokers: brokers, Topic: "out", Delivery: kafka.ExactlyOnce},
			sdk.StringCodec{}, sdk.WithUID("out"))
	}
}

// produceRules writes rules from..to-1 of a topic, keyed r0..r6.
func produceRules(t *testing.T, cl *kgo.Client, topic string, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("r" + strconv.Itoa(i%7)), Value: []byte(fmt.Sprintf("%s-%d", topic, i))})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readOut reads the committed records of "out" as "key value|n".
func readOut(t *testing.T, brokers []string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Key)+" "+string(r.Value)); n++ })
		if n == 0 {
			return out
		}
	}
}

// checkRules compares the output with the reference: every input record
// once, and each key's counts 1..n once each.
func checkRules(out []string, a, b int) string {
	var values, counts, wantValues, wantCounts []string
	for _, l := range out {
		key, rest, _ := strings.Cut(l, " ")
		v, n, _ := strings.Cut(rest, "|")
		values = append(values, v)
		counts = append(counts, key+" "+n)
	}
	perKey := map[string]int{}
	for topic, n := range map[string]int{"rules-a": a, "rules-b": b} {
		for i := range n {
			k := "r" + strconv.Itoa(i%7)
			perKey[k]++
			wantValues = append(wantValues, fmt.Sprintf("%s-%d", topic, i))
			wantCounts = append(wantCounts, k+" "+strconv.Itoa(perKey[k]))
		}
	}
	for _, s := range [][]string{values, counts, wantValues, wantCounts} {
		slices.Sort(s)
	}
	if !slices.Equal(values, wantValues) {
		return fmt.Sprintf("%d records, want each of the %d input records once", len(values), len(wantValues))
	}
	if !slices.Equal(counts, wantCounts) {
		return "the running counts per key are not 1..n once each"
	}
	return ""
}

// A job merging two rule streams with sdk.UnionKeyed into one exactly-once
// Kafka sink commits exactly its reference (every rule once, each key's
// running counts 1..n once) through two kills and a savepoint that
// rescales it from 2 to 3: the union's barriers align over both topics'
// sources, so its checkpoints are consistent cuts of both.
func TestUnionOfKafkaStreamsExactlyOnceThroughKillsAndRescale(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "rules-a"), kfake.SeedTopics(2, "rules-b", "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()

	c := sdk.NewCkCluster(t.TempDir(), 30*time.Millisecond, rulesJob(brokers))
	c.Parallelism = 2
	na, nb := 0, 0
	batch := func(a, b int) {
		produceRules(t, producer, "rules-a", na, na+a)
		produceRules(t, producer, "rules-b", nb, nb+b)
		na, nb = na+a, nb+b
	}
	// Two attempts killed after a few checkpoints, mid-stream.
	for _, kill := range []int{3, 2} {
		batch(300, 200)
		if finished, err := c.RunAttempt(t.Context(), kill); finished || err != nil {
			t.Fatalf("attempt killed after %d checkpoints: finished %v, %v", kill, finished, err)
		}
	}
	// A savepoint, the job stopped after it and resumed at parallelism 3.
	batch(300, 200)
	req := make(chan runtime.CheckpointRequest, 1)
	c.Requests = req
	req <- runtime.CheckpointRequest{Savepoint: true, Kill: true, Rescale: 3}
	if finished, err := c.RunAttempt(t.Context(), 0); finished || err != nil {
		t.Fatalf("savepoint attempt: finished %v, %v", finished, err)
	}
	if c.Parallelism != 3 {
		t.Fatalf("parallelism %d after the rescaling savepoint, want 3", c.Parallelism)
	}
	c.Requests = nil
	batch(300, 200)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.RunAttempt(ctx, 0)
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	var out []string
	for {
		out = readOut(t, brokers)
		if len(out) >= na+nb || time.Now().After(deadline) {
			break
		}
	}
	// A moment more: a duplicate would show as more than na+nb.
	time.Sleep(200 * time.Millisecond)
	out = readOut(t, brokers)
	cancel()
	<-done
	if d := checkRules(out, na, nb); d != "" {
		t.Fatalf("after 2 kills and a rescale: %s", d)
	}
}
