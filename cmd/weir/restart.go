package main

import (
	"time"

	"github.com/spf13/pflag"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// restartFlags are `weir run`'s restart strategy flags.
type restartFlags struct {
	strategy   string
	delay      time.Duration
	maxDelay   time.Duration
	multiplier float64
	jitter     float64
	resetAfter time.Duration
	interval   time.Duration
	changed    func(name string) bool
}

var restartStrategies = map[string]weirv1.RestartStrategy{
	"none":              weirv1.RestartStrategy_RESTART_STRATEGY_NONE,
	"fixed-delay":       weirv1.RestartStrategy_RESTART_STRATEGY_FIXED_DELAY,
	"exponential-delay": weirv1.RestartStrategy_RESTART_STRATEGY_EXPONENTIAL_DELAY,
	"failure-rate":      weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE,
}

func (f *restartFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.strategy, "restart-strategy", "", "none, fixed-delay, exponential-delay or failure-rate (default: the coordinator's, exponential-delay 1s..30s, 10 restarts)")
	fl.DurationVar(&f.delay, "restart-delay", time.Second, "delay before a restart (fixed-delay, failure-rate), the first delay (exponential-delay)")
	fl.DurationVar(&f.maxDelay, "restart-max-delay", 30*time.Second, "exponential-delay: the longest delay")
	fl.Float64Var(&f.multiplier, "restart-multiplier", 2, "exponential-delay: growth of the delay per restart")
	fl.Float64Var(&f.jitter, "restart-jitter", 0.1, "exponential-delay: each delay is scaled by a random factor in [1-j, 1+j]")
	fl.DurationVar(&f.resetAfter, "restart-reset-after", time.Hour, "exponential-delay: a failure this long after the previous one resets the delay and the count (0: never)")
	fl.DurationVar(&f.interval, "failure-rate-interval", time.Minute, "failure-rate: the window in which at most --max-restarts failures are tolerated")
}

// policy builds the job's restart policy. Without any restart flag the spec
// carries none and the coordinator's default applies; --max-restarts alone
// caps the default strategy.
func (f *restartFlags) policy(maxRestarts int, restartsSet bool) (*weirv1.RestartPolicy, error) {
	if f.strategy == "" {
		for _, n := range []string{"restart-delay", "restart-max-delay", "restart-multiplier", "restart-jitter", "restart-reset-after", "failure-rate-interval"} {
			if f.changed != nil && f.changed(n) {
				return nil, usageErrorf("--%s needs --restart-strategy", n)
			}
		}
		if !restartsSet {
			return nil, nil
		}
		// Only the cap: zero backoff fields take the coordinator's defaults.
		return &weirv1.RestartPolicy{MaxRestarts: int32(maxRestarts)}, nil
	}
	st, ok := restartStrategies[f.strategy]
	if !ok {
		return nil, usageErrorf("--restart-strategy must be none, fixed-delay, exponential-delay or failure-rate, got %q", f.strategy)
	}
	switch {
	case f.delay <= 0:
		return nil, usageErrorf("--restart-delay must be positive, got %v", f.delay)
	case f.maxDelay < f.delay:
		return nil, usageErrorf("--restart-max-delay %v is below --restart-delay %v", f.maxDelay, f.delay)
	case f.multiplier < 1:
		return nil, usageErrorf("--restart-multiplier must be at least 1, got %v", f.multiplier)
	case f.jitter < 0 || f.jitter > 1:
		return nil, usageErrorf("--restart-jitter must be within [0, 1], got %v", f.jitter)
	case f.resetAfter < 0:
		return nil, usageErrorf("--restart-reset-after must not be negative, got %v", f.resetAfter)
	case f.interval <= 0:
		return nil, usageErrorf("--failure-rate-interval must be positive, got %v", f.interval)
	}
	if !restartsSet {
		maxRestarts = 10
		if st == weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE {
			maxRestarts = 3
		}
	}
	p := &weirv1.RestartPolicy{Strategy: st, MaxRestarts: int32(maxRestarts)}
	switch st {
	case weirv1.RestartStrategy_RESTART_STRATEGY_FIXED_DELAY:
		p.DelayMs = f.delay.Milliseconds()
	case weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE:
		p.DelayMs, p.FailureIntervalMs = f.delay.Milliseconds(), f.interval.Milliseconds()
	case weirv1.RestartStrategy_RESTART_STRATEGY_EXPONENTIAL_DELAY:
		p.InitialBackoffMs, p.MaxBackoffMs, p.Multiplier = f.delay.Milliseconds(), f.maxDelay.Milliseconds(), f.multiplier
		p.Jitter, p.ResetThresholdMs = f.jitter, f.resetAfter.Milliseconds()
		if f.resetAfter == 0 {
			p.ResetThresholdMs = -1 // never; 0 is the default
		}
	}
	return p, nil
}
