package main

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A transaction open when the broker crashes is aborted when it starts
// again (kfake cannot resume it), and the next transaction of the same
// transactional id, committed after the restart, is visible to
// read_committed readers. kfake's recovery marks the open transaction
// aborted without writing an abort marker; a reader then skips every later
// record of that producer id, committed or not, until a marker that never
// comes (found by the chaos campaign, bench/chaos). The crash is a copy of
// the data directory taken while the transaction is open: what a kill -9
// leaves on disk.
func TestKafkaCrashKeepsLaterTransactionsVisible(t *testing.T) {
	dir, crashed := t.TempDir(), t.TempDir()
	c, err := startKafka("127.0.0.1:0", "", dir, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produce := func(brokers []string, value string, commit bool) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("sink-0"), kgo.DefaultProduceTopic("out"),
			kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			return
		}
		// The crash, with the transaction open.
		if out, err := exec.Command("cp", "-a", dir+"/.", crashed).CombinedOutput(); err != nil {
			t.Fatalf("copy the data dir: %v: %s", err, out)
		}
	}
	produce(c.ListenAddrs(), "before", true)
	produce(c.ListenAddrs(), "open at the crash", false)
	c.Close()

	var log strings.Builder
	c, err = startKafka("127.0.0.1:0", "", crashed, nil, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The restarted broker names the transaction it aborted, in one line.
	if lines := strings.Split(strings.TrimSpace(log.String()), "\n"); len(lines) != 1 ||
		!strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], "LOST TRANSACTION out/0 producer id ") ||
		!strings.Contains(lines[0], ": 1 records at offsets 2-2:") {
		t.Errorf("the restarted broker logged %q, want one ERROR line naming the lost transaction out/0, 1 record at offset 2", log.String())
	}
	produce(c.ListenAddrs(), "after", true)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(got) < 2; {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		pcancel()
	}
	if len(got) != 2 || got[0] != "before" || got[1] != "after" {
		t.Fatalf("read_committed after the crash: %q, want [before after]", got)
	}
}
