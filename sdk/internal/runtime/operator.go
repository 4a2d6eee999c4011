package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/internal/state"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Codec turns values of T into bytes and back: records cross process
// boundaries through it, and keyed state is stored through it. Append
// appends the encoding of v to dst and must not retain dst; Decode reads a
// value from exactly the bytes given and must not retain them.
type Codec[T any] interface {
	Append(dst []byte, v T) []byte
	Decode(b []byte) (T, error)
}

// ErrDecode wraps every decoding failure of records, in the runtime's
// framing and in the built-in codecs.
var ErrDecode = errors.New("sdk: cannot decode record")

// OpRun is one subtask's instance of an operator. Every func is called in
// the subtask's goroutine, never concurrently; nil ones are skipped.
type OpRun struct {
	In  any // func(T) over the input's record type
	In2 any // the second input's of a two-input operator (func(T2))
	// Watermark handles the operator's input watermark, which only
	// advances; it fires what is due and forwards it with
	// Env.EmitWatermark. Without one the watermark passes through.
	Watermark func(ts int64)
	// OnTime is called at or after the time the operator asked for with
	// Env.Wake.
	OnTime func(now time.Time)
	// Idle is called when the subtask's output turns idle: an operator
	// holding records until a later watermark (the window combiner) emits
	// them, since the consumers' watermark no longer waits for this output.
	Idle func()
	// Held reports whether the operator holds records back until a later
	// watermark: the task then flushes on the buffer timeout as if its
	// output had a partial batch, so an upstream operator that sends its
	// watermark at a flush (AssignTimestamps) does.
	Held     func() bool
	Finish   func() error                     // end of input: emit final results
	Flush    func() error                     // buffer timeout: push out buffered output
	Close    func() error                     // always last
	Snapshot func(id int64) ([][]byte, error) // checkpoint barrier: the operator's state
	Notify   func(id int64) error             // checkpoint id completed
	// RestoredWatermark, when set, is the watermark the operator restored
	// from the checkpoint (watermark.Min: none). Before any input the task
	// passes it on downstream of the operator, and when the operator is
	// its chain's watermark entry (the first with a Watermark handler) in
	// a subtask with inputs, the subtask's input watermark starts there.
	RestoredWatermark func() int64
}

// SourceRun is one subtask's instance of a source: the head of its chain.
type SourceRun struct {
	Poll func() (Poll, error)
	// Watermark reports the reader's own watermark after a poll, when it
	// has one.
	Watermark func() (ts int64, idle bool)
	// Lag reports how far the reader is behind its input, when it knows.
	Lag      func() []SourceLag
	Close    func() error
	Snapshot func() ([][]byte, error) // the reader's splits and positions
}

// Poll is what a source reports after emitting.
type Poll struct {
	Done bool          // no more records, ever (bounded source)
	Wait time.Duration // nothing available now; poll again after this
}

// SourceLag is how far one split of a source is behind its head.
type SourceLag struct {
	Topic     string
	Partition int32
	// Records between the last record read and the head; -1 while unknown.
	Records int64
	// Behind is now minus the event time of the last record read; zero
	// while unknown.
	Behind time.Duration
}

// subtaskEnv is shared by the operators chained in one subtask.
type subtaskEnv struct {
	ctx            context.Context
	jobID          string
	attempt        int64
	vertex         int
	subtask        int
	parallelism    int
	maxParallelism int
	state          state.Backend
	logger         *slog.Logger
	err            error
	restored       Restored
	// checkpointing says whether the job takes checkpoints.
	checkpointing bool
	// wakeAt is the earliest processing time an operator asked to be called
	// back at (OnTime); zero when none did.
	wakeAt time.Time
	// setIdle sends the idle marker (or its end) downstream.
	setIdle func(idle bool)
	// metrics are the subtask's counters; tap, when set, samples the
	// records leaving the chain (see tap.go).
	metrics taskMetrics
	tap     atomic.Pointer[tapState]
	// clock is the processing-time clock operators read (time.Now when
	// nil); tests drive processing-time triggers with a fake one.
	clock func() time.Time
	// declared lists the keyed states the chain's operators declared, for
	// the snapshots; restoredStates holds the restored snapshots' (by
	// stateKey) to check them against.
	declared       []*weirv1.StateInfo
	restoredStates map[string]*weirv1.StateInfo
}

func stateKey(uid, name string) string { return uid + "\x00" + name }

// fail records the first error of the chain; the subtask loop checks it
// after every batch. Operators cannot return errors per record without
// slowing the common path.
func (e *subtaskEnv) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// Env is one operator's view of its subtask: who it is, its restored
// state, its clock and the ways back into the task loop. It implements
// the sdk's TaskInfo.
type Env struct {
	*subtaskEnv
	uid string
	// emitWatermark passes a watermark to the rest of the chain: the next
	// operator's watermark handler, or the output.
	emitWatermark func(ts int64)
	// sides holds the emit function of each side output (func(S)).
	sides []any
}

func (e *Env) Subtask() int         { return e.subtask }
func (e *Env) Parallelism() int     { return e.parallelism }
func (e *Env) MaxParallelism() int  { return e.maxParallelism }
func (e *Env) Attempt() int64       { return e.attempt }
func (e *Env) JobID() string        { return e.jobID }
func (e *Env) UID() string          { return e.uid }
func (e *Env) Checkpointing() bool  { return e.checkpointing }
func (e *Env) Logger() *slog.Logger { return e.logger }

// State is the subtask's keyed-state backend, shared by its chain.
func (e *Env) State() state.Backend { return e.state }

// Restored returns the operator's state items from the checkpoint the
// subtask restored, if any.
func (e *Env) Restored() ([][]byte, bool) {
	items, ok := e.restored.items[e.uid]
	return items, ok
}

// RestoredAll returns every old subtask's items of the operator.
func (e *Env) RestoredAll() ([][]byte, bool) {
	items, ok := e.restored.all[e.uid]
	return items, ok
}

// RestoredParallelism is the vertex's parallelism in the checkpoint
// restored (0: none): it differs from Parallelism when rescaled.
func (e *Env) RestoredParallelism() int { return e.restored.parallelism }

// Sides holds the emit function (func(S)) of each side output of the
// chain's tail; nil for other operators.
func (e *Env) Sides() []any { return e.sides }

// Fail fails the subtask with err (the first error wins); the task loop
// stops after the current batch.
func (e *Env) Fail(err error) { e.fail(err) }

// Err is the error the subtask failed with, if any.
func (e *Env) Err() error { return e.err }

// Now is the subtask's processing time.
func (e *Env) Now() time.Time {
	if e.clock != nil {
		return e.clock()
	}
	return time.Now()
}

// Wake asks the task loop to call the chain's OnTime at or after at.
func (e *Env) Wake(at time.Time) {
	if e.wakeAt.IsZero() || at.Before(e.wakeAt) {
		e.wakeAt = at
	}
}

// WakeDue reports whether the time an operator asked to be woken at has
// come by now, and if so forgets it: the caller then runs the chain's
// OnTime. The task loop does; so does a driver of an operator outside one.
func (e *Env) WakeDue(now time.Time) bool { return e.wakeDue(now) }

func (e *subtaskEnv) wakeDue(now time.Time) bool {
	if e.wakeAt.IsZero() || now.Before(e.wakeAt) {
		return false
	}
	e.wakeAt = time.Time{}
	return true
}

// EmitWatermark passes watermark ts to the rest of the chain.
func (e *Env) EmitWatermark(ts int64) { e.emitWatermark(ts) }

// SetIdle marks the subtask's output idle (or active again) downstream.
func (e *Env) SetIdle(idle bool) { e.setIdle(idle) }

// DeclareState records a keyed state of the operator. A restored state of
// that name declared with another type fails the task for good: the job
// reads its saved state as something it is not (another job's savepoint,
// or a changed type or codec); a restore with the intended types, or a
// fresh start, is what the user must choose.
func (e *Env) DeclareState(name, typ string) {
	e.declared = append(e.declared, &weirv1.StateInfo{Uid: e.uid, Name: name, Type: typ})
	if old, ok := e.restoredStates[stateKey(e.uid, name)]; ok && old.GetType() != typ {
		e.fail(Permanent(fmt.Errorf("operator %s declares state %q as %s, but the restored snapshot holds it as %s: "+
			"restore with the types it was saved with, or start the job without this snapshot", e.uid, printableName(name), typ, old.GetType())))
	}
}

// printableName shows the runtime's own state names (they start with a
// NUL byte) readably.
func printableName(name string) string { return strings.TrimPrefix(name, "\x00") }

// EnvOptions describes an Env made outside a task, to drive one operator
// instance directly: operator tests and models do.
type EnvOptions struct {
	Ctx                                  context.Context // context.Background when nil
	JobID                                string
	Attempt                              int64
	Subtask, Parallelism, MaxParallelism int
	UID                                  string
	State                                state.Backend
	Logger                               *slog.Logger
	Restored                             Restored // see Restore
	Clock                                func() time.Time
	EmitWatermark                        func(ts int64) // dropped when nil
	Sides                                []any
}

// NewEnv returns an Env as o describes.
func NewEnv(o EnvOptions) *Env {
	if o.Ctx == nil {
		o.Ctx = context.Background()
	}
	if o.EmitWatermark == nil {
		o.EmitWatermark = func(int64) {}
	}
	se := &subtaskEnv{ctx: o.Ctx, jobID: o.JobID, attempt: o.Attempt, subtask: o.Subtask, parallelism: o.Parallelism,
		maxParallelism: o.MaxParallelism, state: o.State, logger: o.Logger, restored: o.Restored, clock: o.Clock,
		setIdle: func(bool) {}}
	return &Env{subtaskEnv: se, uid: o.UID, emitWatermark: o.EmitWatermark, sides: o.Sides}
}
