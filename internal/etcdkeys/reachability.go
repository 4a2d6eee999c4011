package etcdkeys

import (
	"context"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// LogReachability probes etcd every interval until ctx is done and logs
// what changes: a warning when it cannot be reached (again every minute
// while it stays so, so an operator tailing the log sees why nothing is
// decided), and a line when it answers again. etcd's client retries
// silently, so without this a daemon cut off from etcd says nothing.
func LogReachability(ctx context.Context, cli *clientv3.Client, interval time.Duration, logger *slog.Logger) {
	const repeat = time.Minute
	var downSince, warned time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, min(interval, 2*time.Second))
		// A linearizable read: it fails without a quorum.
		_, err := cli.Get(pctx, Election, clientv3.WithCountOnly())
		cancel()
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && downSince.IsZero():
			downSince, warned = now, now
			logger.Warn("etcd unreachable: no leader decisions until it answers; running tasks keep running",
				"endpoints", strings.Join(cli.Endpoints(), ","), "err", err)
		case err != nil && now.Sub(warned) >= repeat:
			warned = now
			logger.Warn("etcd still unreachable", "for", now.Sub(downSince).Round(time.Second), "err", err)
		case err == nil && !downSince.IsZero():
			logger.Info("etcd reachable again", "after", now.Sub(downSince).Round(time.Second))
			downSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
