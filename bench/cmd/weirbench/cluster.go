package main

import (
	"fmt"
	"time"

	"github.com/weir-run/weir/bench/cluster"
)

// The harness's cluster is bench/cluster's: one etcd, one coordinator and
// workers, each its own process.
type (
	jobStatus  = cluster.JobStatus
	checkpoint = cluster.Checkpoint
)

// runFlags are the `weir run` flags of a bench job: exactly-once
// checkpoints every checkpointEvery, and GOGC gogc unless 0.
func runFlags(name string, p int, checkpointEvery time.Duration, gogc int) []string {
	fl := []string{"--name", name, "-p", fmt.Sprint(p), "--checkpoint-interval", checkpointEvery.String()}
	if gogc != 0 {
		fl = append(fl, "--gogc", fmt.Sprint(gogc))
	}
	return fl
}
