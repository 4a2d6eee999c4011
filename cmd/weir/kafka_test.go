package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A topic the embedded broker creates on first use is on disk at once, not
// only at a clean shutdown: a crash of `weir local --kafka` keeps it (and
// so its records).
func TestEmbeddedKafkaPersistsAutoCreatedTopics(t *testing.T) {
	dir := t.TempDir()
	c, err := startKafka("127.0.0.1:0", dir)
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
