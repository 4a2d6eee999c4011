//go:build linux

package describe

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr runs cmd in its own process group, killed whole on
// cancellation, and with sandbox in new user and network namespaces: the
// process keeps its user (mapped to itself), but sees no network interface
// but a loopback that is down. It reports whether the namespaces are asked
// for.
func setProcAttr(cmd *exec.Cmd, sandbox bool) bool {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if sandbox {
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return sandbox
}

// sandboxRefused reports whether a start failed because the kernel does not
// let this user make the namespaces (user namespaces disabled, or a seccomp
// profile, as Docker's default, refusing them).
func sandboxRefused(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOSYS)
}
