package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A topic the embedded broker creates on first use is on disk at once, not
// only at a clean shutdown: a crash of `weir local --kafka` keeps it (and
// so its records).
func TestEmbeddedKafkaPersistsAutoCreatedTopics(t *testing.T) {
	dir := t.TempDir()
	c, err := startKafka("127.0.0.1:0", "", dir, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("fresh"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "topics.json"))
		if strings.Contains(string(b), `"name":"fresh"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics.json does not list the topic created on first use: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// weir kafka advertises --advertise, the name clients in other containers
// reach it by, and refuses to serve beyond loopback unless told it is
// plaintext.
func TestKafkaRoleAdvertises(t *testing.T) {
	port := closedAddr(t)[len("127.0.0.1:"):]
	c, err := startKafka("127.0.0.1:"+port, "localhost:"+port, t.TempDir(), nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:" + port))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].Host != "localhost" || strconv.Itoa(int(resp.Brokers[0].Port)) != port {
		t.Fatalf("brokers %+v, want localhost:%s", resp.Brokers, port)
	}

	code, _, errs := weir(context.Background(), "kafka", "--data-dir", t.TempDir(), "--addr", "0.0.0.0:9092")
	if want := "weir: --addr 0.0.0.0:9092 is beyond loopback and the broker has no TLS; pass --insecure-plaintext to serve it anyway\n"; code != exitUsage || errs != want {
		t.Errorf("exit %d, %q; want %q", code, errs, want)
	}
}
