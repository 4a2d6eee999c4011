package s3test

import (
	"os/exec"
	"syscall"
)

// setPdeathsig has the kernel kill the gateway if the test binary dies
// without running its cleanups (a panic, a timeout, a signal).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
