package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/weir-run/weir/internal/freeport"
)

// Daemon is one long-running process.
type Daemon struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
}

// Done is closed once the process has exited and been waited for.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Alive reports whether the process has not exited.
func (d *Daemon) Alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Pid is the process id.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Kill sends SIGKILL, as a machine failure would, and waits for the exit.
func (d *Daemon) Kill() {
	d.Cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// Stop sends SIGTERM and waits up to grace before SIGKILL.
func (d *Daemon) Stop(grace time.Duration) {
	d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(grace):
		d.Kill()
	}
}

// Start runs bin with args, its output appended to dir/name.log and env
// added to this process's environment.
func Start(dir, name string, env []string, bin string, args ...string) (*Daemon, error) {
	return StartEnv(dir, name, append(os.Environ(), env...), bin, args...)
}

// StartEnv is Start with env as the whole environment.
func StartEnv(dir, name string, env []string, bin string, args ...string) (*Daemon, error) {
	return StartAttr(dir, name, env, nil, bin, args...)
}

// StartAttr is StartEnv with the process's attributes (nil: none), such
// as the group it runs as.
func StartAttr(dir, name string, env []string, attr *syscall.SysProcAttr, bin string, args ...string) (*Daemon, error) {
	log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = env
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &Daemon{Name: name, Cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(d.done) }()
	return d, nil
}

// FreeAddrs returns n loopback addresses whose ports were free a moment
// ago, none handed out before in this process (freeport).
func FreeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		a, err := freeport.Addr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	return addrs, nil
}
