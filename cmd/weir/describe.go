package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weir-run/weir/internal/taskenv"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	// describeTimeout bounds describe mode: building a pipeline does no I/O
	// worth waiting for, so a binary that takes longer is not describing.
	describeTimeout = 10 * time.Second
	// maxDescribeOutput bounds what we read of a binary's stdout; a job
	// graph is kilobytes.
	maxDescribeOutput = 64 << 20
	// stderrTail is how much of a binary's stderr we keep for the message.
	stderrTail = 64 << 10
)

// checkBinary checks that path names a file we can run and read, before
// anything is started or sent. It returns the absolute path; messages name
// path as the user wrote it.
func checkBinary(path string) (string, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("cannot read %s: permission denied", path)
	case err != nil:
		return "", fmt.Errorf("cannot read %s: %v", path, unwrapPathError(err))
	case fi.IsDir():
		return "", fmt.Errorf("%s is a directory, not a job binary", path)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s is not a regular file", path)
	case fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("%s is not executable (chmod +x %s)", path, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", path, unwrapPathError(err))
	}
	f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("cannot resolve %s: %v", path, err)
	}
	return abs, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// describe runs bin in describe mode and returns the job graph it prints.
// Every failure is one line naming display, the binary as the user wrote it.
func describe(ctx context.Context, bin, display string, parallelism int, args []string, timeout time.Duration) (*weirv1.JobGraph, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(dctx, bin, taskenv.Args("describe", parallelism, args)...)
	cmd.Stdin = nil // the null device: describe must not wait for input
	stdout := &cappedBuffer{max: maxDescribeOutput}
	stderr := &tailBuffer{max: stderrTail}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	killGroupOnCancel(cmd)
	// Whatever escaped the group and holds the output open must not make
	// us wait long beyond the kill.
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()

	if ctx.Err() != nil {
		return nil, errInterrupted
	}
	if cmd.ProcessState == nil { // it did not start
		return nil, startError(display, runErr)
	}
	if errors.Is(dctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("%s did not describe its job graph within %v", display, timeout)
	}
	if stdout.overflow {
		return nil, fmt.Errorf("%s printed more than %d MiB in describe mode: it is not a weir job", display, maxDescribeOutput>>20)
	}
	graphJSON, found := findGraph(stdout.Bytes())
	if runErr != nil {
		return nil, describeExitError(display, runErr, stderr.String(), found)
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

func startError(display string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOEXEC):
		return fmt.Errorf("%s is not a program for this platform (%s/%s)", display, runtime.GOOS, runtime.GOARCH)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot run %s: permission denied (is its file system mounted noexec?)", display)
	case errors.Is(err, fs.ErrNotExist):
		// The file exists (checkBinary saw it), so what is missing is its
		// interpreter or dynamic loader.
		return fmt.Errorf("cannot run %s: its interpreter or dynamic loader is missing (built for another system?)", display)
	}
	return fmt.Errorf("cannot run %s: %v", display, unwrapPathError(err))
}

// describeExitError explains a describe run that exited unsuccessfully.
func describeExitError(display string, runErr error, stderr string, described bool) error {
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) {
		return fmt.Errorf("running %s: %v", display, runErr)
	}
	line := lastLine(stderr)
	if p := panicLine(stderr); p != "" {
		return fmt.Errorf("%s crashed while describing its job graph: %s", display, p)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Errorf("%s was killed by %v while describing its job graph", display, ws.Signal())
	}
	switch {
	case described && line != "":
		return fmt.Errorf("%s failed after describing its job graph: %s", display, line)
	case described:
		return fmt.Errorf("%s failed after describing its job graph (exit status %d)", display, ee.ExitCode())
	case line != "":
		return fmt.Errorf("%s rejected its arguments: %s", display, line)
	}
	return fmt.Errorf("%s exited with status %d without describing a job graph", display, ee.ExitCode())
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

// cappedBuffer keeps at most max bytes and notes whether more came.
type cappedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.overflow = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

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
