package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/coordinator/leader"
	"github.com/weir-run/weir/internal/authz"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/pki"
	"github.com/weir-run/weir/internal/sealing"
	"github.com/weir-run/weir/internal/tokens"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// maxMessage bounds gRPC messages (job graphs and binary chunks are small;
// this is headroom, not a target).
const maxMessage = 64 << 20

// Coordinator is one coordinator process: always serving the API, leading
// when elected.
type Coordinator struct {
	cfg    Config
	logger *slog.Logger
	etcd   *clientv3.Client
	store  *objstore.Store
	inst   *instruments
	// auth admits callers of the API, the cluster service and the page,
	// by certificate or by one of tokens.
	auth   authz.Authenticator
	tokens *tokens.Store
	// dataTLS: job processes exchange records over TLS (Config.DataPlaneTLS).
	dataTLS bool
	// kek wraps the jobs' data keys; nil: state at rest is not encrypted.
	kek *sealing.KEK

	mu struct {
		sync.Mutex
		lead *leaderState    // nil while standing by
		el   *leader.Elector // the current candidacy; nil between candidacies
	}
}

// etcdProbeInterval is how often a coordinator checks that etcd answers, to
// log an outage (see etcdkeys.LogReachability).
const etcdProbeInterval = 5 * time.Second

// listen is l if the caller bound it, else a listener on addr.
func listen(l net.Listener, flag, addr string) (net.Listener, error) {
	if l != nil {
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("coordinator: listen on %s %s: %w", flag, addr, err)
	}
	return l, nil
}

// Run runs a coordinator until ctx is done.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	logger = logger.With("coordinator", cfg.ID)
	// Both ports first: a wrong or taken one fails at once, and the status
	// page's port is not left free while the rest starts.
	lis, err := listen(cfg.APIListener, "--api", cfg.API)
	if err != nil {
		return err
	}
	defer lis.Close()
	var hl net.Listener
	if cfg.HTTP != "" {
		if hl, err = listen(cfg.HTTPListener, "--http", cfg.HTTP); err != nil {
			return err
		}
		defer hl.Close()
	}
	cli, err := clientv3.New(etcdkeys.ClientConfig(cfg.Etcd, cfg.TLS))
	if err != nil {
		return fmt.Errorf("coordinator: etcd: %w", err)
	}
	defer cli.Close()
	store, err := objstore.Open(ctx, cfg.Store)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer store.Close()
	kek, err := sealing.OpenKEK(ctx, cfg.KEK)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer kek.Close()
	if cfg.PreviousKEK != "" {
		prev, err := sealing.OpenKEK(ctx, cfg.PreviousKEK)
		if err != nil {
			return fmt.Errorf("coordinator: --previous-kek: %w", err)
		}
		if kek == nil {
			prev.Close()
			return errors.New("coordinator: --previous-kek is for a rotation to --kek, which is none")
		}
		kek.WithPrevious(prev)
	}
	if kek == nil {
		logger.Warn("state at rest is not encrypted (--kek none): checkpoints and savepoints are plaintext in the store")
	}
	c := &Coordinator{cfg: cfg, logger: logger, etcd: cli, store: store, kek: kek}
	c.dataTLS, _ = cfg.DataPlaneTLS.on(cfg.TLS != nil) // Validate checked it
	if cfg.TLS != nil && !c.dataTLS {
		logger.Warn("INSECURE: job processes exchange records in plaintext (--data-plane-tls off): anyone on the network path reads them")
	}
	if c.inst, err = newInstruments(c, cfg.Meter, cfg.Tracer); err != nil {
		return err
	}
	c.tokens = tokens.NewStore(cli)
	c.auth = authz.Authenticator{Open: cfg.TLS == nil, Tokens: c.tokens}
	policy := authz.Policy{DisableSubmit: cfg.DisableSubmit}
	// One stream per worker, per tail and per call: 1024 per connection is
	// far above need and bounds what one caller can hold open.
	srvOpts := append(c.auth.ServerOptions(policy), grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
		grpc.MaxConcurrentStreams(1024))
	if cfg.TLS != nil {
		srvOpts = append(srvOpts, grpc.Creds(credentials.NewTLS(cfg.TLS.ServerConfig(pki.OptionalClientCert))))
	} else if c.insecure() {
		logger.Warn("INSECURE: serving plaintext beyond loopback (--insecure-plaintext): anyone who reaches this port controls the cluster", "api", lis.Addr().String())
	}
	srv := grpc.NewServer(srvOpts...)
	weirv1.RegisterJobServiceServer(srv, &jobService{c: c})
	weirv1.RegisterClusterServiceServer(srv, &clusterService{c: c})
	go srv.Serve(lis)
	defer srv.Stop()

	go c.announceLoop(ctx)
	probed := make(chan struct{})
	defer func() { <-probed }()
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel() // before the wait above: defers run last first
	go func() {
		defer close(probed)
		etcdkeys.LogReachability(pctx, c.etcd, etcdProbeInterval, logger)
	}()
	httpAddr := ""
	if hl != nil {
		hs := &http.Server{Handler: c.auth.HTTP(policy, routeRight, c.httpHandler()), ReadHeaderTimeout: 10 * time.Second}
		if cfg.TLS != nil {
			hs.TLSConfig = cfg.TLS.ServerConfig(pki.OptionalClientCert)
			go hs.ServeTLS(hl, "", "")
		} else {
			go hs.Serve(hl)
		}
		defer hs.Close()
		httpAddr = hl.Addr().String() // the port picked for :0
	}
	logger.Info("coordinator serving", "api", lis.Addr().String(), "http", httpAddr)

	for ctx.Err() == nil {
		if err := c.campaignAndLead(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("leadership ended", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// campaignAndLead waits to be elected, then leads until leadership is lost.
func (c *Coordinator) campaignAndLead(ctx context.Context) error {
	el, err := leader.NewElector(c.etcd, etcdkeys.Election, c.cfg.ID, c.cfg.API, c.cfg.LeaseTTL, c.logger)
	if err != nil {
		return err
	}
	defer el.Close()
	c.mu.Lock()
	c.mu.el = el
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.mu.el = nil
		c.mu.Unlock()
	}()
	if err := el.Campaign(ctx); err != nil {
		return err
	}
	c.logger.Info("elected leader", "revision", el.Rev())
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-el.Leading():
			cancel(errors.New("leadership lost"))
		case <-lctx.Done():
		}
	}()
	st := newLeaderState(c, el.Store())
	if err := st.load(lctx); err != nil {
		return fmt.Errorf("load jobs: %w", err)
	}
	c.mu.Lock()
	c.mu.lead = st
	c.mu.Unlock()
	st.run(lctx)
	c.mu.Lock()
	c.mu.lead = nil
	c.mu.Unlock()
	if ctx.Err() == nil {
		// Let a standby take over promptly rather than at session expiry.
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		el.Resign(rctx)
		rcancel()
	}
	return context.Cause(lctx)
}

// loadWait bounds how long a call waits for a just-elected coordinator to
// finish loading the cluster's state, rather than fail a CLI through the
// few milliseconds between election and serving.
const loadWait = 3 * time.Second

// leading returns the leader state, or a gRPC error naming the leader.
func (c *Coordinator) leading(ctx context.Context) (*leaderState, error) {
	qctx, cancel := context.WithTimeout(ctx, loadWait)
	defer cancel()
	for {
		c.mu.Lock()
		st := c.mu.lead
		c.mu.Unlock()
		if st != nil {
			return st, nil
		}
		addr, err := etcdkeys.CurrentLeader(qctx, c.etcd, etcdkeys.Election)
		if err != nil || addr == "" {
			return nil, status.Error(codes.Unavailable, "no coordinator leads yet; retry shortly")
		}
		if addr != c.cfg.API {
			return nil, status.Errorf(codes.Unavailable, "this coordinator is a standby; the leader is at %s", addr)
		}
		// Elected, still loading: pointing the caller at ourselves would
		// send it in a circle.
		select {
		case <-qctx.Done():
			return nil, status.Error(codes.Unavailable, "this coordinator was just elected and is still loading; retry shortly")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// insecure reports whether the coordinator serves plaintext beyond
// loopback, which the page and the log say loudly.
func (c *Coordinator) insecure() bool {
	return c.cfg.TLS == nil && (!pki.IsLoopback(c.cfg.API) || (c.cfg.HTTP != "" && !pki.IsLoopback(c.cfg.HTTP)))
}

// principalName names the caller in logs of what it changed.
func principalName(ctx context.Context) string {
	if p, ok := authz.PrincipalFrom(ctx); ok {
		return p.String()
	}
	return "unknown"
}
