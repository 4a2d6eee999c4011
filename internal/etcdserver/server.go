package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/weir-run/weir/internal/freeport"
	"github.com/weir-run/weir/internal/pki"
)

// ErrStartTimeout is returned by Start when the member did not become ready
// in time, most often because too few members of a new cluster are up to
// form a quorum. It is retryable.
var ErrStartTimeout = errors.New("etcdserver: member not ready in time")

// startTimeout bounds Start when the caller's context has no earlier
// deadline. Every member of a new cluster blocks until a quorum has started,
// so this is how long an operator has to bring up the others.
const startTimeout = 30 * time.Second

// pickAttempts bounds retries when a port we picked for a port 0 was taken
// by someone else between our probe and etcd's bind.
const pickAttempts = 3

// Server is a running etcd member.
type Server struct {
	etcd      *embed.Etcd
	endpoints []string
	stopping  *atomic.Bool // demotes etcd's shutdown logs, see newZapLogger
	closeOnce sync.Once
}

// Start starts the member described by cfg and returns once it is ready to
// serve clients, i.e. it has joined a cluster with a quorum and published
// itself. It fails with an error wrapping ErrInvalidConfig, ErrStartTimeout,
// ctx's error, or etcd's own (a port in use wraps syscall.EADDRINUSE).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcdserver: start member %q: %w", r.name, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	minLevel := slog.LevelError
	if cfg.LogLevel != nil {
		minLevel = cfg.LogLevel.Level()
	}
	stopping := new(atomic.Bool)
	zl := newZapLogger(logger.With("component", "etcd", "member", r.name).Handler(), minLevel, stopping)

	for attempt := 1; ; attempt++ {
		rr, picked, err := r.pickPorts()
		if err != nil {
			return nil, fmt.Errorf("etcdserver: start member %q: %w", r.name, err)
		}
		ec := rr.embedConfig()
		ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)
		e, err := embed.StartEtcd(ec)
		if err != nil {
			if picked && attempt < pickAttempts && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("etcdserver: start member %q: %w (is another etcd or weir using client %s or peer %s?)",
					r.name, err, rr.clientListen.Host, rr.peerListen.Host)
			}
			return nil, fmt.Errorf("etcdserver: start member %q: %w", r.name, err)
		}
		if err := waitReady(ctx, e); err != nil {
			stopping.Store(true)
			// embed's Close waits for its client servers, which wait for
			// the member to be ready or stopping: stop it first or Close
			// blocks forever.
			e.Server.HardStop()
			e.Close()
			return nil, fmt.Errorf("etcdserver: start member %q: %w", r.name, err)
		}
		return &Server{etcd: e, endpoints: []string{rr.clientAdvertise.String()}, stopping: stopping}, nil
	}
}

func waitReady(ctx context.Context, e *embed.Etcd) error {
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("serving: %w", err)
	case <-e.Server.StopNotify():
		return errors.New("member stopped before it was ready")
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%w after %v (are a quorum of the initial cluster's members up?)", ErrStartTimeout, startTimeout)
	}
}

// ClientEndpoints returns the URLs clients dial, with real ports where the
// Config asked for port 0. The caller owns the returned slice.
func (s *Server) ClientEndpoints() []string {
	return slices.Clone(s.endpoints)
}

// Done is closed when the member stops, through Close or on its own (for
// example after being removed from the cluster), so that `weir etcd` can
// exit rather than linger as a process that serves nothing.
func (s *Server) Done() <-chan struct{} {
	return s.etcd.Server.StopNotify()
}

// Close stops the member, waiting for in-flight requests up to etcd's
// request timeout. A leader first hands leadership to another member. It is
// idempotent and returns nil: embed reports no shutdown errors, the error
// is there so Server is an io.Closer.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopping.Store(true)
		s.etcd.Close()
	})
	return nil
}

// pickPorts replaces port 0 by a free port. etcd must know its real
// URLs before it binds, because it advertises them to clients and peers and
// its gRPC gateway dials its own listen address; so we probe for a free port
// and release it, and Start retries if someone takes it in between.
func (r resolved) pickPorts() (resolved, bool, error) {
	picked := false
	if r.clientListen.Port() == "0" {
		p, err := freePort(r.clientListen.Hostname())
		if err != nil {
			return r, false, err
		}
		r.clientListen, r.clientAdvertise = withPort(r.clientListen, p), withPort(r.clientAdvertise, p)
		picked = true
	}
	if r.peerListen.Port() == "0" {
		p, err := freePort(r.peerListen.Hostname())
		if err != nil {
			return r, false, err
		}
		r.peerListen, r.peerAdvertise = withPort(r.peerListen, p), withPort(r.peerAdvertise, p)
		picked = true
	}
	if r.initialCluster == "" {
		r.initialCluster = r.name + "=" + r.peerAdvertise.String()
	}
	return r, picked, nil
}

func freePort(host string) (string, error) {
	p, err := freeport.Port(host)
	return strconv.Itoa(p), err
}

func withPort(u url.URL, p string) url.URL {
	u.Host = net.JoinHostPort(u.Hostname(), p)
	return u
}

func (r resolved) embedConfig() *embed.Config {
	ec := embed.NewConfig()
	ec.Name = r.name
	ec.Dir = r.dataDir
	ec.ListenClientUrls = []url.URL{r.clientListen}
	ec.AdvertiseClientUrls = []url.URL{r.clientAdvertise}
	ec.ListenPeerUrls = []url.URL{r.peerListen}
	ec.AdvertisePeerUrls = []url.URL{r.peerAdvertise}
	ec.InitialCluster = r.initialCluster
	ec.ClusterState = r.state
	// Every member of one weir cluster must agree on the token; a fixed one
	// is enough because members also check each other's cluster IDs.
	ec.InitialClusterToken = "weir"
	// Metadata is small but rewritten constantly (checkpoint ids, job
	// status, election keys); without compaction the history grows until
	// the backend quota turns the cluster read-only.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "1h"
	if r.tls != nil {
		// etcd reads the files at each handshake, so rotated certificates
		// take effect without a restart.
		ec.ClientTLSInfo.CertFile, ec.ClientTLSInfo.KeyFile, ec.ClientTLSInfo.TrustedCAFile = r.tls.Cert, r.tls.Key, r.tls.CA
		ec.ClientTLSInfo.ClientCertAuth, ec.ClientTLSInfo.AllowedHostnames = true, pki.DaemonNames()
		ec.PeerTLSInfo.CertFile, ec.PeerTLSInfo.KeyFile, ec.PeerTLSInfo.TrustedCAFile = r.tls.Cert, r.tls.Key, r.tls.CA
		ec.PeerTLSInfo.ClientCertAuth, ec.PeerTLSInfo.AllowedHostnames = true, []string{pki.DaemonName(pki.RoleEtcd)}
	}
	return ec
}
