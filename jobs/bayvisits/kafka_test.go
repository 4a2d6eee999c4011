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
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-run/weir/internal/syncbuf"
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
	out := &syncbuf.Buffer{}
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

// TestBayVisitsKafkaRefinements runs the refinements mode at p=1 over an
// in-process broker on a script whose panes do not depend on timing: five
// events of one visit fire an early pane (the watermark cannot pass the
// visit before the batch that holds them is done), an end marker moves the
// watermark an hour on, so the visit fires on time (the early pane
// retracted first), and an event of the visit written after that is later
// than the allowed lateness: it goes to the late topic.
func TestBayVisitsKafkaRefinements(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events", "panes", "late"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(evs ...event) {
		t.Helper()
		for _, e := range evs {
			b, _ := json.Marshal(e)
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte(e.Bay), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	const t0 = int64(1_700_000_000_000)
	produce(event{"b1", t0}, event{"b1", t0 + 10_000}, event{"b1", t0 + 20_000}, event{"b1", t0 + 30_000}, event{"b1", t0 + 40_000},
		event{"zz-end", t0 + 3_600_000})

	cmd := exec.Command(os.Args[0], "--mode=local", "-p", "1", "--", "--brokers", brokers,
		"--input-topic", "events", "--output-topic", "panes", "--late-topic", "late",
		"--early-every", "5", "--lateness", "5m", "--retracting")
	cmd.Env = append(os.Environ(), "BAYVISITS_JOB=1")
	out := &syncbuf.Buffer{}
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
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics("panes", "late"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[string][]string{}
	read := func(topic string, n int) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); len(got[topic]) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %q, want %d records", topic, got[topic], n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				if !bytes.HasPrefix(r.Value, []byte(`{"bay":"b1"`)) || string(r.Key) != "b1" {
					return
				}
				got[r.Topic] = append(got[r.Topic], string(r.Value))
			})
			cancel()
		}
	}
	read("panes", 3)
	produce(event{"b1", t0 + 50_000})
	read("late", 1)
	want := []string{
		`{"bay":"b1","start":1700000000000,"end":1700000100000,"count":5,"timing":"EARLY","index":0,"retraction":false}`,
		`{"bay":"b1","start":1700000000000,"end":1700000100000,"count":5,"timing":"EARLY","index":0,"retraction":true}`,
		`{"bay":"b1","start":1700000000000,"end":1700000100000,"count":5,"timing":"ON_TIME","index":1,"retraction":false}`,
	}
	if !slices.Equal(got["panes"], want) {
		t.Fatalf("panes:\n%s\nwant:\n%s", strings.Join(got["panes"], "\n"), strings.Join(want, "\n"))
	}
	if l := got["late"]; len(l) != 1 || l[0] != `{"bay":"b1","ts":1700000050000}` {
		t.Fatalf("late: %q", l)
	}
}

// TestBayVisitsRefinementFlags: the refinements need Kafka mode, and their
// values must not be negative.
func TestBayVisitsRefinementFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--input", "x", "--output", "y", "--lateness", "5m"}, "need Kafka mode"},
		{[]string{"--input", "x", "--output", "y", "--late-topic", "late"}, "need Kafka mode"},
		{[]string{"--brokers", "b", "--input-topic", "i", "--output-topic", "o", "--early-every", "-1"}, "must not be negative"},
	} {
		cmd := exec.Command(os.Args[0], append([]string{"--mode=local", "--"}, tc.args...)...)
		cmd.Env = append(os.Environ(), "BAYVISITS_JOB=1")
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), tc.want) {
			t.Errorf("%v: %v, %s; want an error saying %q", tc.args, err, b, tc.want)
		}
	}
}
