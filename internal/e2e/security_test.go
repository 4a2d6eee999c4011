package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/pki"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// certsFor runs weir certs init and issue, as an operator would.
func certsFor(t *testing.T, issue ...[2]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if _, stderr, code := weir(t, 10*time.Second, "certs", "init", "--dir", dir); code != 0 {
		t.Fatalf("weir certs init: %s", stderr)
	}
	for _, rn := range issue {
		if _, stderr, code := weir(t, 10*time.Second, "certs", "issue", "--dir", dir, "--role", rn[0], "--name", rn[1]); code != 0 {
			t.Fatalf("weir certs issue %v: %s", rn, stderr)
		}
	}
	return dir
}

// TestSecureCluster: coordinators and workers of separate processes run
// with mTLS from weir certs; a keyedcount job gives its exact result across
// a leader kill; and strangers are refused with one-line errors and no side
// effect.
func TestSecureCluster(t *testing.T) {
	certs := certsFor(t, [2]string{"etcd", "e1"}, [2]string{"etcd", "e2"}, [2]string{"etcd", "e3"}, [2]string{"coordinator", "a"}, [2]string{"coordinator", "b"},
		[2]string{"worker", "w1"}, [2]string{"worker", "w2"}, [2]string{"worker", "worker-9"},
		[2]string{"client", "ops"}, [2]string{"viewer", "vera"})
	// The CLI calls of the shared helpers authenticate as ops.
	t.Setenv("WEIR_TLS_CA", filepath.Join(certs, "ca.crt"))
	t.Setenv("WEIR_TLS_CERT", filepath.Join(certs, "ops.crt"))
	t.Setenv("WEIR_TLS_KEY", filepath.Join(certs, "ops.key"))
	c := newHACluster(t, certs).start(2, 2)

	const events, keys = 200000, 2000
	out := filepath.Join(c.dir, "out")
	id := runDetached(t, c.apis["a"], "-p", "2", "--checkpoint-interval", "1s", bins.keyedcount, "--",
		"--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--rate", "20000", "--output", out)
	waitFor(t, 30*time.Second, "a completed checkpoint", func() bool { return len(completed(checkpointsOf(t, c.apis["a"], id))) >= 1 })
	before := jobStatusOf(t, c.apis["a"], id)
	api := c.apis[c.leader()]

	// Refused, each with one line and no side effect.
	for _, r := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no certificate or token", []string{"list", "--tls-cert=", "--tls-key="}, 1, "no client certificate or token"},
		{"plaintext", []string{"list", "--tls-ca=", "--tls-cert=", "--tls-key="}, 1, "if it uses TLS, set --tls-ca"},
		{"a viewer cancelling", []string{"cancel", id, "--tls-cert", filepath.Join(certs, "vera.crt"), "--tls-key", filepath.Join(certs, "vera.key")}, 1, "CancelJob needs role operator or above; vera has role viewer"},
	} {
		_, stderr, code := weir(t, 20*time.Second, append(r.args, "--coordinator", api)...)
		if code != r.code || !strings.Contains(stderr, r.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and one line with %q", r.name, code, stderr, r.code, r.want)
		}
	}
	// Tokens: ops (a client certificate: admin) makes them; a viewer's
	// token may list but not cancel; a revoked one stops working.
	tokenFile := func(name, role string) string {
		t.Helper()
		stdout, stderr, code := weir(t, 20*time.Second, "token", "create", "--name", name, "--role", role, "--coordinator", api)
		if code != 0 || !strings.HasPrefix(stdout, "weir_") {
			t.Fatalf("weir token create %s: %d %q %q", name, code, stdout, stderr)
		}
		f := filepath.Join(t.TempDir(), name+".token")
		if err := os.WriteFile(f, []byte(stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	viewerTok := tokenFile("dash", "viewer")
	opTok := tokenFile("ci", "operator")
	asToken := func(f string, args ...string) (string, string, int) {
		return weir(t, 20*time.Second, append(args, "--tls-cert=", "--tls-key=", "--token-file", f, "--coordinator", api)...)
	}
	if out, stderr, code := asToken(viewerTok, "list"); code != 0 || !strings.Contains(out, id) {
		t.Errorf("a viewer token listing: %d %q %q", code, out, stderr)
	}
	if _, stderr, code := asToken(viewerTok, "cancel", id); code != 1 || !strings.Contains(stderr, "CancelJob needs role operator or above; dash has role viewer") {
		t.Errorf("a viewer token cancelling: %d %q", code, stderr)
	}
	if _, stderr, code := asToken(opTok, "token", "list"); code != 1 || !strings.Contains(stderr, "needs role admin") {
		t.Errorf("an operator token listing tokens: %d %q", code, stderr)
	}
	if out, _, code := weir(t, 20*time.Second, "token", "list", "--coordinator", api); code != 0 || !strings.Contains(out, "dash") || !strings.Contains(out, "operator") || strings.Contains(out, "weir_") {
		t.Errorf("weir token list: %d %q (names and roles, never tokens)", code, out)
	}
	if _, stderr, code := weir(t, 20*time.Second, "token", "revoke", "dash", "--coordinator", api); code != 0 {
		t.Fatalf("weir token revoke: %s", stderr)
	}
	waitFor(t, 10*time.Second, "the revoked token to be refused", func() bool {
		_, stderr, code := asToken(viewerTok, "list")
		return code == 1 && strings.Contains(stderr, "token refused")
	})
	if st := jobStatusOf(t, api, id); st.State != "RUNNING" || st.Attempt != before.Attempt {
		t.Fatalf("after the refusals the job is %s attempt %d, was RUNNING attempt %d", st.State, st.Attempt, before.Attempt)
	}

	// A worker whose certificate names worker-9 cannot register as w1: the
	// coordinator refuses it, and w1 stays.
	src, err := pki.NewSource(pki.Files{CA: filepath.Join(certs, "ca.crt"), Cert: filepath.Join(certs, "worker-9.crt"), Key: filepath.Join(certs, "worker-9.key")})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(api, grpc.WithTransportCredentials(credentials.NewTLS(src.ClientConfig(pki.RoleCoordinator))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := weirv1.NewClusterServiceClient(conn).Connect(ctx)
	if err == nil {
		err = stream.Send(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Register{Register: &weirv1.RegisterWorker{WorkerId: "w1", Slots: 64, Host: "evil"}}})
	}
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "certificate names worker-9; it cannot register as w1") {
		t.Errorf("worker-9 registering as w1: %v", err)
	}
	// The same worker started as a daemon with the wrong --id stops at once.
	if _, stderr, code := weir(t, 10*time.Second, append([]string{"worker", "--etcd", c.etcdFlag, "--data-dir", t.TempDir(), "--id", "w1"}, c.tlsFlags("worker-9")...)...); code != 2 || !strings.Contains(stderr, "the certificate names worker worker-9") {
		t.Errorf("weir worker --id w1 with worker-9's certificate: exit %d, %q", code, stderr)
	}
	if ws := listWorkers(t, api); len(ws) != 2 || ws[0].Slots != 2 || ws[1].Slots != 2 {
		t.Errorf("after the refused registration the workers are %+v, want w1 and w2 with 2 slots each", ws)
	}

	// etcd refuses a client without a certificate, and one with a person's
	// certificate (even an admin's): only the cluster's processes reach it.
	for _, who := range []string{"", "ops"} {
		cfg := clientv3.Config{Endpoints: c.clients, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
		ca, err := pki.NewSource(pki.Files{CA: filepath.Join(certs, "ca.crt")})
		if err != nil {
			t.Fatal(err)
		}
		if who != "" {
			if ca, err = pki.NewSource(pki.Files{CA: filepath.Join(certs, "ca.crt"), Cert: filepath.Join(certs, who+".crt"), Key: filepath.Join(certs, who+".key")}); err != nil {
				t.Fatal(err)
			}
		}
		cfg.TLS = ca.ClientConfig(pki.RoleEtcd)
		if cli, err := clientv3.New(cfg); err == nil {
			gctx, gcancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = cli.Get(gctx, "/weir/jobs/", clientv3.WithPrefix())
			gcancel()
			cli.Close()
			if err == nil {
				t.Errorf("etcd answered a client with certificate %q", who)
			}
		}
	}
	plain := clientv3.Config{Endpoints: c.clients, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if cli, err := clientv3.New(plain); err == nil {
		gctx, gcancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = cli.Get(gctx, "/weir/jobs/", clientv3.WithPrefix())
		gcancel()
		cli.Close()
		if err == nil {
			t.Error("etcd answered a plaintext client")
		}
	}

	// A daemon on a non-loopback address without TLS refuses to start.
	if _, stderr, code := weir(t, 10*time.Second, "coordinator", "--etcd", c.etcdFlag, "--store", c.store, "--api", "0.0.0.0:0", "--http", "", "--tls-ca=", "--tls-cert=", "--tls-key="); code != 2 || !strings.Contains(stderr, "--insecure-plaintext") {
		t.Errorf("a plaintext coordinator on 0.0.0.0: exit %d, %q", code, stderr)
	}

	// The leader's kill changes nothing for the result.
	c.killLeader()
	live := c.apis[c.leader()]
	waitFinished(t, live, id, 120*time.Second)
	checkCounts(t, out, keys, events/keys)
}

// TestDisableSubmit: a coordinator started with --disable-submit refuses a
// client certificate (every right) uploading and running a job, with one
// line, and no job appears; reading still works.
func TestDisableSubmit(t *testing.T) {
	certs := certsFor(t, [2]string{"etcd", "e"}, [2]string{"coordinator", "c"}, [2]string{"client", "ops"})
	t.Setenv("WEIR_TLS_CA", filepath.Join(certs, "ca.crt"))
	t.Setenv("WEIR_TLS_CERT", filepath.Join(certs, "ops.crt"))
	t.Setenv("WEIR_TLS_KEY", filepath.Join(certs, "ops.key"))
	dir := t.TempDir()
	etcd := freeAddr(t)
	startDaemon(t, "etcd", "etcd", "--data-dir", filepath.Join(dir, "etcd"), "--client", etcd, "--peer", freeAddr(t),
		"--tls-cert", filepath.Join(certs, "e.crt"), "--tls-key", filepath.Join(certs, "e.key"))
	api := freeAddr(t)
	startDaemon(t, "coordinator", "coordinator", "--etcd", etcd, "--store", "file://"+filepath.Join(dir, "store"), "--api", api, "--http", "",
		"--disable-submit", "--tls-ca", filepath.Join(certs, "ca.crt"), "--tls-cert", filepath.Join(certs, "c.crt"), "--tls-key", filepath.Join(certs, "c.key"))
	waitFor(t, 30*time.Second, "the coordinator to answer", func() bool { _, ok := listJobs(t, api); return ok })
	_, stderr, code := weir(t, 30*time.Second, "run", "--coordinator", api, "--detach", bins.keyedcount, "--", "--events", "10", "--keys", "1", "--output", filepath.Join(dir, "out"))
	if code != 1 || !strings.Contains(stderr, "submitting jobs is disabled on this coordinator (--disable-submit)") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("weir run against --disable-submit: exit %d, %q", code, stderr)
	}
	if jobs, ok := listJobs(t, api); !ok || len(jobs) != 0 {
		t.Errorf("after the refused submission the coordinator lists %v (%v)", jobs, ok)
	}
}
