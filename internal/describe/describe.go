package describe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weir-run/weir/internal/taskenv"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// stderrTail is how much of a binary's stderr an outcome keeps.
const stderrTail = 64 << 10

// ErrInterrupted is Run's error when its context ended before the binary
// did.
var ErrInterrupted = errors.New("describe interrupted")

// Command is a describe run of a job binary.
type Command struct {
	Path string
	// Name is argv[0]; empty means Path. sdk.Main names a job after its
	// base name.
	Name        string
	Parallelism int
	Args        []string // the job's arguments
	// Env and Dir are the process's; nil and "" inherit the caller's.
	Env []string
	Dir string
	// Timeout bounds the run; MaxOutput what is kept of stdout.
	Timeout   time.Duration
	MaxOutput int
	// Sandbox runs the process without network where the platform allows
	// (on Linux: in new user and network namespaces); the outcome says
	// whether it did.
	Sandbox bool
}

// Run runs c and returns what it produced. The error is the reason the
// process did not start (an *exec.Error or *fs.PathError, unwrapped by the
// caller for its message), or ErrInterrupted when ctx ended.
func Run(ctx context.Context, c Command) (*weirv1.DescribeOutcome, error) {
	o, err := run(ctx, c, c.Sandbox)
	if err != nil && c.Sandbox && sandboxRefused(err) {
		// The kernel does not let this user make namespaces: run without.
		o, err = run(ctx, c, false)
	}
	return o, err
}

func run(ctx context.Context, c Command, sandbox bool) (*weirv1.DescribeOutcome, error) {
	dctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(dctx, c.Path, taskenv.Args("describe", c.Parallelism, c.Args)...)
	cmd.Env, cmd.Dir = c.Env, c.Dir
	if c.Name != "" {
		cmd.Args[0] = c.Name
	}
	cmd.Stdin = nil // the null device: describe must not wait for input
	stdout := &cappedBuffer{max: c.MaxOutput}
	stderr := &tailBuffer{max: stderrTail}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	isolated := setProcAttr(cmd, sandbox)
	// Whatever escaped the group and holds the output open must not make
	// us wait long beyond the kill.
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, ErrInterrupted
	}
	if cmd.ProcessState == nil { // it did not start
		return nil, runErr
	}
	o := &weirv1.DescribeOutcome{
		Stdout: stdout.Bytes(), StdoutOverflow: stdout.overflow, StderrTail: stderr.String(),
		TimeoutMs: c.Timeout.Milliseconds(), ExitCode: int32(cmd.ProcessState.ExitCode()), NetworkIsolated: isolated,
	}
	if errors.Is(dctx.Err(), context.DeadlineExceeded) {
		o.TimedOut = true
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		o.Signal = ws.Signal().String()
	}
	return o, nil
}

// Graph reads the job graph out of o, the outcome of a describe run of the
// binary display names (as the user wrote it). Every failure is one line
// naming display.
func Graph(o *weirv1.DescribeOutcome, display string) (*weirv1.JobGraph, error) {
	switch {
	case o.GetStartError() != "":
		return nil, fmt.Errorf("cannot run %s: %s", display, o.GetStartError())
	case o.GetTimedOut():
		return nil, fmt.Errorf("%s did not describe its job graph within %v", display, time.Duration(o.GetTimeoutMs())*time.Millisecond)
	case o.GetStdoutOverflow():
		return nil, fmt.Errorf("%s printed more than %d MiB in describe mode: it is not a weir job", display, len(o.GetStdout())>>20)
	}
	graphJSON, found := findGraph(o.GetStdout())
	if o.GetExitCode() != 0 || o.GetSignal() != "" {
		return nil, exitError(display, o, found)
	}
	if !found {
		return nil, fmt.Errorf("%s is not a weir job: it did not describe a job graph (is it built with sdk.Main?)", display)
	}
	if len(graphJSON) == 0 {
		return nil, fmt.Errorf("%s printed %q but no job graph after it", display, taskenv.DescribeHeader)
	}
	g := &weirv1.JobGraph{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(graphJSON, g); err != nil {
		return nil, fmt.Errorf("%s printed an invalid job graph (is it built with a different weir SDK?): %v", display, err)
	}
	if len(g.GetVertices()) == 0 {
		return nil, fmt.Errorf("%s described an empty job graph: its pipeline has no operators", display)
	}
	return g, nil
}

// exitError explains a describe run that exited unsuccessfully.
func exitError(display string, o *weirv1.DescribeOutcome, described bool) error {
	line := lastLine(o.GetStderrTail())
	if p := panicLine(o.GetStderrTail()); p != "" {
		return fmt.Errorf("%s crashed while describing its job graph: %s", display, p)
	}
	if o.GetSignal() != "" {
		return fmt.Errorf("%s was killed by %s while describing its job graph", display, o.GetSignal())
	}
	switch {
	case described && line != "":
		return fmt.Errorf("%s failed after describing its job graph: %s", display, line)
	case described:
		return fmt.Errorf("%s failed after describing its job graph (exit status %d)", display, o.GetExitCode())
	case line != "":
		return fmt.Errorf("%s rejected its arguments: %s", display, line)
	}
	return fmt.Errorf("%s exited with status %d without describing a job graph", display, o.GetExitCode())
}

// findGraph finds the describe header in out and returns the line after it.
// Lines before the header (stray prints) are ignored.
func findGraph(out []byte) ([]byte, bool) {
	lines := bytes.Split(out, []byte("\n"))
	for i, l := range lines {
		if string(bytes.TrimSpace(l)) != taskenv.DescribeHeader {
			continue
		}
		for _, next := range lines[i+1:] {
			if next = bytes.TrimSpace(next); len(next) > 0 {
				return next, true
			}
		}
		return nil, true
	}
	return nil, false
}

// lastLine is the last non-empty line of s without the "error: " prefix
// sdk.Main puts on its messages.
func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		for _, p := range []string{"error: ", "Error: ", "ERROR: "} {
			l = strings.TrimPrefix(l, p)
		}
		return l
	}
	return ""
}

// panicLine is the "panic: ..." line of a Go program's crash, if any: its
// last line would be a stack frame.
func panicLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// cappedBuffer keeps at most max bytes and notes whether more came. The
// buffer is a field, not embedded: an embedded bytes.Buffer's ReadFrom
// would let exec's io.Copy fill it past the cap.
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.overflow = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }

// tailBuffer keeps the last max bytes written (roughly: it trims in steps).
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return string(b.buf) }
