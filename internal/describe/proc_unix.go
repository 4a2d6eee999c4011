//go:build unix && !linux

package describe

import (
	"os/exec"
	"syscall"
)

// setProcAttr runs cmd in its own process group, killed whole on
// cancellation. There is no network sandbox off Linux.
func setProcAttr(cmd *exec.Cmd, _ bool) bool {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return false
}

func sandboxRefused(error) bool { return false }
