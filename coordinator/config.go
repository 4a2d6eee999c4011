package coordinator

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-run/weir/coordinator/leader"
	"github.com/weir-run/weir/internal/pki"
)

// Config configures a coordinator.
type Config struct {
	// ID names the coordinator in the election; default host-pid.
	ID string
	// Etcd lists the client endpoints of the etcd cluster.
	Etcd []string
	// Store is the object store URL for job binaries (file:///abs/dir, s3://...).
	Store string
	// API is the gRPC listen address; it is also what the coordinator
	// publishes as its address when it leads, so it must be reachable.
	API string
	// HTTP is the status page listen address; empty disables it.
	HTTP string
	// APIListener and HTTPListener, when set, are already bound at API and
	// HTTP, and Run serves on them (and closes them): weir local binds its
	// ports before it starts anything else that binds ports, so that
	// nothing of its own can take them in between.
	APIListener, HTTPListener net.Listener
	// TLS, when set, serves the job API, the cluster service and the page
	// over TLS and admits only authenticated callers: a client certificate
	// from the cluster CA, or a bearer token (internal/tokens). Nil serves
	// plaintext and admits everyone as the anonymous admin, which Validate
	// allows on loopback only, unless InsecurePlaintext.
	TLS *pki.Source
	// InsecurePlaintext (--insecure-plaintext) allows plaintext beyond
	// loopback: anyone who reaches the ports controls the cluster.
	InsecurePlaintext bool
	// DataPlaneTLS (--data-plane-tls) says whether job processes exchange
	// records over TLS: DataPlaneAuto (the default) does when the
	// coordinator itself runs TLS.
	DataPlaneTLS DataPlaneTLS
	// KEK (--kek) names the cluster's key-encryption key (see
	// sealing.OpenKEK): "none" or empty leaves state at rest unencrypted.
	KEK string
	// PreviousKEK (--previous-kek) is the KEK being rotated away from: what
	// it encrypted still opens until RotateKeys re-encrypted it all.
	PreviousKEK string
	// DisableSubmit (--disable-submit) refuses uploads and runs whatever
	// the caller's role.
	DisableSubmit bool
	// HTTPHosts are the host names, besides localhost and IP addresses, the
	// page answers to; a request naming another host is refused (DNS
	// rebinding). See web.Guard.
	HTTPHosts []string
	// WorkerTimeout (--worker-timeout) is the time to declare a worker
	// dead: how long it may be silent on its stream, and the TTL of its
	// liveness lease in etcd, before its tasks are failed over. A worker killed outright is noticed
	// sooner, when its stream breaks. A new leader also waits at most this
	// long for the workers of running jobs to report before it restarts
	// the jobs instead of re-attaching to them.
	WorkerTimeout time.Duration
	// MaxSpecBytes (--max-spec-size) caps a submitted job spec's encoded
	// size; default DefaultMaxSpecBytes. A job's record, its spec
	// included, must fit in one etcd request.
	MaxSpecBytes int64
	// JobRetention (--job-retention) deletes FINISHED, FAILED and CANCELED
	// jobs this long after their last change, with their checkpoints (not
	// their savepoints); 0, the default, keeps them.
	JobRetention time.Duration
	// CheckpointGCInterval (--checkpoint-gc-interval) is how often at most
	// a job's checkpoint files are listed to delete those no retained
	// checkpoint references (gc.go); 0 is DefaultCheckpointGCInterval,
	// negative turns it off.
	CheckpointGCInterval time.Duration
	// HeartbeatInterval is how often workers heartbeat.
	HeartbeatInterval time.Duration
	// LeaseTTL is the TTL of the leader's election session: a leader that
	// dies without resigning is replaced about this long later. etcd
	// rounds it up to whole seconds and to its minimum (2 s with etcd's
	// default election timeout).
	LeaseTTL time.Duration

	// Meter and Tracer receive the coordinator's metrics and traces; nil
	// means none. Metrics serves Meter's metrics at /metrics, when set.
	Meter   metric.MeterProvider
	Tracer  trace.TracerProvider
	Metrics http.Handler
}

// Defaults for unset Config fields. The worker timeout is 5 s, not Flink's
// 50 s: a killed worker is found by its broken stream anyway, and a silent
// one (a partition, a frozen host) should cost seconds of recovery, not
// minutes; 5 heartbeats of slack keep GC pauses and a busy host from
// flapping.
const (
	DefaultWorkerTimeout     = 5 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultLeaseTTL          = leader.DefaultTTL
	// DefaultMaxSpecBytes stays below etcd's default request limit
	// (1.5 MiB), which the job record holding the spec must fit in.
	DefaultMaxSpecBytes = 1 << 20
)

func (c *Config) setDefaults() {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.WorkerTimeout == 0 {
		c.WorkerTimeout = DefaultWorkerTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.MaxSpecBytes == 0 {
		c.MaxSpecBytes = DefaultMaxSpecBytes
	}
	if c.CheckpointGCInterval == 0 {
		c.CheckpointGCInterval = DefaultCheckpointGCInterval
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if len(c.Etcd) == 0 {
		errs = append(errs, errors.New("coordinator: --etcd is required"))
	}
	if c.Store == "" {
		errs = append(errs, errors.New("coordinator: --store is required"))
	}
	if _, _, err := net.SplitHostPort(c.API); err != nil {
		errs = append(errs, fmt.Errorf("coordinator: --api %q: %w", c.API, err))
	}
	if err := pki.CheckListen("--api", c.API, c.TLS != nil, c.InsecurePlaintext); err != nil {
		errs = append(errs, fmt.Errorf("coordinator: %w", err))
	}
	if c.HTTP != "" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			errs = append(errs, fmt.Errorf("coordinator: --http %q: %w", c.HTTP, err))
		}
		if err := pki.CheckListen("--http", c.HTTP, c.TLS != nil, c.InsecurePlaintext); err != nil {
			errs = append(errs, fmt.Errorf("coordinator: %w", err))
		}
	}
	if c.TLS != nil && !c.TLS.HasCert() {
		errs = append(errs, errors.New("coordinator: TLS needs the coordinator's certificate and key (--tls-cert, --tls-key)"))
	}
	if _, err := c.DataPlaneTLS.on(false); err != nil {
		errs = append(errs, fmt.Errorf("coordinator: %w", err))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("coordinator: lease TTL %v is below etcd's granularity of 1s", c.LeaseTTL))
	}
	if c.MaxSpecBytes < 0 {
		errs = append(errs, fmt.Errorf("coordinator: --max-spec-size must be positive, got %d", c.MaxSpecBytes))
	}
	if c.JobRetention < 0 {
		errs = append(errs, fmt.Errorf("coordinator: --job-retention must not be negative, got %v", c.JobRetention))
	}
	if c.WorkerTimeout <= c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("coordinator: worker timeout %v must exceed the heartbeat interval %v", c.WorkerTimeout, c.HeartbeatInterval))
	}
	return errors.Join(errs...)
}

// DataPlaneTLS is how job processes exchange records: over TLS, each
// process serving with a fresh key of its own that its peers pin (see
// exchange.Identity), or in plaintext.
type DataPlaneTLS string

const (
	// DataPlaneAuto runs the data plane over TLS when the coordinator has
	// TLS: a secured cluster is secured everywhere.
	DataPlaneAuto DataPlaneTLS = ""
	DataPlaneOn   DataPlaneTLS = "on"
	DataPlaneOff  DataPlaneTLS = "off"
)

// on resolves the mode for a coordinator with or without TLS.
func (m DataPlaneTLS) on(coordinatorTLS bool) (bool, error) {
	switch m {
	case DataPlaneAuto, "auto":
		return coordinatorTLS, nil
	case DataPlaneOn:
		return true, nil
	case DataPlaneOff:
		return false, nil
	}
	return false, fmt.Errorf("--data-plane-tls %q: want auto, on or off", string(m))
}
