package coordinator

import (
	"errors"
	"fmt"
	"net"
	"time"
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
	// HeartbeatTimeout is how long a worker may be silent before it is
	// declared dead and its tasks are failed over.
	HeartbeatTimeout time.Duration
	// HeartbeatInterval is how often workers heartbeat.
	HeartbeatInterval time.Duration
}

// Defaults for unset Config fields.
const (
	DefaultHeartbeatTimeout  = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
)

func (c *Config) setDefaults() {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
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
	if c.HTTP != "" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			errs = append(errs, fmt.Errorf("coordinator: --http %q: %w", c.HTTP, err))
		}
	}
	if c.HeartbeatTimeout <= c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("coordinator: heartbeat timeout %v must exceed the interval %v", c.HeartbeatTimeout, c.HeartbeatInterval))
	}
	return errors.Join(errs...)
}
