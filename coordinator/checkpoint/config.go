package checkpoint

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for the Config fields left zero.
const (
	DefaultTimeout       = 10 * time.Minute
	DefaultMaxConcurrent = 1
	DefaultRetained      = 3
)

// Config is how one job checkpoints. Zero fields take the defaults above;
// Interval 0 disables periodic checkpoints.
type Config struct {
	// Interval between periodic triggers; 0 disables them (savepoints still
	// work).
	Interval time.Duration
	// Timeout after which a pending checkpoint is aborted (DefaultTimeout if
	// 0).
	Timeout time.Duration
	// MinPause is the least time between the end (completion or abort) of
	// one checkpoint and the next periodic trigger. As in Flink, a MinPause
	// above 0 also means at most one periodic checkpoint is pending.
	MinPause time.Duration
	// MaxConcurrent bounds the periodic checkpoints pending at once
	// (DefaultMaxConcurrent if 0).
	MaxConcurrent int
	// Retained is how many completed periodic checkpoints are kept
	// (DefaultRetained if 0). Savepoints are never dropped by retention.
	Retained int
}

// Validate reports fields that are out of range. New does not call it: it
// reads negative values as zero so that the machine always works.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"interval", c.Interval}, {"timeout", c.Timeout}, {"min pause", c.MinPause}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("checkpoint: %s %v is negative", f.name, f.v))
		}
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("checkpoint: max concurrent %d is negative", c.MaxConcurrent))
	}
	if c.Retained < 0 {
		errs = append(errs, fmt.Errorf("checkpoint: retained %d is negative", c.Retained))
	}
	return errors.Join(errs...)
}

// WithDefaults is the config the machine runs with: zero fields filled,
// negative ones read as zero.
func (c Config) WithDefaults() Config { return c.withDefaults() }

// withDefaults fills zero fields and reads negative ones as zero.
func (c Config) withDefaults() Config {
	c.Interval = max(c.Interval, 0)
	c.MinPause = max(c.MinPause, 0)
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.Retained <= 0 {
		c.Retained = DefaultRetained
	}
	return c
}
