package worker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/metric"

	"github.com/weir-run/weir/internal/pki"
)

// Config configures a worker.
type Config struct {
	// ID names the worker; default host-pid.
	ID string
	// Etcd lists the client endpoints of the etcd cluster.
	Etcd []string
	// Slots is how many subtask slots the worker offers (slot sharing: one
	// slot hosts one subtask of every vertex of a job).
	Slots int
	// DataDir holds the binary cache and job working directories.
	DataDir string
	// HTTP is where /metrics is served; empty serves nothing.
	HTTP string
	// Meter receives the worker's metrics (nil: none); Metrics serves them
	// on HTTP.
	Meter   metric.MeterProvider
	Metrics http.Handler
	// LogFormat is the job processes' log format, "text" (default) or
	// "json": use the worker's own.
	LogFormat string
	// Host is the address job processes bind their data service to, which
	// peers on other machines dial; default 127.0.0.1.
	Host string
	// TLS, when set, is how the worker proves itself to the coordinator
	// (its certificate names its id) and checks the coordinator is one.
	TLS *pki.Source
	// InsecurePlaintext (--insecure-plaintext) allows a plaintext cluster
	// beyond loopback.
	InsecurePlaintext bool
	// Memory is what the worker's job processes may use, split evenly
	// among its slots (Flink's task manager memory): a process without a
	// memory setting of its job's gets GOMEMLIMIT at 90% of its slots'
	// share, and GOGC 400 under it (jobenv.go). 0: Go's defaults. The
	// commands default it to DefaultMemory.
	Memory int64
}

// DefaultMemory is half the machine's memory: the rest is for the page
// cache that Pebble reads through, the worker and other daemons. 0 when it
// cannot be read.
func DefaultMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kib << 10 / 2
		}
	}
	return 0
}

func (c *Config) setDefaults() {
	if c.ID == "" && c.TLS != nil {
		if id, err := c.TLS.Identity(); err == nil {
			c.ID = id.Name
		}
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Etcd) == 0 {
		errs = append(errs, errors.New("worker: --etcd is required"))
	}
	if c.Slots < 1 {
		errs = append(errs, fmt.Errorf("worker: --slots must be at least 1, got %d", c.Slots))
	}
	if c.Memory < 0 {
		errs = append(errs, fmt.Errorf("worker: --memory must not be negative, got %d", c.Memory))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("worker: --data-dir is required"))
	}
	if c.HTTP != "" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			errs = append(errs, fmt.Errorf("worker: --http %q: %w", c.HTTP, err))
		}
		if err := pki.CheckListen("--http", c.HTTP, c.TLS != nil, c.InsecurePlaintext); err != nil {
			errs = append(errs, fmt.Errorf("worker: %w", err))
		}
	}
	if c.Host != "" {
		if err := pki.CheckListen("--host", c.Host, c.TLS != nil, c.InsecurePlaintext); err != nil {
			errs = append(errs, fmt.Errorf("worker: %w", err))
		}
	}
	if c.TLS != nil {
		id, err := c.TLS.Identity()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("worker: %w", err))
		case id.Role != pki.RoleWorker:
			errs = append(errs, fmt.Errorf("worker: the certificate names %s, not a worker (weir certs issue --role worker)", id))
		case c.ID != "" && c.ID != id.Name:
			errs = append(errs, fmt.Errorf("worker: --id %s, but the certificate names worker %s (drop --id: it comes from the certificate)", c.ID, id.Name))
		}
	}
	return errors.Join(errs...)
}
