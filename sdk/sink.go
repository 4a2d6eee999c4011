package sdk

import (
	"bufio"
	"fmt"
	"os"
	"sync"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// SinkWriter writes one subtask's share of a sink.
type SinkWriter[T any] interface {
	Write(v T) error
	// Finish is called once when the input ended: flush. When the job
	// checkpoints (TaskInfo.Checkpointing), a final checkpoint follows
	// before the subtask ends (FLIP-147): a Committer's PreCommit and, on
	// its completion, Commit then make the last output final, as for any
	// checkpoint, so Finish must not commit. Without checkpoints nothing
	// follows: Finish makes the output final. Not called when the task
	// fails or is cancelled, nor again in a subtask restored finished.
	Finish() error
	// Close releases resources; it is always called last.
	Close() error
}

// Committer is implemented by SinkWriters that take part in checkpoints with
// a two-phase commit: PreCommit on the barrier makes what was written so far
// pending and returns the state to remember; Commit makes everything pending
// up to checkpointID visible once that checkpoint completes.
type Committer interface {
	PreCommit(checkpointID int64) ([][]byte, error)
	Commit(checkpointID int64) error
}

// NewSink adds a sink whose subtasks each write through the SinkWriter that
// open returns.
func NewSink[T any](s Stream[T], name string, open func(TaskInfo) (SinkWriter[T], error), opts ...Option) {
	cfg := config(opts)
	n, _ := addNode[T](s.p, "sink", name, cfg, false)
	connect(s, n)
	n.NewOp = func(env *runtime.Env, _ any) (runtime.OpRun, error) {
		w, err := open(env)
		if err != nil {
			return runtime.OpRun{}, fmt.Errorf("open sink %q: %w", n.Name, err)
		}
		run := runtime.OpRun{
			In: func(v T) {
				if err := w.Write(v); err != nil {
					env.Fail(fmt.Errorf("sink %q: %w", n.Name, err))
				}
			},
			Finish: w.Finish,
			Close:  w.Close,
		}
		if c, ok := w.(Committer); ok {
			run.Snapshot, run.Notify = c.PreCommit, c.Commit
		}
		return run, nil
	}
}

var stdout = struct {
	sync.Mutex
	w *bufio.Writer
}{w: bufio.NewWriter(os.Stdout)}

// Print writes every record to standard output, one per line (fmt.Print
// formatting). In a cluster that is the worker's log.
func Print[T any](s Stream[T], opts ...Option) {
	NewSink(s, "Print", func(TaskInfo) (SinkWriter[T], error) { return printer[T]{}, nil },
		append([]Option{WithName("Print")}, opts...)...)
}

type printer[T any] struct{}

func (printer[T]) Write(v T) error {
	stdout.Lock()
	defer stdout.Unlock()
	fmt.Fprintln(stdout.w, v)
	// Unbounded jobs print slowly; flush when nothing else is buffered soon.
	if stdout.w.Buffered() > 32<<10 {
		return stdout.w.Flush()
	}
	return nil
}

func (printer[T]) Finish() error {
	stdout.Lock()
	defer stdout.Unlock()
	return stdout.w.Flush()
}

func (printer[T]) Close() error { return nil }
