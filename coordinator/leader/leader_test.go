package leader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/etcdserver"
)

const testTTL = 2 * time.Second // etcd's minimum lease TTL with default timing

var endpoints []string

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withEtcd{m})
}

// withEtcd runs the tests against one real embedded etcd member, closed
// before goleak looks for leftover goroutines.
type withEtcd struct{ m *testing.M }

func (w withEtcd) Run() int {
	dir, err := os.MkdirTemp("", "weir-leader-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdserver.Start(ctx, etcdserver.Config{DataDir: dir, ClientURL: "127.0.0.1:0", PeerURL: "127.0.0.1:0"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	endpoints = srv.ClientEndpoints()
	return w.m.Run()
}

// newClient is one process's connection to etcd.
func newClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func newElector(t *testing.T, cli *clientv3.Client, addr string) *Elector {
	t.Helper()
	e, err := NewElector(cli, prefix(t), "", addr, testTTL, nil)
	if err != nil {
		t.Fatalf("NewElector: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// bases gives each test run its own keys in the shared etcd, also under
// -count=N.
var (
	bases   sync.Map // *testing.T -> string
	nextRun atomic.Int64
)

func base(t *testing.T) string {
	b, ok := bases.Load(t)
	if !ok {
		b, _ = bases.LoadOrStore(t, fmt.Sprintf("/test/%s/%d/", t.Name(), nextRun.Add(1)))
		t.Cleanup(func() { bases.Delete(t) })
	}
	return b.(string)
}

func prefix(t *testing.T) string { return base(t) + "leader" }

// meta is where a test keeps metadata: never under the election prefix,
// where a key would count as a candidate.
func meta(t *testing.T) string { return base(t) + "meta/" }

func campaign(t *testing.T, e *Elector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.Campaign(ctx); err != nil {
		t.Fatalf("Campaign: %v", err)
	}
}

// campaignAsync starts a Campaign that should block; its result arrives
// later. It is cancelled, if still running, when the test ends.
func campaignAsync(t *testing.T, e *Elector) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- e.Campaign(t.Context())
	}()
	select {
	case err := <-done:
		t.Fatalf("standby Campaign returned %v while another leads", err)
	case <-time.After(300 * time.Millisecond):
	}
	t.Cleanup(func() {
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Campaign did not return when the test ended")
		}
	})
	return done
}

func waitErr(t *testing.T, ch <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(within):
		t.Fatalf("no result within %v", within)
		return nil
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(within):
		t.Fatalf("%s not closed within %v", what, within)
	}
}

// waitAddr reads w until it reports want.
func waitAddr(t *testing.T, w <-chan string, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got, ok := <-w:
			if !ok {
				t.Fatalf("watch closed waiting for %q", want)
			}
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("watch did not report %q", want)
		}
	}
}

func assertLeader(t *testing.T, cli *clientv3.Client, want string) {
	t.Helper()
	got, err := etcdkeys.CurrentLeader(t.Context(), cli, prefix(t))
	if err != nil || got != want {
		t.Fatalf("CurrentLeader = %q, %v; want %q", got, err, want)
	}
}

func failover(t *testing.T, leave func(*Elector) error) {
	observer := newClient(t)
	e1 := newElector(t, newClient(t), "a:1")
	e2 := newElector(t, newClient(t), "b:1")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := etcdkeys.Watch(ctx, observer, prefix(t))

	campaign(t, e1)
	rev1 := e1.Rev()
	if rev1 <= 0 {
		t.Fatalf("Rev = %d after Campaign", rev1)
	}
	assertLeader(t, observer, "a:1")
	waitAddr(t, w, "a:1")

	if e2.Candidate() {
		t.Fatal("Candidate before any Campaign")
	}
	done := campaignAsync(t, e2)
	if e2.Rev() != 0 {
		t.Fatalf("standby Rev = %d, want 0", e2.Rev())
	}
	waitCandidate(t, e2, true)
	if !e1.Candidate() {
		t.Fatal("the leader is not a Candidate")
	}
	select {
	case <-e2.Leading():
	default:
		t.Fatal("standby's Leading is open")
	}

	start := time.Now()
	if err := leave(e1); err != nil {
		t.Fatalf("leave: %v", err)
	}
	waitClosed(t, e1.Leading(), time.Second, "old leader's Leading")
	if e1.Candidate() {
		t.Fatal("a leader that left is still a Candidate")
	}
	if err := waitErr(t, done, testTTL); err != nil {
		t.Fatalf("standby Campaign: %v", err)
	}
	t.Logf("standby led %v after the leader left", time.Since(start))
	assertLeader(t, observer, "b:1")
	waitAddr(t, w, "b:1")
	if e2.Rev() <= rev1 {
		t.Fatalf("new Rev %d not after old %d", e2.Rev(), rev1)
	}
	if e1.Rev() != 0 {
		t.Fatalf("old leader Rev = %d, want 0", e1.Rev())
	}
	select {
	case <-e2.Leading():
		t.Fatal("new leader's Leading closed")
	default:
	}

	cancel()
	for range w {
	}
}

// waitCandidate waits until e.Candidate() is want: a Campaign queues its
// key asynchronously.
func waitCandidate(t *testing.T, e *Elector, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.Candidate() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Candidate() stayed %v", !want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFailoverOnClose(t *testing.T) {
	failover(t, func(e *Elector) error { return e.Close() })
}

func TestFailoverOnResign(t *testing.T) {
	failover(t, func(e *Elector) error { return e.Resign(t.Context()) })
}

func TestCampaignAgainAfterResign(t *testing.T) {
	cli := newClient(t)
	e1 := newElector(t, cli, "a:1")
	e2 := newElector(t, newClient(t), "b:1")
	campaign(t, e1)
	done := campaignAsync(t, e2)
	if err := e1.Resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, done, testTTL); err != nil {
		t.Fatal(err)
	}
	// The old leader queues behind the new one and leads again when it goes.
	done = campaignAsync(t, e1)
	if err := e2.Resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, done, testTTL); err != nil {
		t.Fatal(err)
	}
	assertLeader(t, cli, "a:1")
	if err := e1.Campaign(t.Context()); err != nil {
		t.Fatalf("Campaign while leading: %v", err)
	}
}

func TestLeaseRevokedFencesStore(t *testing.T) {
	other := newClient(t)
	e1 := newElector(t, newClient(t), "a:1")
	e2 := newElector(t, newClient(t), "b:1")
	campaign(t, e1)
	s1 := e1.Store()
	if err := s1.Put(t.Context(), meta(t)+"k", []byte("v1")); err != nil {
		t.Fatalf("leader Put: %v", err)
	}
	done := campaignAsync(t, e2)

	// The session dies as if the process had stalled past its TTL.
	if _, err := other.Revoke(t.Context(), e1.currentTerm().session.Lease()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, e1.Leading(), testTTL, "deposed leader's Leading")
	if err := waitErr(t, done, testTTL); err != nil {
		t.Fatalf("standby Campaign: %v", err)
	}
	assertLeader(t, other, "b:1")

	if err := s1.Put(t.Context(), meta(t)+"k", []byte("stale")); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed Put = %v, want ErrFenced", err)
	}
	if err := s1.Delete(t.Context(), meta(t)+"k"); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed Delete = %v, want ErrFenced", err)
	}
	if _, err := s1.PutIfAbsent(t.Context(), meta(t)+"new", nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed PutIfAbsent = %v, want ErrFenced", err)
	}
	if err := e2.Store().Put(t.Context(), meta(t)+"k", []byte("v2")); err != nil {
		t.Fatalf("new leader Put: %v", err)
	}
	v, ok, err := e2.Store().Get(t.Context(), meta(t)+"k")
	if err != nil || !ok || string(v) != "v2" {
		t.Fatalf("Get = %q, %v, %v; want v2", v, ok, err)
	}
}

// TestEtcdRefusesStaleTerm checks the fence etcd enforces, for a leader
// that has not yet noticed it was deposed (a paused process, a slow
// keep-alive), by bypassing the Elector's own knowledge.
func TestEtcdRefusesStaleTerm(t *testing.T) {
	other := newClient(t)
	e1 := newElector(t, newClient(t), "a:1")
	campaign(t, e1)
	t1 := e1.currentTerm()
	if _, err := other.Revoke(t.Context(), t1.session.Lease()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, e1.Leading(), testTTL, "Leading")

	stale := &term{session: t1.session, key: t1.key, rev: t1.rev, lost: make(chan struct{})}
	e1.mu.Lock()
	e1.mu.term = stale
	e1.mu.Unlock()

	key := meta(t) + "k"
	if err := e1.Store().Put(t.Context(), key, []byte("stale")); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale Put = %v, want ErrFenced", err)
	}
	if _, ok, _ := e1.Store().Get(t.Context(), key); ok {
		t.Fatal("stale Put was applied")
	}
	waitClosed(t, e1.Leading(), 100*time.Millisecond, "Leading after a refused write")
}

func TestNextIDAcrossLeaders(t *testing.T) {
	e1 := newElector(t, newClient(t), "a:1")
	e2 := newElector(t, newClient(t), "b:1")
	counter := meta(t) + "checkpoint-id"
	campaign(t, e1)
	s1 := e1.Store()

	var got []int64
	for range 3 {
		id, err := s1.NextID(t.Context(), counter)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("ids = %v, want 1 2 3", got)
	}

	// Concurrent callers contend on the CAS and still get distinct ids.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				id, err := s1.NextID(t.Context(), counter)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	for i, id := range got {
		if id != int64(i+1) {
			t.Fatalf("ids = %v, want 1..%d without gaps or repeats", got, len(got))
		}
	}

	done := campaignAsync(t, e2)
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, done, testTTL); err != nil {
		t.Fatal(err)
	}
	id, err := e2.Store().NextID(t.Context(), counter)
	if err != nil || id != int64(len(got)+1) {
		t.Fatalf("new leader NextID = %d, %v; want %d", id, err, len(got)+1)
	}
	if _, err := s1.NextID(t.Context(), counter); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed NextID = %v, want ErrFenced", err)
	}
}

func TestNextIDRejectsGarbage(t *testing.T) {
	cli := newClient(t)
	e := newElector(t, cli, "a:1")
	campaign(t, e)
	counter := meta(t) + "id"
	if _, err := cli.Put(t.Context(), counter, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store().NextID(t.Context(), counter); err == nil || errors.Is(err, ErrFenced) {
		t.Fatalf("NextID on garbage = %v, want a non-fenced error", err)
	}
}

func TestStoreOps(t *testing.T) {
	e := newElector(t, newClient(t), "a:1")
	s := e.Store() // taken before Campaign: it follows the Elector
	ctx := t.Context()
	p := meta(t) + "jobs/"
	if err := s.Put(ctx, p+"a", []byte("1")); !errors.Is(err, ErrFenced) {
		t.Fatalf("Put before Campaign = %v, want ErrFenced", err)
	}
	campaign(t, e)

	created, err := s.PutIfAbsent(ctx, p+"a", []byte("1"))
	if err != nil || !created {
		t.Fatalf("PutIfAbsent new = %v, %v", created, err)
	}
	created, err = s.PutIfAbsent(ctx, p+"a", []byte("2"))
	if err != nil || created {
		t.Fatalf("PutIfAbsent existing = %v, %v", created, err)
	}
	for _, k := range []string{"b", "c", "d", "e"} {
		if err := s.Put(ctx, p+k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, meta(t)+"jobsx", []byte("outside")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, p+"e"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, p+"missing"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if _, ok, err := s.Get(ctx, p+"e"); ok || err != nil {
		t.Fatalf("Get deleted = %v, %v", ok, err)
	}

	defer func(n int64) { listPage = n }(listPage)
	listPage = 2 // force several pages
	all, err := s.List(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{p + "a": "1", p + "b": "b", p + "c": "c", p + "d": "d"}
	if len(all) != len(want) {
		t.Fatalf("List = %q, want %q", all, want)
	}
	for k, v := range want {
		if string(all[k]) != v {
			t.Fatalf("List = %q, want %q", all, want)
		}
	}
	if got, err := s.List(ctx, p+"zzz"); err != nil || len(got) != 0 {
		t.Fatalf("List empty = %v, %v", got, err)
	}
}

func TestCancelledCampaignLeavesNoCandidate(t *testing.T) {
	cli := newClient(t)
	e1 := newElector(t, cli, "a:1")
	e2 := newElector(t, newClient(t), "b:1")
	campaign(t, e1)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := e2.Campaign(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign = %v, want deadline exceeded", err)
	}
	if err := e1.Resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Had e2's candidate key survived, it would now read as the leader.
	if addr, err := etcdkeys.CurrentLeader(t.Context(), cli, prefix(t)); !errors.Is(err, etcdkeys.ErrNoLeader) {
		t.Fatalf("CurrentLeader = %q, %v; want ErrNoLeader", addr, err)
	}
}

func TestCloseInterruptsCampaign(t *testing.T) {
	e1 := newElector(t, newClient(t), "a:1")
	e2 := newElector(t, newClient(t), "b:1")
	campaign(t, e1)
	done := campaignAsync(t, e2)
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, done, 5*time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Campaign = %v, want ErrClosed", err)
	}
	if e2.Candidate() {
		t.Fatal("a closed standby is still a Candidate")
	}
	if err := e2.Campaign(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Campaign after Close = %v, want ErrClosed", err)
	}
	if err := e2.Store().Put(t.Context(), meta(t)+"k", nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("Put after Close = %v, want ErrFenced", err)
	}
}

func TestWatchWithoutLeader(t *testing.T) {
	cli := newClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	w := etcdkeys.Watch(ctx, cli, prefix(t)+"/") // a trailing slash names the same election
	if got := <-w; got != "" {
		t.Fatalf("first = %q, want \"\"", got)
	}
	e := newElector(t, newClient(t), "a:1")
	campaign(t, e)
	waitAddr(t, w, "a:1")
	if err := e.Resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitAddr(t, w, "")
	cancel()
	select {
	case _, ok := <-w:
		if ok {
			for range w {
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch not closed after cancel")
	}
}

func TestNewElectorValidates(t *testing.T) {
	cli := newClient(t)
	for _, c := range []struct {
		cli          *clientv3.Client
		prefix, addr string
		ttl          time.Duration
	}{
		{nil, "/p", "a", 0},
		{cli, "", "a", 0},
		{cli, "/", "a", 0},
		{cli, "/p", "", 0},
		{cli, "/p", "a", -time.Second},
	} {
		if _, err := NewElector(c.cli, c.prefix, "", c.addr, c.ttl, nil); err == nil {
			t.Errorf("NewElector(%v, %q, %q, %v) succeeded", c.cli != nil, c.prefix, c.addr, c.ttl)
		}
	}
	e, err := NewElector(cli, "/p", "", "a", 1500*time.Millisecond, nil)
	if err != nil || e.ttl != 2 || e.id != "a" {
		t.Fatalf("NewElector = %+v, %v; want ttl 2s, id a", e, err)
	}
	e.Close()
}
