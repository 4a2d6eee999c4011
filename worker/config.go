package worker

import (
	"errors"
	"fmt"
	"os"
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
	// Host is the address job processes bind their data service to, which
	// peers on other machines dial; default 127.0.0.1.
	Host string
}

func (c *Config) setDefaults() {
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
	if c.DataDir == "" {
		errs = append(errs, errors.New("worker: --data-dir is required"))
	}
	return errors.Join(errs...)
}
