//go:build !linux

package cluster

import (
	"errors"
	"runtime"
)

// usableCPUs lists the CPUs this process may run on: only Linux says
// (sched_getaffinity), and only Linux has taskset.
func usableCPUs() ([]int, error) {
	return nil, errors.New("pinning workers to CPUs needs Linux, not " + runtime.GOOS)
}
