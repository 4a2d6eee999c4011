package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/describe"
	"github.com/weir-run/weir/internal/objstore"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	// maxDescribeTimeout caps the time a binary gets to describe itself on
	// a worker (workers cap it too).
	maxDescribeTimeout = 30 * time.Second
	// describeFetchGrace is how much longer than the describe itself the
	// leader waits for the worker's answer: it may first fetch the binary.
	describeFetchGrace = 2 * time.Minute
)

// pendingDescribe is a DescribeRequest sent to a worker, waiting for its
// DescribeReply.
type pendingDescribe struct {
	worker string
	reply  chan *weirv1.DescribeReply // buffered 1; answered at most once
}

// answer hands r to the waiting call without blocking the loop.
func (p *pendingDescribe) answer(r *weirv1.DescribeReply) {
	select {
	case p.reply <- r:
	default:
	}
}

// DescribeBinary runs an uploaded binary in describe mode on one live
// worker of the binary's platform and returns the outcome.
func (s *jobService) DescribeBinary(ctx context.Context, r *weirv1.DescribeBinaryRequest) (*weirv1.DescribeBinaryResponse, error) {
	if !objstore.ValidSHA256(r.BinarySha256) {
		return nil, status.Errorf(codes.InvalidArgument, "%q is not a sha256 digest", r.BinarySha256)
	}
	if r.Parallelism < 1 {
		return nil, status.Errorf(codes.InvalidArgument, "parallelism must be at least 1, got %d", r.Parallelism)
	}
	platform, err := s.c.binaryPlatform(ctx, r.BinarySha256)
	if err != nil {
		return nil, err
	}
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(r.TimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > maxDescribeTimeout {
		timeout = maxDescribeTimeout
	}
	id := newJobID()
	type sent struct {
		w *workerConn
		p *pendingDescribe
	}
	sn, err := call(ctx, st, func() (sent, error) {
		w, err := st.describer(platform)
		if err != nil {
			return sent{}, err
		}
		p := &pendingDescribe{worker: w.id, reply: make(chan *weirv1.DescribeReply, 1)}
		st.describes[id] = p
		w.send(&weirv1.CoordinatorMessage{Msg: &weirv1.CoordinatorMessage_Describe{Describe: &weirv1.DescribeRequest{
			RequestId: id, BinarySha256: r.BinarySha256, Args: r.Args, Parallelism: r.Parallelism, TimeoutMs: timeout.Milliseconds(),
			BinaryName: r.BinaryName,
		}}})
		return sent{w, p}, nil
	})
	if err != nil {
		return nil, err
	}
	defer st.do(context.Background(), func() { delete(st.describes, id) })
	t := time.NewTimer(timeout + describeFetchGrace)
	defer t.Stop()
	select {
	case rep := <-sn.p.reply:
		if rep.Error != "" {
			return nil, status.Errorf(codes.Unavailable, "worker %s could not describe the binary: %s", sn.w.id, oneLine(errors.New(rep.Error)))
		}
		return &weirv1.DescribeBinaryResponse{Outcome: rep.Outcome, WorkerId: sn.w.id, WorkerPlatform: sn.w.platform()}, nil
	case <-t.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "worker %s did not answer a describe within %v", sn.w.id, timeout+describeFetchGrace)
	case <-st.done:
		return nil, errNotLeader
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// binaryPlatform is the platform the stored binary sha is for, from its
// ELF header ("linux/amd64"), or "" when the header names none weir knows.
// A binary that was not uploaded is FAILED_PRECONDITION.
func (c *Coordinator) binaryPlatform(ctx context.Context, sha string) (string, error) {
	rc, _, err := c.store.OpenBinary(ctx, sha)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return "", status.Errorf(codes.FailedPrecondition, "binary %s was not uploaded", sha)
	case err != nil:
		return "", status.Errorf(codes.Internal, "object store: %v", err)
	}
	defer rc.Close()
	head := make([]byte, describe.HeaderLen)
	if _, err := io.ReadFull(rc, head); err != nil {
		return "", nil // shorter than any ELF header
	}
	return describe.ELFPlatform(head), nil
}

// platform is the worker's GOOS/GOARCH, or "" when it did not report it.
func (w *workerConn) platform() string {
	if w.goos == "" || w.goarch == "" {
		return ""
	}
	return w.goos + "/" + w.goarch
}

// runs reports whether the worker can run a binary of platform ("" for an
// unknown one, which every worker is assumed to run, as is every binary by
// a worker that reports no platform).
func (w *workerConn) runs(platform string) bool {
	return platform == "" || w.platform() == "" || w.platform() == platform
}

// describer picks the worker to describe a binary of platform on: of those
// that run it, the one with the most free slots.
func (s *leaderState) describer(platform string) (*workerConn, error) {
	if len(s.workers) == 0 {
		return nil, noDescriber
	}
	if err := s.runnable(platform); err != nil {
		return nil, err
	}
	var best *workerConn
	bestFree := -1
	for _, f := range s.freeSlots() { // sorted by id: ties go to the first
		if w := s.workers[f.ID]; w.runs(platform) && f.Free > bestFree {
			best, bestFree = w, f.Free
		}
	}
	return best, nil
}

// runnable refuses a binary of platform when workers are registered and
// none of them runs it. With no worker registered it is nil: a job waits
// for workers.
func (s *leaderState) runnable(platform string) error {
	if len(s.workers) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, w := range s.workers {
		if w.runs(platform) {
			return nil
		}
		seen[w.platform()] = true
	}
	var ps []string
	for p := range seen {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return status.Errorf(codes.FailedPrecondition, "the binary is built for %s, but no worker runs it (workers: %s); build it with CGO_ENABLED=0 GOOS=%s GOARCH=%s go build",
		platform, strings.Join(ps, ", "), strings.Split(ps[0], "/")[0], strings.Split(ps[0], "/")[1])
}

// noDescriber is DescribeBinary's error when no worker is registered.
var noDescriber = status.Error(codes.FailedPrecondition, "no worker is registered to describe the binary on: start a worker, or describe it where it runs (weir run --describe local)")

// failDescribes answers the describes sent to a worker that is gone.
func (s *leaderState) failDescribes(w *workerConn, cause error) {
	for id, p := range s.describes {
		if p.worker == w.id {
			p.answer(&weirv1.DescribeReply{RequestId: id, Error: fmt.Sprintf("worker %s was lost: %v", w.id, cause)})
			delete(s.describes, id)
		}
	}
}

// described hands a worker's DescribeReply to the call waiting for it; a
// reply from another worker than the one asked is ignored.
func (s *leaderState) described(w *workerConn, r *weirv1.DescribeReply) {
	if p := s.describes[r.RequestId]; p != nil && p.worker == w.id {
		p.answer(r)
		delete(s.describes, r.RequestId)
	}
}
