package e2e

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestKafkaSecretSASL: a broker that requires SASL/SCRAM, credentials kept
// as a job secret (weir secret set), and eoscount submitted with
// --secret: it counts every record exactly once, and the password is
// nowhere a person or another program can see it: not in the job's
// status or JSON, not in etcd's files, not in the logs, not in the job
// processes' command lines or environments.
func TestKafkaSecretSASL(t *testing.T) {
	const password = "s3cr3t-pw-Zq9vX"
	dir := t.TempDir()
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("SCRAM-SHA-512 app "+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api, httpAddr, brokers := freeAddr(t), freeAddr(t), freeAddr(t)
	d := startDaemon(t, "weir local --kafka", "local", "--kafka", "--kafka-addr", brokers, "--kafka-sasl-users", users,
		"--data-dir", dir, "--api", api, "--http", httpAddr, "--workers", "2", "--slots", "2")
	waitFor(t, 15*time.Second, "weir local to answer", func() bool { _, ok := listJobs(t, api); return ok })

	anon := kafkaClient(t, brokers, kgo.DefaultProduceTopic("in"), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := anon.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr()
	cancel()
	if err == nil {
		t.Fatal("the broker took a record from a client without SASL: the test would prove nothing")
	}

	creds := filepath.Join(t.TempDir(), "creds.json")
	os.WriteFile(creds, []byte(`{"mechanism": "SCRAM-SHA-512", "username": "app", "password": "`+password+`"}`), 0o600)
	if out, stderr, code := weir(t, 20*time.Second, "secret", "set", "kafka-creds", "--from-file", creds, "--coordinator", api); code != 0 || !strings.Contains(out, "secret kafka-creds set") {
		t.Fatalf("weir secret set: %d %q %q", code, out, stderr)
	}
	if out, _, code := weir(t, 20*time.Second, "secret", "list", "--coordinator", api, "-o", "json"); code != 0 || !strings.Contains(out, `"kafka-creds"`) || strings.Contains(out, password) {
		t.Fatalf("weir secret list: %d %q", code, out)
	}
	args := []string{"-p", "2", "--checkpoint-interval", "1s", bins.eoscount, "--",
		"--brokers", brokers, "--input-topic", "in", "--output-topic", "out", "--kafka-secret", "kafka-creds"}
	// Without --secret the job cannot read it: refused by the job, with the
	// way out.
	if _, stderr, code := weir(t, 60*time.Second, append([]string{"run", "--coordinator", api}, args...)...); code == 0 || !strings.Contains(stderr, "weir run --secret kafka-creds") {
		t.Fatalf("a job without --secret: exit %d, %q", code, stderr)
	}
	if _, stderr, code := weir(t, 30*time.Second, "run", "--coordinator", api, "--detach", "--secret", "nope", bins.eoscount, "--", "--brokers", brokers,
		"--input-topic", "in", "--output-topic", "out"); code == 0 || !strings.Contains(stderr, "secret nope") {
		t.Fatalf("a job naming an unknown secret: exit %d, %q", code, stderr)
	}

	auth := kgo.SASL(scram.Auth{User: "app", Pass: password}.AsSha512Mechanism())
	const total = 3000
	producer := kafkaClient(t, brokers, kgo.DefaultProduceTopic("in"), kgo.AllowAutoTopicCreation(), auth)
	produced := produceKeys(producer, total, 500, 100*time.Millisecond)
	id := runDetached(t, api, append([]string{"--secret", "kafka-creds"}, args...)...)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	if missing, dups, wrong := countOutput(t, brokers, "out", total, auth); missing != 0 || dups != 0 || wrong != 0 {
		t.Fatalf("output: %d missing, %d duplicated, %d wrong", missing, dups, wrong)
	}

	// Where the password must not be.
	seen := map[string][]byte{}
	status, _, _ := weir(t, 10*time.Second, "status", "--coordinator", api, id, "-o", "json")
	seen["weir status -o json"] = []byte(status)
	if resp, err := http.Get("http://" + httpAddr + "/api/v1/jobs/" + id); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen["/api/v1/jobs/ID"] = b
	} else {
		t.Fatal(err)
	}
	for _, pid := range taskPids(t, api, id) {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + f)
			if err != nil {
				t.Fatal(err)
			}
			seen["/proc/job process/"+f] = b
		}
	}
	if len(seen) < 4 {
		t.Fatalf("looked only at %d places; the job's processes were not found", len(seen))
	}
	seen["weir local's log"] = []byte(d.out.String())
	filepath.WalkDir(filepath.Join(dir, "etcd"), func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := os.ReadFile(path)
			seen["etcd "+filepath.Base(path)] = b
		}
		return nil
	})
	if !bytes.Contains(seen["etcd db"], []byte("/weir/secrets/kafka-creds")) {
		t.Fatal("etcd's files do not hold the secret's key: the search would find nothing anyway")
	}
	for where, b := range seen {
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("the password is in %s", where)
		}
	}
	weir(t, 30*time.Second, "cancel", "--coordinator", api, id)
}
