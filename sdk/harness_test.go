package sdk

import (
	"time"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// newCkCluster runs the pipeline build makes in a runtime.MiniCluster whose
// state lives under dir, checkpointing every interval.
func newCkCluster(dir string, interval time.Duration, build func(p *Pipeline)) *runtime.MiniCluster {
	return &runtime.MiniCluster{Dir: dir, Interval: interval, Logger: testLogger(),
		Build: func(parallelism int) (*runtime.Graph, error) {
			p := NewPipeline("ckjob", parallelism)
			build(p)
			return p.compile()
		}}
}
