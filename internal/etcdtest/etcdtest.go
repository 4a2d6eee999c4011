// Package etcdtest starts a real, embedded single-member etcd for tests
// and hands back a client: the cluster's metadata store under test is the
// one it runs on, not a mock.
package etcdtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/weir-run/weir/internal/etcdserver"
)

// Start runs a member on free loopback ports in a temporary directory and
// returns a client of it. Both are closed when the test ends.
func Start(tb testing.TB) *clientv3.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdserver.Start(ctx, etcdserver.Config{DataDir: filepath.Join(tb.TempDir(), "etcd"), ClientURL: "127.0.0.1:0", PeerURL: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.ClientEndpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}
