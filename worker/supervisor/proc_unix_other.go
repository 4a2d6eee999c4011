//go:build unix && !linux

package supervisor

import (
	"errors"
	"os"
	"syscall"
)

// Without Pdeathsig (Linux only), a job process here outlives a worker that
// is killed with SIGKILL; a worker that shuts down cleanly stops its jobs.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitExitedNoReap is not available: the syscall package offers no waitid
// here. The job's process group is then not swept after the job exits, and
// is signalled only by Stop.
func waitExitedNoReap(int) bool { return false }

func intoCgroup(*syscall.SysProcAttr, *os.File) error {
	return errors.New("supervisor: cgroups need Linux")
}
