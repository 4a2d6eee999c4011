package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/internal/align"
	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/watermark"
)

// task is one subtask ready to run: its chain is built and its channels open.
type task struct {
	env *subtaskEnv
	v   *Vertex
	// bufferTimeout is the graph's flush deadline (Graph.BufferTimeout).
	bufferTimeout time.Duration
	runs          []OpRun // head first; the head is empty for sources
	source        *SourceRun
	out           output
	gate          *exchange.Gate
	decs          []func(*exchange.Frame, func(int64)) error // by gate channel index
	// marks, by gate channel index, takes a watermark that came in band,
	// in a record batch (exchange.Frame.Marks), as if in its own frame.
	marks []func(ts int64)

	// Checkpointing; ck is nil when the job does not checkpoint.
	ck       *checkpointer
	db       *pebblestate.DB // keyed state, when the chain has any
	uploader *snapshot.Uploader
	uploadMu sync.Mutex
	aligner  *align.Aligner
	valve    *watermark.Valve
	// wmIn is the chain's watermark entry: the head operator's handler or
	// the output. wm is the last watermark given to it.
	wmIn func(ts int64)
	wm   int64
	// wmEntry is the index in runs of the operator whose handler wmIn is
	// (-1: the output); wmDown[j] is what operator j emits watermarks into.
	wmEntry int
	wmDown  []func(ts int64)
	// inputWM mirrors wm and outputWM the last watermark sent downstream,
	// for readers outside the subtask's goroutine (metrics): see
	// watermarkStatus.
	inputWM, outputWM atomic.Int64
	idle              bool                     // idle marker sent downstream
	barriers          map[int64]exchange.Frame // first barrier frame seen per aligning checkpoint
	mailbox           chan control             // sources' mailbox; gates use Gate.Post
	// encs and edgeIDs, by gate channel index like decs, store in-flight
	// records; inflight is the unaligned snapshot collecting them, if any.
	encs     []func(*exchange.Frame) []byte
	edgeIDs  []int32
	inflight *inflight
	// overtaken is the newest checkpoint whose queued barriers were made
	// to overtake before its alignment started.
	overtaken int64
	// fin is the end of input under checkpointing (finish.go).
	fin finishing
	// eod, by gate channel index, marks the channels that sent the end of
	// data or ended.
	eod []bool
}

// run drives the subtask to the end of its input; its operators are closed
// whatever happens, panics included (run's caller recovers them).
func (t *task) run() (err error) {
	defer func() { err = errors.Join(err, t.close()) }()
	defer t.abandonInflight()
	t.resume()
	if t.env.err != nil {
		return t.env.err
	}
	if t.env.restored.finished {
		return t.runRestoredFinished()
	}
	if err := t.replayInflight(); err != nil {
		return err
	}
	if t.source != nil {
		err = t.runSource()
	} else {
		err = t.runGate()
	}
	if err != nil {
		return err
	}
	if !t.fin.ended { // a gate-fed subtask may have finished at the end of data
		if err := t.finish(); err != nil {
			return err
		}
	}
	// With checkpoints, the end waits for a final one: sinks commit the
	// last records on its completion (FLIP-147).
	if err := t.finalCheckpoint(); err != nil {
		return err
	}
	return t.out.end()
}

// finish ends the operators once the input ended. The end of a bounded
// input is the final watermark: every window and event-time timer fires,
// then each operator's Finish runs. Snapshots from here on are marked
// finished. Under checkpointing the consumers then learn at once that no
// record follows (the end of data), so that they finish too while this
// subtask waits for its final checkpoint: the channels' end comes only
// after it completed, and a stage that waited for it would add one
// checkpoint per stage to a bounded job's end.
func (t *task) finish() error {
	t.advance(watermark.Max)
	if t.env.err != nil {
		return t.env.err
	}
	for _, r := range t.runs {
		if r.Finish != nil {
			if err := r.Finish(); err != nil {
				return err
			}
		}
		if t.env.err != nil {
			return t.env.err
		}
	}
	t.fin.ended = true
	// No callback runs after Finish: a subtask that finished at the end
	// of data still reads its channels (barriers), but its operators
	// emit nothing more, so no processing-time wake and no idleness.
	t.env.wakeAt = time.Time{}
	if !t.env.checkpointing {
		return nil
	}
	// What Finish emitted goes downstream now, not with the barrier.
	if err := t.flush(); err != nil {
		return err
	}
	return t.out.endOfData()
}

// endOfData notes that input channel i carries no more records: it sent
// the end of data, or ended. Once every channel did, the subtask finishes,
// under checkpointing, without waiting for its channels' end (finish).
func (t *task) endOfData(i int) error {
	if t.eod == nil {
		t.eod = make([]bool, len(t.decs))
	}
	t.eod[i] = true
	if slices.Contains(t.eod, false) || t.fin.ended || !t.env.checkpointing {
		return nil
	}
	return t.finish()
}

// resume starts a restored subtask at the watermarks it restored, before
// any input: a source reader's (the minimum over its restored splits') goes
// into the chain, each operator's own goes downstream of it, and a subtask
// with inputs starts its input watermark (and its valve) at its entry
// operator's. So a restored subtask reports its watermark at once and its
// consumers get one on every channel without waiting for new records; a
// watermark not newer than a restored one is dropped as stale anyway.
func (t *task) resume() {
	if t.source != nil && t.source.Watermark != nil {
		if ts, idle := t.source.Watermark(); !idle && ts != watermark.Min {
			t.advance(ts)
		}
	}
	for j, r := range t.runs {
		if r.RestoredWatermark == nil {
			continue
		}
		ts := r.RestoredWatermark()
		if ts == watermark.Min {
			continue
		}
		if j == t.wmEntry && t.source == nil && ts > t.wm {
			t.wm = ts
			t.inputWM.Store(ts)
			t.valve.StartAt(ts)
		}
		t.wmDown[j](ts)
	}
}

// advance gives the chain watermark ts if it is newer than the last.
func (t *task) advance(ts int64) {
	if ts > t.wm {
		t.wm = ts
		t.inputWM.Store(ts)
		t.wmIn(ts)
	}
}

// WatermarkStatus is a subtask's event-time progress, as metrics report it:
// its input watermark (for a source chain, which has none, the one it
// sends), and the lag of that watermark behind the wall clock. A restored
// subtask knows its restored watermark from the start.
type WatermarkStatus struct {
	Watermark int64         // unix ms; meaningful when Known; MaxWatermark once the input ended
	Lag       time.Duration // now - Watermark; 0 once the input ended
	Known     bool          // false until the first watermark
}

// watermarkStatus may be called from any goroutine.
func (t *task) watermarkStatus(now time.Time) WatermarkStatus {
	wm := t.inputWM.Load()
	if t.source != nil {
		wm = t.outputWM.Load()
	}
	switch wm {
	case watermark.Min:
		return WatermarkStatus{}
	case watermark.Max:
		return WatermarkStatus{Watermark: wm, Known: true}
	}
	return WatermarkStatus{Watermark: wm, Lag: now.Sub(time.UnixMilli(wm)), Known: true}
}

// sendIdle forwards a change of the idle status downstream.
func (t *task) sendIdle(idle bool) {
	if idle == t.idle || t.fin.ended {
		return // after the final watermark, nothing
	}
	t.idle = idle
	if idle {
		// The consumers' watermark moves on without this output now:
		// what an operator holds back for the next watermark goes first.
		for _, r := range t.runs {
			if r.Idle != nil {
				r.Idle()
			}
		}
	}
	ts := t.wm
	if err := t.out.watermark(ts, idle); err != nil {
		t.env.fail(err)
	}
}

// tick runs the operators' processing-time callbacks if one is due.
func (t *task) tick(now time.Time) error {
	if t.fin.ended || !t.env.wakeDue(now) {
		return nil
	}
	for _, r := range t.runs {
		if r.OnTime != nil {
			r.OnTime(now)
		}
	}
	return t.env.err
}

func (t *task) close() error {
	var errs []error
	for i := len(t.runs) - 1; i >= 0; i-- {
		if c := t.runs[i].Close; c != nil {
			errs = append(errs, c())
		}
	}
	if t.source != nil && t.source.Close != nil {
		errs = append(errs, t.source.Close())
	}
	errs = append(errs, t.env.state.Close())
	return errors.Join(errs...)
}

// flush pushes out partial batches, operators' first (they emit into out).
func (t *task) flush() error {
	if err := t.flushOperators(); err != nil {
		return err
	}
	return t.out.flush()
}

// dirty says whether the buffer timeout should flush the chain: its output
// has a partial batch, or an operator holds records back (OpRun.Held), which
// a watermark sent at the flush (AssignTimestamps') may release.
func (t *task) dirty() bool {
	if t.out.dirty() {
		return true
	}
	for _, r := range t.runs {
		if r.Held != nil && r.Held() {
			return true
		}
	}
	return false
}

// flushOperators has the operators emit what they buffer.
func (t *task) flushOperators() error {
	for _, r := range t.runs {
		if r.Flush != nil {
			if err := r.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *task) runSource() error {
	ctx := t.env.ctx
	var flushAt time.Time
	for {
		select {
		case c := <-t.mailbox:
			if err := t.onControl(c); err != nil {
				return err
			}
		default:
		}
		res, err := t.source.Poll()
		if err != nil {
			return err
		}
		if t.env.err != nil {
			return t.env.err
		}
		if res.Done {
			return nil
		}
		if t.source.Watermark != nil {
			if ts, idle := t.source.Watermark(); idle {
				t.sendIdle(true)
			} else {
				t.sendIdle(false)
				t.advance(ts)
			}
		}
		now := time.Now()
		t.env.metrics.pollLag(t.source.Lag, now)
		if err := t.tick(now); err != nil {
			return err
		}
		if t.dirty() {
			// Buffered records go out at the flush deadline, also while the
			// source waits: a paced or trickling source that flushed at
			// every wait sent a frame (and woke its consumers) per record
			// or two. Only a wait that would outlast the deadline flushes
			// first.
			now := time.Now()
			if flushAt.IsZero() {
				flushAt = now.Add(t.bufferTimeout)
			}
			if !now.Before(flushAt) || (res.Wait > 0 && !now.Add(res.Wait).Before(flushAt)) {
				if err := t.flush(); err != nil {
					return err
				}
				flushAt = time.Time{}
			}
		} else {
			flushAt = time.Time{} // flushed meanwhile (a barrier, a full batch)
		}
		if res.Wait > 0 {
			wait := res.Wait
			if !flushAt.IsZero() {
				wait = min(wait, time.Until(flushAt))
			}
			if !t.env.wakeAt.IsZero() {
				wait = min(wait, time.Until(t.env.wakeAt))
			}
			wait = max(wait, 0)
			timer := time.NewTimer(wait)
			idleFrom := t.env.metrics.clock()
			var c control
			got := false
			select {
			case <-ctx.Done():
			case c = <-t.mailbox:
				got = true
			case <-timer.C:
			}
			timer.Stop()
			t.env.metrics.idleSince(idleFrom)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if got {
				if err := t.onControl(c); err != nil {
					return err
				}
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (t *task) runGate() error {
	ctx := t.env.ctx
	// poll makes Gate.Next return at once when nothing is queued.
	poll, noWait := context.WithCancel(context.Background())
	noWait()
	var flushAt time.Time
	for {
		var d exchange.Delivery
		var err error
		// dirty: the output holds a partial batch, or an operator holds
		// records that a flush releases (a combiner waiting for the
		// watermark that AssignTimestamps sends at a flush).
		dirty := t.dirty()
		switch {
		case !dirty:
			flushAt = time.Time{}
		case flushAt.IsZero():
			flushAt = time.Now().Add(t.bufferTimeout)
		case !time.Now().Before(flushAt):
			// Input that never pauses must not hold a partial batch (or a
			// watermark in it) past the deadline.
			if err := t.flush(); err != nil {
				return err
			}
			flushAt = time.Time{}
		}
		got := false
		if t.out.dirty() {
			// With input queued, batches keep filling. With none, the
			// subtask is about to wait: what it holds goes out first, as a
			// source's does when its reader has nothing (a watermark in a
			// batch would otherwise wait for the deadline at every hop).
			d, err = t.gate.Next(poll)
			if got = !errors.Is(err, context.Canceled); !got {
				if err := t.flush(); err != nil {
					return err
				}
				if !t.dirty() {
					flushAt = time.Time{}
				}
			}
		}
		if !got {
			// Wait for input until an operator's processing-time callback,
			// the aligned timeout or, while an operator still holds
			// records, the flush deadline, whichever comes first.
			deadline := t.env.wakeAt
			alignAt := t.alignDeadline()
			for _, w := range []time.Time{alignAt, flushAt} {
				if !w.IsZero() && (deadline.IsZero() || w.Before(deadline)) {
					deadline = w
				}
			}
			waitFrom := t.env.metrics.clock()
			if !deadline.IsZero() {
				wctx, cancel := context.WithDeadline(ctx, deadline)
				d, err = t.gate.Next(wctx)
				cancel()
				t.env.metrics.idleSince(waitFrom)
				if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					now := time.Now()
					if !alignAt.IsZero() && !now.Before(alignAt) {
						if err := t.alignTimeout(now); err != nil {
							return err
						}
					}
					if err := t.tick(now); err != nil {
						return err
					}
					if !flushAt.IsZero() && !now.Before(flushAt) {
						if err := t.flush(); err != nil {
							return err
						}
						flushAt = time.Time{}
					}
					continue
				}
			} else {
				d, err = t.gate.Next(ctx)
				t.env.metrics.idleSince(waitFrom)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Index < 0 {
			if err := t.onControl(d.Frame.Local.(control)); err != nil {
				return err
			}
			continue
		}
		switch d.Frame.Kind {
		case exchange.KindRecords:
			if t.eod != nil && t.eod[d.Index] {
				return fmt.Errorf("input %d: records after the end of data", d.Index)
			}
			t.env.metrics.in(d.Frame.Count)
			t.record(&d)
			if err := t.decs[d.Index](&d.Frame, t.marks[d.Index]); err != nil {
				return err
			}
		case exchange.KindWatermark:
			if d.Frame.Idle {
				t.valveStatus(t.valve.Idle(d.Index))
			} else {
				t.valveStatus(t.valve.Watermark(d.Index, d.Frame.Timestamp))
			}
		case exchange.KindBarrier:
			if err := t.onBarrier(d.Index, d.Frame, d.Overtaken); err != nil {
				return err
			}
		case exchange.KindEnd:
			t.valveStatus(t.valve.End(d.Index))
			if u := t.inflight; u != nil {
				u.recording[d.Index] = false
			}
			if err := t.aligned(d.Index, t.aligner.End(d.Index, time.Now()), nil); err != nil {
				return err
			}
			// A producer restored finished ends without the end of data.
			if err := t.endOfData(d.Index); err != nil {
				return err
			}
		case exchange.KindEndOfData:
			if err := t.endOfData(d.Index); err != nil {
				return err
			}
		}
		if t.env.err != nil {
			return t.env.err
		}
		if !t.env.wakeAt.IsZero() {
			if err := t.tick(time.Now()); err != nil {
				return err
			}
		}
		// A subtask busy with backpressured input never waits in Next, so
		// the aligned timeout is also checked after every frame.
		if at := t.alignDeadline(); !at.IsZero() {
			if now := time.Now(); !now.Before(at) {
				if err := t.alignTimeout(now); err != nil {
					return err
				}
			}
		}
	}
}

// valveStatus carries out a change of the input watermark or idleness.
func (t *task) valveStatus(s watermark.Status) {
	if s.IdleChanged && s.Idle {
		t.sendIdle(true)
	}
	if s.Advanced {
		t.sendIdle(false)
		t.advance(s.Watermark)
	}
	if s.IdleChanged && !s.Idle {
		t.sendIdle(false)
	}
}
