// Package kafkaproc runs `weir kafka`, the embedded broker, as a process of
// its own in tests, so that they can kill it -9 and restart it on the same
// data dir, as the chaos campaign's kill-broker does.
package kafkaproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/freeport"
	"github.com/weir-run/weir/internal/syncbuf"
)

// Proc is a running `weir kafka`.
type Proc struct {
	cmd *exec.Cmd
	log *syncbuf.Buffer
}

// Start runs `weir kafka --data-dir dir --addr addr` with the binary bin
// (weir, or a test binary that runs weir when env is set) and waits until
// it serves. The process is killed when the test ends.
func Start(tb testing.TB, bin string, env []string, dir, addr string) *Proc {
	tb.Helper()
	p := &Proc{log: &syncbuf.Buffer{}}
	p.cmd = exec.Command(bin, "kafka", "--data-dir", dir, "--addr", addr)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	for deadline := time.Now().Add(time.Minute); !strings.Contains(p.log.String(), "kafka ready at"); {
		if time.Now().After(deadline) {
			tb.Fatalf("weir kafka did not start: %s", p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// Kill kills the broker -9 and waits until it is gone.
func (p *Proc) Kill(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		tb.Fatal(err)
	}
	p.cmd.Wait()
}

// Log is what the broker logged so far.
func (p *Proc) Log() string { return p.log.String() }

// Addr is a free loopback address for the broker: the same one across its
// restarts, as clients keep it.
func Addr(tb testing.TB) string {
	tb.Helper()
	a, err := freeport.Addr()
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// BuildWeir builds the weir command for tests outside cmd/weir.
func BuildWeir(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "weir")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/weir-run/weir/cmd/weir").CombinedOutput(); err != nil {
		tb.Fatalf("go build weir: %v\n%s", err, out)
	}
	return bin
}
