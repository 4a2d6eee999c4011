package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLeaderKillKeepsExactlyOnce: eoscount on the highly available topology
// (three etcd members, two coordinators) with an in-process broker. The
// leading coordinator is killed twice while the job runs and input keeps
// arriving; a read_committed reader of the output sees every key counted
// exactly once: none missing, none duplicated.
func TestLeaderKillKeepsExactlyOnce(t *testing.T) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(4))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	brokers := broker.ListenAddrs()[0]
	c := startHACluster(t, 2, 2)

	const total, batch = 20000, 1000
	producer := kafkaClient(t, brokers, kgo.DefaultProduceTopic("in"), kgo.AllowAutoTopicCreation())
	produced := produceKeys(producer, total, batch, 400*time.Millisecond)

	id := runDetached(t, c.apis["a"], "-p", "4", "--checkpoint-interval", "1s", bins.eoscount, "--",
		"--brokers", brokers, "--input-topic", "in", "--output-topic", "out")
	api := c.apis["a"]
	for kill := range 2 {
		before := len(completed(checkpointsOf(t, api, id)))
		waitFor(t, 30*time.Second, "a new completed checkpoint", func() bool { return len(completed(checkpointsOf(t, api, id))) > before })
		killed, elected := c.killLeader()
		t.Logf("kill %d: coordinator %s; the other led %v later", kill+1, killed, elected.Round(time.Millisecond))
		api = c.apis[other(killed)]
		waitFor(t, 20*time.Second, "the job through the new leader", func() bool { return jobStatusOf(t, api, id).State == "RUNNING" })
		c.startCoordinator(killed)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	missing, dups, wrong := countOutput(t, brokers, "out", total)
	if missing != 0 || dups != 0 || wrong != 0 {
		t.Fatalf("output: %d missing, %d duplicated, %d with a count other than 1", missing, dups, wrong)
	}
	t.Logf("%d keys counted exactly once across two leader kills (attempt %d)", total, jobStatusOf(t, api, id).Attempt)
	if _, stderr, code := weir(t, 30*time.Second, "cancel", "--coordinator", api, id); code != 0 {
		t.Fatalf("cancel: %s", stderr)
	}
}

// countOutput reads topic with read_committed until every key
// key-0..key-(total-1) has a count or 90 s pass, plus 3 s for duplicates,
// and says how many keys are missing, how many records repeat a key, and
// how many counts are not 1.
func countOutput(t *testing.T, brokers, topic string, total int, opts ...kgo.Opt) (missing, dups, wrong int) {
	t.Helper()
	consumer := kafkaClient(t, brokers, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	counts := map[string]string{}
	poll := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if _, ok := counts[string(r.Key)]; ok {
				dups++
			}
			counts[string(r.Key)] = string(r.Value)
		})
	}
	for deadline := time.Now().Add(90 * time.Second); len(counts) < total && time.Now().Before(deadline); {
		poll(time.Second)
	}
	poll(3 * time.Second) // anything duplicated would follow soon after the last new key
	for k := range total {
		switch v, ok := counts["key-"+strconv.Itoa(k)]; {
		case !ok:
			missing++
		case v != "1":
			wrong++
		}
	}
	return missing, dups, wrong
}
