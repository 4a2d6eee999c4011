package worker

import (
	"context"
	"log/slog"
	"math"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// liveness keeps the worker's key in etcd alive under a lease whose TTL is
// the leader's worker timeout. The key outlives coordinator connections, so
// a new leader knows which workers are alive and worth waiting for before it
// re-attaches to their jobs, and the lease's expiry tells the leader a
// worker is dead even when its stream lingers (a half-open connection).
//
// Only the worker's Run goroutine and its current session use it.
type liveness struct {
	session *concurrency.Session
	ttl     int
}

// ensure (re)creates the lease and key unless one with this TTL is alive.
// Failures are logged, not returned: heartbeats on the stream still prove
// the worker alive, the lease only speeds up the leader's decisions.
func (l *liveness) ensure(ctx context.Context, cli *clientv3.Client, key, val string, timeout time.Duration, logger *slog.Logger) {
	ttl := max(1, int(math.Ceil(timeout.Seconds())))
	if l.session != nil {
		select {
		case <-l.session.Done():
		default:
			if l.ttl == ttl {
				return
			}
		}
		l.close()
	}
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		logger.Warn("cannot keep a liveness lease in etcd", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Put(pctx, key, val, clientv3.WithLease(s.Lease())); err != nil {
		logger.Warn("cannot write the liveness key in etcd", "key", key, "err", err)
		s.Orphan()
		return
	}
	l.session, l.ttl = s, ttl
}

// close revokes the lease, deleting the key, so a leader learns of a clean
// shutdown at once.
func (l *liveness) close() {
	if l.session != nil {
		l.session.Close()
		l.session = nil
	}
}
