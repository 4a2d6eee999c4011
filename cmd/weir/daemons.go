package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-run/weir/coordinator"
	"github.com/weir-run/weir/internal/etcdserver"
	"github.com/weir-run/weir/internal/pki"
	"github.com/weir-run/weir/internal/telemetry"
	"github.com/weir-run/weir/worker"
)

// shutdownTimeout bounds how long a daemon waits for its parts to stop
// after a signal; a second Ctrl-C exits at once.
const shutdownTimeout = 20 * time.Second

// logFlags are the logging flags of every daemon.
type logFlags struct {
	level  string
	format string
}

func (f *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&f.format, "log-format", "text", "log format on stderr: text or json")
}

// logger builds the daemon's logger, writing to w (stderr).
func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, usageErrorf("--log-level must be debug, info, warn or error, got %q", f.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format must be text or json, got %q", f.format)
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func newEtcdCmd(s streams) *cobra.Command {
	var (
		lf  logFlags
		tf  tlsFlags
		cfg etcdserver.Config
	)
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Run an etcd member for a weir cluster",
		Long: `Run an etcd member, the cluster's metadata store and leader election.

A single member needs only --data-dir. For a three-member cluster, start
each member with its own --name, --client and --peer and the same
--initial-cluster, e.g.

  weir etcd --name a --data-dir /var/lib/weir/etcd --client 10.0.0.1:2379 --peer 10.0.0.1:2380 \
    --initial-cluster a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380`,
		Args: exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			logger, err := lf.logger(s.stderr)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			if tf.ca != "" || tf.cert != "" || tf.key != "" {
				cfg.TLS = &pki.Files{CA: tf.ca, Cert: tf.cert, Key: tf.key}
				src, err := tf.source() // the files must load and match
				if err != nil {
					return err
				}
				if id, err := src.Identity(); err != nil || id.Role != pki.RoleEtcd {
					return usageErrorf("--tls-cert must name an etcd member (weir certs issue --role etcd), not %v", id)
				}
			}
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			return runEtcd(cmd.Context(), s, cfg, logger)
		}),
	}
	lf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&cfg.DataDir, "data-dir", "", "directory for the member's data (required)")
	fl.StringVar(&cfg.Name, "name", etcdserver.DefaultName, "member name, unique in the cluster")
	fl.StringVar(&cfg.ClientURL, "client", "127.0.0.1:2379", "client address host:port (port 0 picks a free port)")
	fl.StringVar(&cfg.PeerURL, "peer", "", "peer address host:port (default: this member's entry in --initial-cluster, else 127.0.0.1:2380)")
	fl.StringVar(&cfg.InitialCluster, "initial-cluster", "", "all members as name=http://host:port,... (default: this member alone)")
	fl.StringVar(&cfg.ClusterState, "initial-cluster-state", etcdserver.ClusterStateNew, "new to bootstrap a cluster, existing to join one")
	tf.register(fl, s)
	fl.BoolVar(&cfg.InsecurePlaintext, "insecure-plaintext", false, insecureUsage)
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}

func runEtcd(ctx context.Context, s streams, cfg etcdserver.Config, logger *slog.Logger) error {
	srv, err := etcdserver.Start(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer srv.Close()
	fmt.Fprintf(s.stderr, "etcd ready at %s\n", strings.Join(srv.ClientEndpoints(), ","))
	select {
	case <-ctx.Done():
		logger.Info("shutting down etcd")
		return nil
	case <-srv.Done():
		return errors.New("etcd member stopped (removed from the cluster?)")
	}
}

func newCoordinatorCmd(s streams) *cobra.Command {
	var (
		lf   logFlags
		tf   tlsFlags
		cfg  coordinator.Config
		etcd []string
	)
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator (the cluster's job manager)",
		Long: `Run a coordinator. Several may run against the same etcd; one is elected
leader and serves the job API and the web page, the others stand by.`,
		Example: `  weir coordinator --etcd 127.0.0.1:2379 --store file:///var/lib/weir/store --api 127.0.0.1:7070 --http 127.0.0.1:8080`,
		Args:    exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			logger, err := lf.logger(s.stderr)
			if err != nil {
				return err
			}
			cfg.Etcd = splitList(etcd)
			if cfg.TLS, err = tf.source(); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			return runDaemon(cmd.Context(), "coordinator", func(ctx context.Context) error {
				tel, err := telemetry.New(ctx, "weir-coordinator", s.getenv)
				if err != nil {
					return err
				}
				defer tel.Shutdown(context.WithoutCancel(ctx))
				cfg.Meter, cfg.Tracer, cfg.Metrics = tel.Meter, tel.Tracer, tel.Handler
				reloadOnHangup(ctx, cfg.TLS, logger)
				return coordinator.Run(ctx, cfg, logger)
			})
		}),
	}
	lf.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&etcd, "etcd", nil, "etcd client endpoints, comma-separated (required)")
	fl.StringVar(&cfg.Store, "store", "", "object store URL for binaries and checkpoints, e.g. file:///var/lib/weir/store (required)")
	fl.StringVar(&cfg.API, "api", defaultCoordinator, "job API (gRPC) listen address host:port")
	fl.StringVar(&cfg.HTTP, "http", "127.0.0.1:8080", "web page and JSON API listen address host:port")
	fl.StringSliceVar(&cfg.HTTPHosts, "http-host", nil, httpHostUsage)
	tf.register(fl, s)
	fl.BoolVar(&cfg.InsecurePlaintext, "insecure-plaintext", false, insecureUsage)
	fl.StringVar(&cfg.KEK, "kek", "none", "key-encryption key for state at rest: file:PATH (a file holding base64key://...), awskms://..., gcpkms://..., azurekeyvault://..., or none")
	fl.StringVar(&cfg.PreviousKEK, "previous-kek", "", "the KEK being rotated away from, as --kek: what it encrypted still opens until weir keys rotate re-encrypted it by --kek")
	fl.StringVar((*string)(&cfg.DataPlaneTLS), "data-plane-tls", "auto", "job processes exchange records over TLS: auto (when the coordinator has TLS), on or off")
	fl.BoolVar(&cfg.DisableSubmit, "disable-submit", false, "refuse job uploads and submissions whatever the caller's role")
	cfg.MaxSpecBytes = coordinator.DefaultMaxSpecBytes
	fl.Var(sizeValue{&cfg.MaxSpecBytes}, "max-spec-size", "refuse job specs (graph and arguments) larger than this at submit")
	fl.Var(daysValue{&cfg.JobRetention}, "job-retention", "delete FINISHED, FAILED and CANCELED jobs, with their checkpoints (not savepoints), this long after they ended, e.g. 7d (0: keep them)")
	fl.StringVar(&cfg.ID, "id", "", "coordinator id, unique in the cluster (default HOST-PID)")
	fl.DurationVar(&cfg.WorkerTimeout, "worker-timeout", coordinator.DefaultWorkerTimeout,
		"declare a worker dead after this long without a heartbeat or a live lease in etcd; also how long a new leader waits for workers to report before restarting their jobs")
	fl.DurationVar(&cfg.WorkerTimeout, "heartbeat-timeout", coordinator.DefaultWorkerTimeout, "old name of --worker-timeout")
	_ = fl.MarkDeprecated("heartbeat-timeout", "use --worker-timeout")
	fl.DurationVar(&cfg.CheckpointGCInterval, "checkpoint-gc-interval", coordinator.DefaultCheckpointGCInterval,
		"at most this often, between checkpoints, delete a job's checkpoint files no retained checkpoint references (left by aborted checkpoints); negative: never")
	fl.DurationVar(&cfg.LeaseTTL, "lease-ttl", coordinator.DefaultLeaseTTL,
		"leader election lease: a leader that dies is replaced after about this long (etcd's minimum is 2s)")
	_ = cmd.MarkFlagRequired("etcd")
	_ = cmd.MarkFlagRequired("store")
	return cmd
}

func newWorkerCmd(s streams) *cobra.Command {
	var (
		lf   logFlags
		tf   tlsFlags
		cfg  worker.Config
		etcd []string
	)
	cmd := &cobra.Command{
		Use:     "worker",
		Short:   "Run a worker (a task manager offering slots)",
		Example: `  weir worker --etcd 127.0.0.1:2379 --slots 4 --data-dir /var/lib/weir/worker`,
		Args:    exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			logger, err := lf.logger(s.stderr)
			if err != nil {
				return err
			}
			cfg.Etcd = splitList(etcd)
			if !cmd.Flags().Changed("memory") {
				cfg.Memory = worker.DefaultMemory()
			}
			if cfg.TLS, err = tf.source(); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			cfg.LogFormat = lf.format
			return runDaemon(cmd.Context(), "worker", func(ctx context.Context) error {
				tel, err := telemetry.New(ctx, "weir-worker", s.getenv)
				if err != nil {
					return err
				}
				defer tel.Shutdown(context.WithoutCancel(ctx))
				cfg.Meter, cfg.Metrics = tel.Meter, tel.Handler
				reloadOnHangup(ctx, cfg.TLS, logger)
				return worker.Run(ctx, cfg, logger)
			})
		}),
	}
	lf.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&etcd, "etcd", nil, "etcd client endpoints, comma-separated (required)")
	fl.IntVar(&cfg.Slots, "slots", 2, "task slots this worker offers")
	fl.Var(sizeValue{&cfg.Memory}, "memory", "memory for this worker's job processes, split evenly among its slots: a job process gets GOMEMLIMIT at 90% of its slots' share and GOGC 400, unless its job sets its own (default: half the machine's memory; 0: Go's defaults)")
	fl.StringVar(&cfg.DataDir, "data-dir", "", "directory for cached binaries and local state (required)")
	fl.StringVar(&cfg.ID, "id", "", "worker id, unique in the cluster (default HOST-PID)")
	fl.StringVar(&cfg.Host, "host", "", "address this worker's job processes bind and advertise for data exchange (default 127.0.0.1)")
	fl.StringVar(&cfg.HTTP, "http", "", "serve /metrics on this address host:port (default: none)")
	tf.register(fl, s)
	fl.BoolVar(&cfg.InsecurePlaintext, "insecure-plaintext", false, insecureUsage)
	_ = cmd.MarkFlagRequired("etcd")
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}

// runDaemon runs one long-lived part until ctx is done. A part that stops
// on its own while ctx is live is an error, even if it returned nil.
func runDaemon(ctx context.Context, what string, run func(context.Context) error) error {
	err := run(ctx)
	if ctx.Err() != nil {
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: shutdown: %w", what, err)
		}
		return nil
	}
	if err == nil {
		return fmt.Errorf("%s stopped unexpectedly", what)
	}
	return err
}

// httpHostUsage documents --http-host, shared by the coordinator and weir
// local.
const httpHostUsage = "host names the web page answers to besides localhost and IP addresses, comma-separated (a request for any other name is refused: DNS rebinding protection)"

// insecureUsage documents --insecure-plaintext, shared by the daemons.
const insecureUsage = "serve and dial without TLS on addresses beyond loopback: anyone who reaches the ports controls the cluster (the daemon warns at start)"
