package sdk

import (
	"context"
	"time"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// RunKillRestore runs the job build makes in this process with checkpoints
// every interval: each attempt is killed after kills[i] checkpoints
// completed in it and the next restores from the last completed one, until
// an attempt runs to the end. It reports how many kills happened (an attempt
// may end before its kill).
func RunKillRestore(ctx context.Context, dir string, interval time.Duration, kills []int, build func(p *Pipeline)) (killed int, err error) {
	c := newCkCluster(dir, interval, build)
	for i := 0; ; i++ {
		k := 0
		if i < len(kills) {
			k = kills[i]
		}
		finished, err := c.RunAttempt(ctx, k)
		if err != nil || finished {
			return killed, err
		}
		killed++
	}
}

// NewCkCluster is newCkCluster for the external tests: a MiniCluster
// running the job build makes, with its state under dir.
func NewCkCluster(dir string, interval time.Duration, build func(p *Pipeline)) *runtime.MiniCluster {
	return newCkCluster(dir, interval, build)
}
