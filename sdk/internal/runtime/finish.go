package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/watermark"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// finishing is a subtask's end of input under checkpointing (Flink's
// FLIP-147). A subtask whose input ended does not exit at once: its
// operators finished (their last records are out), but a two-phase-commit
// sink commits only when a checkpoint completes, so the subtask stays to
// take one more checkpoint, the final one, and exits once it completed.
// Only then does it send the end of its output downstream: until then the
// channel carries the final checkpoint's barrier. Its consumers do not wait
// for that: the end of data it sent after Finish lets them finish at once
// (task.finish), and the barrier makes their final checkpoint the same.
//
// While it waits, the subtask reads no input (its gate has ended, or its
// source is done), so control messages reach it here, not through the
// mailbox or the gate: every trigger, for a subtask with inputs too (no
// barrier can reach it over ended channels), and every completion.
type finishing struct {
	mu sync.Mutex
	// awaiting: the subtask waits for its final checkpoint; Deployment.post
	// queues controls here.
	awaiting bool
	queue    []control
	wake     chan struct{} // signalled when queue grows
	// missed holds the triggers that came before the subtask awaited,
	// newer than any it took. A gate-fed subtask takes checkpoints at
	// barriers and drops triggers, but once its input has ended no barrier
	// can come: a trigger posted between the end of its input and its wait
	// (while Finish runs), or one whose barrier its finished producers
	// never sent, is taken when the wait starts, or the checkpoint would
	// hang until its timeout. All of them, in order: a savepoint and a
	// periodic checkpoint may both be pending.
	missed []control
	// taken is the newest checkpoint the subtask took; owned by its
	// goroutine.
	taken int64

	// uploads counts the subtask's checkpoint uploads in flight, so that
	// its acks leave before it reports itself finished: the coordinator
	// then never stands a finished snapshot in for an ack still coming.
	uploads sync.WaitGroup

	// Owned by the subtask's goroutine:
	// ended: the input ended and the operators finished; snapshots from
	// here on are marked finished.
	ended bool
	// final is the first checkpoint taken after the end (0: none yet,
	// -1: done); the subtask exits once a checkpoint not older than it
	// completed.
	final int64
}

// maxMissedTriggers bounds finishing.missed.
const maxMissedTriggers = 8

// offerLocked queues c if the subtask awaits its final checkpoint. f.mu
// is held, so a subtask that starts waiting after this returned false
// finds c in its mailbox or gate.
func (f *finishing) offerLocked(c control) bool {
	if !f.awaiting {
		switch {
		case c.trigger != nil:
			// Bounded also while no checkpoint completes: one older than
			// the newest few was aborted long ago.
			if len(f.missed) == maxMissedTriggers {
				f.missed = slices.Delete(f.missed, 0, 1)
			}
			f.missed = append(f.missed, c)
		case c.complete > 0:
			// Those up to a completed checkpoint need nothing any more,
			// which keeps the list to the checkpoints pending.
			f.missed = slices.DeleteFunc(f.missed, func(m control) bool { return m.trigger.CheckpointId <= c.complete })
		}
		return false
	}
	f.queue = append(f.queue, c)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return true
}

// awaitsFinal reports whether the subtask waits for its final checkpoint.
func (f *finishing) awaitsFinal() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.awaiting
}

// finalCheckpoint is the end-of-input step between the operators' Finish
// and the end of the output: with checkpointing, wait until a checkpoint
// taken after the end completed. Without checkpoints (or with savepoints
// only) no checkpoint would come, and the subtask ends at once, as its
// sinks committed in Finish.
func (t *task) finalCheckpoint() error {
	if !t.env.checkpointing {
		return nil
	}
	t.fin.mu.Lock()
	t.fin.awaiting = true
	t.fin.wake = make(chan struct{}, 1)
	t.fin.mu.Unlock()
	// Controls posted before are still in the mailbox or the gate's mail.
	for drained := false; !drained; {
		select {
		case c := <-t.mailbox:
			if err := t.finalControl(c); err != nil {
				return err
			}
		default:
			drained = true
		}
	}
	if err := t.drainGate(func(d exchange.Delivery) error {
		if d.Index >= 0 {
			return fmt.Errorf("input after the end of input (%v)", d.Frame.Kind)
		}
		return t.finalControl(d.Frame.Local.(control))
	}); err != nil {
		return err
	}
	t.fin.mu.Lock()
	missed := t.fin.missed
	t.fin.missed = nil
	t.fin.mu.Unlock()
	slices.SortFunc(missed, func(a, b control) int { return cmp.Compare(a.trigger.CheckpointId, b.trigger.CheckpointId) })
	for _, c := range missed {
		if c.trigger.CheckpointId > t.fin.taken {
			if err := t.finalControl(c); err != nil {
				return err
			}
		}
	}
	if f := t.ck.awaitingFinal; f != nil && t.fin.final == 0 {
		// No checkpoint taken since the end: without this the final one
		// comes at the next interval, and each stage of a bounded job
		// would wait one in turn.
		f(SubtaskRef{Vertex: t.v.ID, Subtask: t.env.subtask}, t.fin.taken)
	}
	for {
		if t.fin.done() {
			break
		}
		t.fin.mu.Lock()
		q := t.fin.queue
		t.fin.queue = nil
		t.fin.mu.Unlock()
		for _, c := range q {
			if err := t.finalControl(c); err != nil {
				return err
			}
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-t.fin.wake:
		case <-t.env.ctx.Done():
			return t.env.ctx.Err()
		}
	}
	// Its acks must reach the coordinator before its end does.
	t.fin.uploads.Wait()
	return nil
}

// awaitingFinal reports whether some subtask of the deployment waits for
// its final checkpoint.
func (d *Deployment) awaitingFinal() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.tasks {
		if t.fin.awaitsFinal() {
			return true
		}
	}
	return false
}

// finishedSnapshot is what a checkpoint records for a subtask that ended
// before it acknowledged it (as the coordinator does): no state, finished.
func (g *Graph) finishedSnapshot(ref SubtaskRef) *weirv1.SubtaskSnapshot {
	v := g.Vertices[ref.Vertex]
	return &weirv1.SubtaskSnapshot{VertexId: int32(v.ID), Subtask: int32(ref.Subtask), Parallelism: int32(v.Parallelism),
		Uids: v.uids(), Finished: true}
}

// done reports whether the final checkpoint completed.
func (f *finishing) done() bool { return f.final < 0 }

// finalControl handles a control message while waiting: a trigger takes a
// checkpoint (marked finished), a completion is passed to the operators
// (sinks commit) and ends the wait once it covers the final checkpoint.
func (t *task) finalControl(c control) error {
	if t.fin.done() {
		return nil
	}
	return t.onControl(c)
}

// errInputAfterFinish: a subtask restored finished received records; its
// producers were finished in the same checkpoint, so this is a bug.
var errInputAfterFinish = errors.New("a subtask restored as finished received records")

// runRestoredFinished runs a subtask that was finished in the checkpoint
// restored (SubtaskSnapshot.finished): its operators were created with
// their restored state (a two-phase-commit sink commits what it held), but
// it reads no input and does not finish its operators again: a finished
// source would read its input twice, an operator that emits in Finish
// would emit twice. Its producers are finished too and only end their
// channels; downstream it sends the final watermark and the end.
func (t *task) runRestoredFinished() error {
	t.env.logger.Info("restored finished: not reading the input again", "checkpoint", t.env.restored.fromID)
	if err := t.drainGate(func(d exchange.Delivery) error {
		if d.Index >= 0 && d.Frame.Kind == exchange.KindRecords {
			return errInputAfterFinish
		}
		return nil
	}); err != nil {
		return err
	}
	t.wm = watermark.Max
	t.inputWM.Store(watermark.Max)
	t.outputWM.Store(watermark.Max)
	if err := t.out.watermark(watermark.Max, false); err != nil {
		return err
	}
	return t.out.end()
}

// drainGate hands every delivery of the subtask's gate, if it has one, to
// f until the gate ends.
func (t *task) drainGate(f func(exchange.Delivery) error) error {
	if t.gate == nil {
		return nil
	}
	for {
		d, err := t.gate.Next(t.env.ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f(d); err != nil {
			return err
		}
	}
}
