package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	describepkg "github.com/weir-run/weir/internal/describe"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	// describeTimeout bounds describe mode: building a pipeline does no I/O
	// worth waiting for, so a binary that takes longer is not describing.
	describeTimeout = 10 * time.Second
	// maxDescribeOutput bounds what we read of a binary's stdout; a job
	// graph is kilobytes.
	maxDescribeOutput = 64 << 20
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

// describe runs bin here in describe mode and returns the job graph it
// prints. Every failure is one line naming display, the binary as the user
// wrote it; a binary this machine cannot run fails with an error wrapping
// errForeign.
func describe(ctx context.Context, bin, display string, parallelism int, args []string, timeout time.Duration) (*weirv1.JobGraph, error) {
	o, err := describeRun(ctx, describepkg.Command{Path: bin, Parallelism: parallelism, Args: args, Timeout: timeout, MaxOutput: maxDescribeOutput})
	switch {
	case errors.Is(err, describepkg.ErrInterrupted):
		return nil, errInterrupted
	case err != nil:
		return nil, startError(display, err)
	}
	return describepkg.Graph(o, display)
}

// describeRun runs a describe; a test replaces it (see testExecEnv).
var describeRun = describepkg.Run

// testExecEnv set to "enoexec" in the CLI's environment makes every local
// run of a job binary fail as one for another platform does (exec format
// error), so tests can submit a binary "this machine cannot run" from a
// machine that can. Not for use outside tests.
const testExecEnv = "WEIR_TEST_LOCAL_EXEC"

// errForeign marks a describe that failed because the binary is not a
// program for this machine.
var errForeign = errors.New("not a program for this platform")

func startError(display string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOEXEC):
		return fmt.Errorf("%s is %w (%s/%s)", display, errForeign, runtime.GOOS, runtime.GOARCH)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot run %s: permission denied (is its file system mounted noexec?)", display)
	case errors.Is(err, fs.ErrNotExist):
		// The file exists (checkBinary saw it), so what is missing is its
		// interpreter or dynamic loader.
		return fmt.Errorf("cannot run %s: its interpreter or dynamic loader is missing (built for another system?)", display)
	}
	return fmt.Errorf("cannot run %s: %v", display, unwrapPathError(err))
}

// describeRemoteGrace is how much longer than the describe's own timeout
// `weir run` waits for a remote one: the coordinator's wait for its worker
// (which may first fetch the binary), plus a little.
const describeRemoteGrace = 2*time.Minute + 10*time.Second

// The values of `weir run --describe`.
const (
	describeLocal  = "local"
	describeRemote = "remote"
	describeAuto   = "auto"
)

// describeHere describes the binary on this machine. With --describe auto
// a binary whose ELF header names another platform is not run at all: the
// error wraps errForeign, as an exec format error does.
func describeHere(ctx context.Context, s streams, abs, display string, f runFlags, jobArgs []string, timeout time.Duration) (*weirv1.JobGraph, error) {
	here := runtime.GOOS + "/" + runtime.GOARCH
	if f.describe == describeAuto {
		if p := binaryPlatform(abs); p != "" && p != here {
			return nil, fmt.Errorf("%s is built for %s: %w (%s)", display, p, errForeign, here)
		}
	}
	if s.getenv(testExecEnv) == "enoexec" {
		return nil, startError(display, &fs.PathError{Op: "fork/exec", Path: abs, Err: syscall.ENOEXEC})
	}
	return describe(ctx, abs, display, f.parallelism, jobArgs, timeout)
}

// binaryPlatform is the platform the ELF header of the file at path names,
// or "" (not ELF, unreadable, or a machine weir does not know).
func binaryPlatform(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head := make([]byte, describepkg.HeaderLen)
	if _, err := io.ReadFull(f, head); err != nil {
		return ""
	}
	return describepkg.ELFPlatform(head)
}

// describeOnWorker has a worker describe the uploaded binary sum and reads
// the graph out of its outcome as describe does out of a local run's.
func describeOnWorker(ctx context.Context, s streams, c *client, abs, display, sum string, parallelism int, args []string, timeout time.Duration) (*weirv1.JobGraph, error) {
	// The worker may first fetch the binary: the coordinator bounds that,
	// this bounds the coordinator.
	wait := timeout + describeRemoteGrace
	dctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	resp, err := c.jobs.DescribeBinary(dctx, &weirv1.DescribeBinaryRequest{
		BinarySha256: sum, Args: args, Parallelism: int32(parallelism), TimeoutMs: timeout.Milliseconds(),
		BinaryName: filepath.Base(abs),
	})
	switch {
	case err == nil:
	case ctx.Err() == nil && dctx.Err() != nil:
		return nil, fmt.Errorf("coordinator at %s did not describe %s within %v", c.addr, display, wait)
	case status.Code(err) == codes.DeadlineExceeded:
		return nil, errors.New(oneLine(status.Convert(err).Message()))
	default:
		return nil, c.rpcError(ctx, err)
	}
	fmt.Fprintf(s.stderr, "described %s on worker %s (%s)\n", display, resp.GetWorkerId(), resp.GetWorkerPlatform())
	g, err := describepkg.Graph(resp.GetOutcome(), display)
	if err != nil {
		return nil, fmt.Errorf("%w (described on worker %s)", err, resp.GetWorkerId())
	}
	return g, nil
}

// clusterPlatform is the platform `weir run` checks a binary against when
// neither --platform nor $WEIR_PLATFORM names one: the one every registered
// worker reports, else (none registered, workers that disagree or do not
// report, a caller not allowed to list them) this machine's.
func clusterPlatform(ctx context.Context, c *client) (string, error) {
	here := runtime.GOOS + "/" + runtime.GOARCH
	resp, err := unaryRaw(ctx, c.jobs.ListWorkers, &weirv1.ListWorkersRequest{})
	switch {
	case status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unimplemented:
		return here, nil
	case err != nil:
		return "", c.rpcError(ctx, err)
	}
	platform := ""
	for _, w := range resp.GetWorkers() {
		p := w.GetGoos() + "/" + w.GetGoarch()
		if w.GetGoos() == "" || w.GetGoarch() == "" || (platform != "" && p != platform) {
			return here, nil
		}
		platform = p
	}
	if platform == "" {
		return here, nil
	}
	return platform, nil
}
