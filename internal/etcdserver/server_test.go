package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/weir-run/weir/internal/freeport"
	"github.com/weir-run/weir/internal/pki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(settle{m})
}

// settle gives goroutines of closed members time to drain before goleak
// looks. A member's Close returns while peer HTTP connections it shared with
// other members are still open: rafthttp resets a 5 s read deadline on
// every read, so the server side of an idle peer connection notices the
// shutdown only then. A real leak outlives the wait and still fails.
type settle struct{ m *testing.M }

func (s settle) Run() int {
	code := s.m.Run()
	deadline := time.Now().Add(10 * time.Second)
	for goleak.Find() != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	return code
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func startT(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{DataDir: dir}, true},
		{"bare host:port", Config{DataDir: dir, ClientURL: "127.0.0.1:0", PeerURL: "127.0.0.1:0"}, true},
		{"host name", Config{DataDir: dir, ClientURL: "http://etcd-0.weir:2379", PeerURL: "etcd-0.weir:2380", InsecurePlaintext: true}, true},
		{"host name without TLS", Config{DataDir: dir, ClientURL: "http://etcd-0.weir:2379", PeerURL: "etcd-0.weir:2380"}, false},
		{"TLS beyond loopback", Config{DataDir: dir, ClientURL: "10.0.0.1:2379", PeerURL: "10.0.0.1:2380", TLS: &pki.Files{CA: "ca.crt", Cert: "e.crt", Key: "e.key"}}, true},
		{"TLS without a key", Config{DataDir: dir, ClientURL: "10.0.0.1:2379", PeerURL: "10.0.0.1:2380", TLS: &pki.Files{CA: "ca.crt", Cert: "e.crt"}}, false},
		{"no data dir", Config{}, false},
		{"https", Config{DataDir: dir, ClientURL: "https://127.0.0.1:2379"}, false},
		{"no port", Config{DataDir: dir, ClientURL: "http://127.0.0.1"}, false},
		{"path", Config{DataDir: dir, ClientURL: "http://127.0.0.1:2379/x"}, false},
		{"bad state", Config{DataDir: dir, ClusterState: "old"}, false},
		{"existing alone", Config{DataDir: dir, ClusterState: ClusterStateExisting}, false},
		{"bad name", Config{DataDir: dir, Name: "a=b"}, false},
		{"same addr", Config{DataDir: dir, ClientURL: "127.0.0.1:2380"}, false},
		{"cluster", Config{DataDir: dir, Name: "a", InitialCluster: "a=http://10.0.0.1:2380,b=10.0.0.2:2380", PeerURL: "10.0.0.1:2380", InsecurePlaintext: true}, true},
		{"peer from cluster", Config{DataDir: dir, Name: "b", InitialCluster: "a=http://10.0.0.1:2380,b=10.0.0.2:2380", InsecurePlaintext: true}, true},
		{"not in cluster", Config{DataDir: dir, Name: "c", InitialCluster: "a=http://10.0.0.1:2380,b=10.0.0.2:2380"}, false},
		{"peer mismatch", Config{DataDir: dir, Name: "a", InitialCluster: "a=http://10.0.0.1:2380", PeerURL: "10.0.0.1:2390"}, false},
		{"cluster port 0", Config{DataDir: dir, Name: "a", InitialCluster: "a=127.0.0.1:0,b=127.0.0.1:2390"}, false},
		{"cluster unspecified", Config{DataDir: dir, Name: "a", InitialCluster: "a=0.0.0.0:2380,b=127.0.0.1:2390"}, false},
		{"cluster garbage", Config{DataDir: dir, InitialCluster: "default"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestListenAndAdvertise(t *testing.T) {
	r, err := Config{DataDir: "d", ClientURL: "0.0.0.0:2379", PeerURL: "etcd-0.weir:2380", InsecurePlaintext: true}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{r.clientListen.String(), "http://0.0.0.0:2379"},
		{r.clientAdvertise.String(), "http://127.0.0.1:2379"},
		{r.peerListen.String(), "http://0.0.0.0:2380"},
		{r.peerAdvertise.String(), "http://etcd-0.weir:2380"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

func TestSingleNodePutGet(t *testing.T) {
	dir := t.TempDir()
	s := startT(t, Config{DataDir: dir, ClientURL: "127.0.0.1:0", PeerURL: "127.0.0.1:0", Logger: testLogger(t)})
	eps := s.ClientEndpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") || strings.HasSuffix(eps[0], ":0") {
		t.Fatalf("ClientEndpoints = %v, want one real http://127.0.0.1 port", eps)
	}
	cli := newClient(t, eps...)
	ctx := t.Context()
	if _, err := cli.Put(ctx, "/weir/k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cli.Get(ctx, "/weir/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get = %v, %v; want v", resp, err)
	}
	cli.Close()

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}

	// The data dir outlives the process: `weir local` restarts on it, and
	// here on new ports, which etcd must accept for an existing member.
	s2 := startT(t, Config{DataDir: dir, ClientURL: "127.0.0.1:0", PeerURL: "127.0.0.1:0"})
	cli2 := newClient(t, s2.ClientEndpoints()...)
	resp, err = cli2.Get(ctx, "/weir/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get after restart = %v, %v; want v", resp, err)
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(t.Context(), Config{DataDir: t.TempDir(), ClientURL: l.Addr().String(), PeerURL: "127.0.0.1:0"})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("Start = %v, want EADDRINUSE naming %s", err, l.Addr())
	}
}

func TestStartGivesUpWithoutQuorum(t *testing.T) {
	ports := freePorts(t, 2)
	cluster := fmt.Sprintf("a=http://127.0.0.1:%d,b=http://127.0.0.1:%d", ports[0], ports[1])
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Start(ctx, Config{Name: "a", DataDir: t.TempDir(), ClientURL: "127.0.0.1:0", InitialCluster: cluster})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Start took %v to give up", d)
	}
}

func TestThreeMembersSurviveOneLoss(t *testing.T) {
	names := []string{"a", "b", "c"}
	ports := freePorts(t, len(names))
	var parts []string
	for i, n := range names {
		parts = append(parts, fmt.Sprintf("%s=http://127.0.0.1:%d", n, ports[i]))
	}
	cluster := strings.Join(parts, ",")

	// Each member blocks in Start until a quorum is up, so start them together.
	servers := make([]*Server, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			servers[i], errs[i] = Start(ctx, Config{
				Name:           n,
				DataDir:        t.TempDir(),
				ClientURL:      "127.0.0.1:0",
				InitialCluster: cluster,
				Logger:         testLogger(t),
			})
		})
	}
	wg.Wait()
	for i, s := range servers {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("start %s: %v", names[i], errs[i])
		}
	}

	var all []string
	for _, s := range servers {
		all = append(all, s.ClientEndpoints()...)
	}
	cli := newClient(t, all...)
	ctx := t.Context()
	if _, err := cli.Put(ctx, "/weir/before", "1"); err != nil {
		t.Fatalf("put: %v", err)
	}

	// Lose the raft leader, the worst member to lose.
	leader := -1
	for i, s := range servers {
		if s.etcd.Server.Leader() == s.etcd.Server.MemberID() {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no member is leader")
	}
	// HardStop skips the leadership hand-over a graceful Close does, so
	// the survivors must notice the loss and elect, as after a crash.
	dead := servers[leader].etcd.Server.MemberID()
	servers[leader].etcd.Server.HardStop()
	servers[leader].Close()

	// A proposal caught mid-election waits out etcd's request timeout, so
	// wait for the survivors to elect before writing.
	start := time.Now()
	for i, s := range servers {
		if i == leader {
			continue
		}
		for l := s.etcd.Server.Leader(); l == 0 || l == dead; l = s.etcd.Server.Leader() {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s has no new leader after %v", names[i], time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("survivors elected a new leader in %v", time.Since(start))

	var survivors []string
	for i, s := range servers {
		if i != leader {
			survivors = append(survivors, s.ClientEndpoints()...)
		}
	}
	cli2 := newClient(t, survivors...)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli2.Put(pctx, "/weir/after", "2"); err != nil {
		t.Fatalf("put after losing %s: %v", names[leader], err)
	}
	resp, err := cli2.Get(pctx, "/weir/before")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" {
		t.Fatalf("get after loss = %v, %v", resp, err)
	}
}

// freePorts picks n distinct free ports for etcd; peers must know each
// other's ports before any member starts.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		p, err := freeport.Port("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	return ports
}
