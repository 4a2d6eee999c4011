package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weir-run/weir/internal/describe"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A describe run on a worker (JobService.DescribeBinary) is bounded in time
// and output: a pipeline's construction does no I/O worth waiting for, and
// its graph is kilobytes (a spec is at most the coordinator's
// --max-spec-size anyway).
const (
	maxDescribeTimeout = 30 * time.Second
	maxDescribeOutput  = 4 << 20
)

// describe runs the job binary a DescribeRequest names in describe mode and
// reports the outcome to the coordinator, without blocking the stream.
func (w *Worker) describe(ctx context.Context, r *weirv1.DescribeRequest) {
	w.wg.Go(func() {
		reply := w.runDescribe(ctx, r)
		reply.RequestId = r.RequestId
		w.mu.Lock()
		w.reportLocked(&weirv1.WorkerMessage{Msg: &weirv1.WorkerMessage_Described{Described: reply}})
		w.mu.Unlock()
	})
}

// runDescribe runs the cached binary, verified again into a sealed copy as
// for a job process, in a sandbox: a private empty directory (removed
// after), the job environment (jobEnv) without task variables, no network
// where the kernel allows user namespaces, describeTimeout and capped
// output.
func (w *Worker) runDescribe(ctx context.Context, r *weirv1.DescribeRequest) *weirv1.DescribeReply {
	exe, err := w.cache.Exec(ctx, r.BinarySha256)
	if err != nil {
		return &weirv1.DescribeReply{Error: fmt.Sprintf("fetch job binary: %v", err)}
	}
	defer exe.Close()
	dir, err := os.MkdirTemp(filepath.Join(w.cfg.DataDir, "jobs"), "describe-")
	if err != nil {
		return &weirv1.DescribeReply{Error: err.Error()}
	}
	defer os.RemoveAll(dir)
	if err := privateDir(dir, "tmp"); err != nil {
		return &weirv1.DescribeReply{Error: err.Error()}
	}
	timeout := time.Duration(r.TimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > maxDescribeTimeout {
		timeout = maxDescribeTimeout
	}
	// argv[0] is the name the submitter's file has, as in a local
	// describe, not the sealed copy's /proc/self/fd/N.
	name := r.BinaryName
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		name = "job"
	}
	o, err := describe.Run(ctx, describe.Command{
		Path: exe.Path(), Name: name, Parallelism: int(r.Parallelism), Args: r.Args,
		Env: jobEnv(os.Environ(), dir, nil), Dir: dir,
		Timeout: timeout, MaxOutput: maxDescribeOutput, Sandbox: true,
	})
	switch {
	case errors.Is(err, describe.ErrInterrupted):
		return &weirv1.DescribeReply{Error: "the worker stopped describing: " + context.Cause(ctx).Error()}
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &weirv1.DescribeReply{Outcome: &weirv1.DescribeOutcome{StartError: err.Error()}}
	}
	if !o.NetworkIsolated {
		w.logger.Warn("job binary described without network isolation: this worker cannot make user namespaces", "sha256", r.BinarySha256)
	}
	return &weirv1.DescribeReply{Outcome: o}
}
