package etcdkeys

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/weir-run/weir/internal/pki"
)

// CurrentLeader returns the address of the leader elected under prefix, or
// an error wrapping ErrNoLeader. It needs no session, so workers and CLIs
// can call it.
func CurrentLeader(ctx context.Context, cli *clientv3.Client, prefix string) (string, error) {
	addr, _, err := currentLeader(ctx, cli, keyPrefix(prefix))
	if err != nil {
		return "", fmt.Errorf("etcdkeys: current leader under %q: %w", prefix, err)
	}
	if addr == "" {
		return "", ErrNoLeader
	}
	return addr, nil
}

// Watch emits the address of the leader elected under prefix: first the
// current one, then each time it changes, "" while there is none. Errors
// from etcd are retried, so the channel only closes when ctx is done. A
// slow reader delays, but never misses, the latest change.
func Watch(ctx context.Context, cli *clientv3.Client, prefix string) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		watchLeader(ctx, cli, keyPrefix(prefix), ch)
	}()
	return ch
}

func keyPrefix(prefix string) string {
	return strings.TrimSuffix(prefix, "/") + "/"
}

// currentLeader returns the oldest candidate's value ("" if none) and the
// revision it was read at.
func currentLeader(ctx context.Context, cli *clientv3.Client, pfx string) (string, int64, error) {
	resp, err := cli.Get(ctx, pfx, clientv3.WithFirstCreate()...)
	if err != nil {
		return "", 0, err
	}
	if len(resp.Kvs) == 0 {
		return "", resp.Header.Revision, nil
	}
	return string(resp.Kvs[0].Value), resp.Header.Revision, nil
}

func watchLeader(ctx context.Context, cli *clientv3.Client, pfx string, ch chan<- string) {
	last, sent := "", false
	emit := func(addr string) bool {
		if sent && addr == last {
			return true
		}
		select {
		case ch <- addr:
			last, sent = addr, true
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		addr, rev, err := currentLeader(ctx, cli, pfx)
		if err != nil {
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, 2*time.Second)
			case <-ctx.Done():
			}
			continue
		}
		backoff = 50 * time.Millisecond
		if !emit(addr) {
			return
		}
		// Any change under the prefix may change who is oldest; re-reading
		// is simpler than replaying events and costs one small range.
		// RequireLeader: a member cut off from its cluster fails the watch
		// rather than letting it fall silent while a new leader is elected.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if wr.Err() != nil {
				break // compacted or cancelled: start over from a fresh read
			}
			addr, _, err := currentLeader(ctx, cli, pfx)
			if err != nil {
				break
			}
			if !emit(addr) {
				cancel()
				return
			}
		}
		cancel()
	}
}

// reconnectMaxDelay bounds the wait between attempts to reach an etcd
// member: a few dials a second at most, at little cost to etcd.
const reconnectMaxDelay = time.Second

// ClientConfig is how the cluster's processes dial etcd: over TLS with the
// process's own certificate when the cluster has one (src), checking that
// the server is an etcd member of the cluster CA.
func ClientConfig(endpoints []string, src *pki.Source) clientv3.Config {
	c := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			// gRPC's default backoff grows to 120 s: a standby cut off for
			// half a minute would then stay away from etcd, unable to take
			// over, for tens of seconds after the network healed.
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMaxDelay},
			MinConnectTimeout: 5 * time.Second,
		})}}
	if src != nil {
		c.TLS = src.ClientConfig(pki.RoleEtcd)
	}
	return c
}
