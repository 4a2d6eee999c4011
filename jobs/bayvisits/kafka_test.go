package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBayVisitsKafka runs the job's Kafka mode at p=2 over an in-process
// broker: events written to a 2-partition topic (each bay's events in one
// partition, in generation order, so the bound holds per partition), then
// a late-closing event per partition that moves every watermark past the
// real sessions. The visits read back equal the naive reference.
func TestBayVisitsKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events", "visits"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()[0]
	evs := generate(t, filepath.Join(t.TempDir(), "events.jsonl"), 7, 20_000, 200, 300, 30_000)
	want := reference(evs, 60_000)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	newest := int64(0)
	for _, e := range evs {
		b, _ := json.Marshal(e)
		recs = append(recs, &kgo.Record{Key: []byte(e.Bay), Value: b})
		newest = max(newest, e.TS)
	}
	for p := range 2 {
		b, _ := json.Marshal(event{Bay: fmt.Sprintf("zz-end-%d", p), TS: newest + 600_000})
		recs = append(recs, &kgo.Record{Value: b, Partition: int32(p)})
	}
	// The end markers go to fixed partitions; the rest by key.
	for _, r := range recs[:len(evs)] {
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	manual, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("events"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	if err := manual.ProduceSync(context.Background(), recs[len(evs):]...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "--mode=local", "-p", "2", "--", "--brokers", brokers,
		"--input-topic", "events", "--output-topic", "visits", "--gap", "60s", "--max-out-of-order", "30s")
	cmd.Env = append(os.Environ(), "BAYVISITS_JOB=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("job output:\n%s", out.String())
		}
	}()

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics("visits"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []string
	for deadline := time.Now().Add(60 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		cancel()
	}
	slices.Sort(got)
	compare(t, got, want)
}

// syncBuffer collects a process's output from its two pipes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
