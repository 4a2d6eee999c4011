//go:build linux

package supervisor

import (
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		// Its own process group, so that signalling the group reaches
		// everything the job spawned.
		Setpgid: true,
		// If the worker dies, even by SIGKILL, the job dies with it instead
		// of running on unsupervised. Go's fork code also covers a worker
		// that dies between fork and this setting taking effect.
		Pdeathsig: syscall.SIGKILL,
	}
}

// waitExitedNoReap blocks until pid has exited and reports true, leaving it
// unreaped (a zombie) for exec.Cmd.Wait. This is what os itself does before
// reaping (os.Process.blockUntilWaitable).
func waitExitedNoReap(pid int) bool {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t; not read
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		runtime.KeepAlive(&info)
		if errno == syscall.EINTR {
			continue
		}
		return errno == 0
	}
}

// intoCgroup makes the process start in the cgroup dir.
func intoCgroup(a *syscall.SysProcAttr, dir *os.File) error {
	a.UseCgroupFD, a.CgroupFD = true, int(dir.Fd())
	return nil
}
