package worker

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// livenessTimeout bounds each etcd round trip of ensure, so an unreachable
// etcd cannot hold a worker's shutdown.
const livenessTimeout = 3 * time.Second

// liveness keeps the worker's key in etcd alive under a lease whose TTL is
// the leader's worker timeout. The key outlives coordinator connections, so
// a new leader knows which workers are alive and worth waiting for before it
// re-attaches to their jobs, and the lease's expiry tells the leader a
// worker is dead even when its stream lingers (a half-open connection).
type liveness struct {
	mu      sync.Mutex // held across etcd calls: it only orders ensure and close
	session *concurrency.Session
	ttl     int
	closed  bool
}

// ensure (re)creates the lease and key unless one with this TTL is alive.
// Failures are logged, not returned: heartbeats on the stream still prove
// the worker alive, the lease only speeds up the leader's decisions. It
// blocks for at most two etcd round trips; callers run it off the
// heartbeat path.
func (l *liveness) ensure(cli *clientv3.Client, key, val string, timeout time.Duration, logger *slog.Logger) {
	ttl := max(1, int(math.Ceil(timeout.Seconds())))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.session != nil {
		select {
		case <-l.session.Done():
		default:
			if l.ttl == ttl {
				return
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), livenessTimeout)
	defer cancel()
	grant, err := cli.Grant(ctx, int64(ttl))
	if err != nil {
		logger.Warn("cannot keep a liveness lease in etcd", "err", err)
		return
	}
	s, err := concurrency.NewSession(cli, concurrency.WithLease(grant.ID), concurrency.WithTTL(ttl))
	if err != nil {
		logger.Warn("cannot keep a liveness lease in etcd", "err", err)
		return
	}
	// The key moves to the new lease before the old one is revoked, so it
	// never disappears: a leader watching it would take that for a death.
	if _, err := cli.Put(ctx, key, val, clientv3.WithLease(s.Lease())); err != nil {
		logger.Warn("cannot write the liveness key in etcd", "key", key, "err", err)
		s.Orphan()
		return
	}
	l.revokeLocked()
	l.session, l.ttl = s, ttl
}

// close revokes the lease, deleting the key, so a leader learns of a clean
// shutdown at once; no ensure takes effect after it.
func (l *liveness) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.revokeLocked()
}

func (l *liveness) revokeLocked() {
	if l.session == nil {
		return
	}
	l.session.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), livenessTimeout)
	defer cancel()
	l.session.Client().Revoke(ctx, l.session.Lease())
	l.session = nil
}
