package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/internal/align"
	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/internal/watermark"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	// batchBytes is the size at which an encoded batch is sent: large enough
	// to amortise per-frame costs, small enough to keep latency and memory low.
	batchBytes = 32 << 10
	// localBatch is the record count at which an in-memory batch is sent.
	localBatch = 512
	// bufferTimeout bounds how long a record may wait in a partial batch.
	bufferTimeout = 5 * time.Millisecond
)

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
	// restored holds each operator's restored items, by uid; restoredAll
	// holds every subtask's (see TaskInfo.RestoredAll).
	restored, restoredAll map[string][][]byte
	// restoredParallelism is the vertex's parallelism in the checkpoint
	// restored (0: none): it differs from parallelism when rescaled.
	restoredParallelism int
	// checkpointing says whether the job takes checkpoints.
	checkpointing bool
	// wakeAt is the earliest processing time an operator asked to be called
	// back at (onTime); zero when none did.
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

// declare records a keyed state of operator uid. A restored state of that
// name declared with another type fails the task for good: the job reads
// its saved state as something it is not (another job's savepoint, or a
// changed type or codec); a restore with the intended types, or a fresh
// start, is what the user must choose.
func (e *subtaskEnv) declare(uid, name, typ string) {
	e.declared = append(e.declared, &weirv1.StateInfo{Uid: uid, Name: name, Type: typ})
	if old, ok := e.restoredStates[stateKey(uid, name)]; ok && old.GetType() != typ {
		e.fail(Permanent(fmt.Errorf("operator %s declares state %q as %s, but the restored snapshot holds it as %s: "+
			"restore with the types it was saved with, or start the job without this snapshot", uid, printableName(name), typ, old.GetType())))
	}
}

// printableName shows the runtime's own state names (they start with a
// NUL byte) readably.
func printableName(name string) string { return strings.TrimPrefix(name, "\x00") }

// now is the subtask's processing time.
func (e *subtaskEnv) now() time.Time {
	if e.clock != nil {
		return e.clock()
	}
	return time.Now()
}

// wake asks the subtask loop to call the operators' onTime at or after at.
func (e *subtaskEnv) wake(at time.Time) {
	if e.wakeAt.IsZero() || at.Before(e.wakeAt) {
		e.wakeAt = at
	}
}

// fail records the first error of the chain; the subtask loop checks it
// after every batch. Operators cannot return errors per record without
// slowing the common path.
func (e *subtaskEnv) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// opEnv is one operator's view of its subtask. It implements TaskInfo.
type opEnv struct {
	*subtaskEnv
	uid string
	// emitWatermark passes a watermark to the rest of the chain: the next
	// operator's watermark handler, or the output.
	emitWatermark func(ts int64)
	// sides holds the emit function of each side output (func(S)).
	sides []any
}

func (e *opEnv) Subtask() int     { return e.subtask }
func (e *opEnv) Parallelism() int { return e.parallelism }
func (e *opEnv) Attempt() int64   { return e.attempt }
func (e *opEnv) JobID() string    { return e.jobID }
func (e *opEnv) UID() string      { return e.uid }

// Restored returns the operator's state items from the checkpoint the
// subtask restored, if any.
func (e *opEnv) Restored() ([][]byte, bool) {
	items, ok := e.restored[e.uid]
	return items, ok
}

func (e *opEnv) RestoredAll() ([][]byte, bool) {
	items, ok := e.restoredAll[e.uid]
	return items, ok
}

func (e *opEnv) Checkpointing() bool  { return e.checkpointing }
func (e *opEnv) Logger() *slog.Logger { return e.logger }

// opRun is an operator instance: in is a func(T) over its input type.
type opRun struct {
	in  any
	in2 any // second input of a two-input operator (func(T2))
	// watermark handles the operator's input watermark, which only
	// advances; it fires what is due and forwards it with emitWatermark.
	// Without one the watermark passes through.
	watermark func(ts int64)
	// onTime is called in the subtask goroutine at or after the time the
	// operator asked for with wake.
	onTime   func(now time.Time)
	finish   func() error                     // end of input: emit final results
	flush    func() error                     // buffer timeout: push out buffered output
	close    func() error                     // always last
	snapshot func(id int64) ([][]byte, error) // checkpoint barrier: the operator's state
	notify   func(id int64) error             // checkpoint id completed
	// restoredWM, when set, is the watermark the operator restored from
	// the checkpoint (watermark.Min: none). Before any input the task
	// passes it on downstream of the operator, and when the operator is
	// its chain's watermark entry (the first with a watermark handler) in
	// a subtask with inputs, the subtask's input watermark starts there.
	restoredWM func() int64
}

type sourceRun struct {
	poll func() (Poll, error)
	// watermark reports the reader's own watermark after a poll, when it
	// implements WatermarkSource.
	watermark func() (ts int64, idle bool)
	// lag is the reader when it implements LagReporter.
	lag      LagReporter
	close    func() error
	snapshot func() ([][]byte, error) // the reader's splits and positions
}

// streamType is what the runtime needs to know of a stream's record type.
type streamType interface {
	newOutput(env *subtaskEnv, edges []outEdge) (emit any, out output)
	discard() any
	decoder(emit any) func(*exchange.Frame) error
}

// outEdge is one outgoing edge of a subtask: a sender per consumer channel.
type outEdge struct {
	part    weirv1.Partitioning
	keyHash func() any
	senders []exchange.Sender
	local   []bool
}

// output is the untyped face of a subtask's writers.
type output interface {
	dirty() bool
	flush() error
	end() error
	// barrier sends checkpoint barrier id on every channel, after flush.
	barrier(id, ts int64, savepoint bool) error
	// watermark sends watermark ts, or the idle marker, on every channel,
	// after flush: records before it stay before it.
	watermark(ts int64, idle bool) error
}

type typedStream[T any] struct{ codec Codec[T] }

func (t typedStream[T]) discard() any { return func(T) {} }

func (t typedStream[T]) decoder(emit any) func(*exchange.Frame) error {
	f := emit.(func(T))
	codec := t.codec
	return func(fr *exchange.Frame) error {
		if fr.Local != nil {
			for _, v := range fr.Local.([]T) {
				f(v)
			}
			return nil
		}
		b := fr.Data
		for range fr.Count {
			n, k := binary.Uvarint(b)
			if k <= 0 || n > uint64(len(b)-k) {
				return fmt.Errorf("%w: corrupt batch framing", ErrDecode)
			}
			v, err := codec.Decode(b[k : k+int(n)])
			if err != nil {
				return err
			}
			f(v)
			b = b[k+int(n):]
		}
		return nil
	}
}

type typedOutput[T any] struct {
	env     *subtaskEnv
	codec   Codec[T]
	edges   []*edgeWriter[T]
	scratch []byte
	pending int // channels holding a partial batch
	// tap is the subtask's tap slot on its main output, nil on side outputs.
	tap *atomic.Pointer[tapState]
}

type edgeWriter[T any] struct {
	part  weirv1.Partitioning
	hash  func(T) uint64
	rr    int
	chans []*chanWriter[T]
}

type chanWriter[T any] struct {
	s     exchange.Sender
	local bool
	recs  []T
	buf   []byte
	n     int
}

func (t typedStream[T]) newOutput(env *subtaskEnv, edges []outEdge) (any, output) {
	o := &typedOutput[T]{env: env, codec: t.codec}
	for _, e := range edges {
		ew := &edgeWriter[T]{part: e.part, rr: env.subtask}
		if e.keyHash != nil {
			ew.hash = e.keyHash().(func(T) uint64)
		}
		for i, s := range e.senders {
			ew.chans = append(ew.chans, &chanWriter[T]{s: s, local: e.local[i]})
		}
		o.edges = append(o.edges, ew)
	}
	return o.emit, o
}

func (o *typedOutput[T]) emit(v T) {
	for _, e := range o.edges {
		switch e.part {
		case weirv1.Partitioning_PARTITIONING_HASH:
			g := keygroup.Of(e.hash(v), o.env.maxParallelism)
			o.add(e.chans[keygroup.Subtask(g, o.env.maxParallelism, len(e.chans))], v)
		case weirv1.Partitioning_PARTITIONING_REBALANCE:
			e.rr = (e.rr + 1) % len(e.chans)
			o.add(e.chans[e.rr], v)
		case weirv1.Partitioning_PARTITIONING_BROADCAST:
			for _, c := range e.chans {
				o.add(c, v)
			}
		default:
			o.add(e.chans[0], v)
		}
	}
}

func (o *typedOutput[T]) add(c *chanWriter[T], v T) {
	if c.local {
		if len(c.recs) == 0 {
			o.pending++
		}
		c.recs = append(c.recs, v)
		if len(c.recs) >= localBatch {
			o.send(c)
		}
		return
	}
	if c.n == 0 {
		o.pending++
		if c.buf == nil {
			c.buf = make([]byte, 0, batchBytes+batchBytes/4)
		}
	}
	o.scratch = o.codec.Append(o.scratch[:0], v)
	c.buf = binary.AppendUvarint(c.buf, uint64(len(o.scratch)))
	c.buf = append(c.buf, o.scratch...)
	c.n++
	if len(c.buf) >= batchBytes {
		o.send(c)
	}
}

// send hands the channel's batch to its sender (which takes ownership).
func (o *typedOutput[T]) send(c *chanWriter[T]) {
	var f exchange.Frame
	switch {
	case c.local && len(c.recs) > 0:
		f = exchange.Frame{Kind: exchange.KindRecords, Local: c.recs, Count: len(c.recs)}
	case !c.local && c.n > 0:
		f = exchange.Frame{Kind: exchange.KindRecords, Data: c.buf, Count: c.n}
	default:
		return
	}
	defer o.reset(c)
	o.pending--
	m := &o.env.metrics
	m.out(f.Count)
	if o.tap != nil {
		if s := o.tap.Load(); s != nil {
			o.sample(s, c, time.Now())
		}
	}
	// Send blocks only while downstream has given no credit.
	start := m.clock()
	if err := c.s.Send(o.env.ctx, f); err != nil {
		o.env.fail(fmt.Errorf("send to downstream: %w", err))
	}
	m.backpressuredSince(start)
}

// reset gives the channel a fresh batch: the sender owns the sent one.
func (o *typedOutput[T]) reset(c *chanWriter[T]) {
	if c.local {
		c.recs = make([]T, 0, localBatch)
	} else {
		c.buf, c.n = nil, 0
	}
}

func (o *typedOutput[T]) dirty() bool { return o.pending > 0 }

func (o *typedOutput[T]) flush() error {
	for _, e := range o.edges {
		for _, c := range e.chans {
			o.send(c)
		}
	}
	return o.env.err
}

// broadcastFrame flushes, then sends f on every channel.
func (o *typedOutput[T]) broadcastFrame(f exchange.Frame) error {
	if err := o.flush(); err != nil {
		return err
	}
	for _, e := range o.edges {
		for _, c := range e.chans {
			if err := c.s.Send(o.env.ctx, f); err != nil {
				return fmt.Errorf("%v to downstream: %w", f.Kind, err)
			}
		}
	}
	return nil
}

func (o *typedOutput[T]) barrier(id, ts int64, savepoint bool) error {
	return o.broadcastFrame(exchange.Frame{Kind: exchange.KindBarrier, CheckpointID: id, Timestamp: ts, Savepoint: savepoint})
}

func (o *typedOutput[T]) watermark(ts int64, idle bool) error {
	return o.broadcastFrame(exchange.Frame{Kind: exchange.KindWatermark, Timestamp: ts, Idle: idle})
}

func (o *typedOutput[T]) end() error {
	if err := o.broadcastFrame(exchange.Frame{Kind: exchange.KindEnd}); err != nil {
		return err
	}
	for _, e := range o.edges {
		for _, c := range e.chans {
			if err := c.s.Close(); err != nil {
				return fmt.Errorf("close channel: %w", err)
			}
		}
	}
	return nil
}

// noOutput is the output of a chain ending in a sink.
type noOutput struct{}

func (noOutput) dirty() bool  { return false }
func (noOutput) flush() error { return nil }
func (noOutput) end() error   { return nil }

func (noOutput) barrier(int64, int64, bool) error { return nil }
func (noOutput) watermark(int64, bool) error      { return nil }

// outputs is the output of a chain whose tail has side outputs: the main
// output and each side output's writers, as one.
type outputs []output

func (os outputs) dirty() bool {
	for _, o := range os {
		if o.dirty() {
			return true
		}
	}
	return false
}

func (os outputs) each(f func(output) error) error {
	for _, o := range os {
		if err := f(o); err != nil {
			return err
		}
	}
	return nil
}

func (os outputs) flush() error { return os.each(output.flush) }
func (os outputs) end() error   { return os.each(output.end) }
func (os outputs) barrier(id, ts int64, savepoint bool) error {
	return os.each(func(o output) error { return o.barrier(id, ts, savepoint) })
}
func (os outputs) watermark(ts int64, idle bool) error {
	return os.each(func(o output) error { return o.watermark(ts, idle) })
}

// task is one subtask ready to run: its chain is built and its channels open.
type task struct {
	env    *subtaskEnv
	v      *vertex
	runs   []opRun // head first; the head is empty for sources
	source *sourceRun
	out    output
	gate   *exchange.Gate
	decs   []func(*exchange.Frame) error // by gate channel index

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
}

// run drives the subtask to the end of its input; its operators are closed
// whatever happens, panics included (run's caller recovers them).
func (t *task) run() (err error) {
	defer func() { err = errors.Join(err, t.close()) }()
	t.resume()
	if t.env.err != nil {
		return t.env.err
	}
	if t.source != nil {
		err = t.runSource()
	} else {
		err = t.runGate()
	}
	if err != nil {
		return err
	}
	// The end of a bounded input is the final watermark: every window and
	// event-time timer fires before the operators finish.
	t.advance(watermark.Max)
	if t.env.err != nil {
		return t.env.err
	}
	for _, r := range t.runs {
		if r.finish != nil {
			if err := r.finish(); err != nil {
				return err
			}
		}
		if t.env.err != nil {
			return t.env.err
		}
	}
	return t.out.end()
}

// resume starts a restored subtask at the watermarks it restored, before
// any input: a source reader's (the minimum over its restored splits') goes
// into the chain, each operator's own goes downstream of it, and a subtask
// with inputs starts its input watermark (and its valve) at its entry
// operator's. So a restored subtask reports its watermark at once and its
// consumers get one on every channel without waiting for new records; a
// watermark not newer than a restored one is dropped as stale anyway.
func (t *task) resume() {
	if t.source != nil && t.source.watermark != nil {
		if ts, idle := t.source.watermark(); !idle && ts != watermark.Min {
			t.advance(ts)
		}
	}
	for j, r := range t.runs {
		if r.restoredWM == nil {
			continue
		}
		ts := r.restoredWM()
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

// watermarkStatus is a subtask's event-time progress, as metrics report it:
// its input watermark (for a source chain, which has none, the one it
// sends), and the lag of that watermark behind the wall clock. A restored
// subtask knows its restored watermark from the start.
type watermarkStatus struct {
	Watermark int64         // unix ms; meaningful when Known; MaxWatermark once the input ended
	Lag       time.Duration // now - Watermark; 0 once the input ended
	Known     bool          // false until the first watermark
}

// watermarkStatus may be called from any goroutine.
func (t *task) watermarkStatus(now time.Time) watermarkStatus {
	wm := t.inputWM.Load()
	if t.source != nil {
		wm = t.outputWM.Load()
	}
	switch wm {
	case watermark.Min:
		return watermarkStatus{}
	case watermark.Max:
		return watermarkStatus{Watermark: wm, Known: true}
	}
	return watermarkStatus{Watermark: wm, Lag: now.Sub(time.UnixMilli(wm)), Known: true}
}

// sendIdle forwards a change of the idle status downstream.
func (t *task) sendIdle(idle bool) {
	if idle == t.idle {
		return
	}
	t.idle = idle
	ts := t.wm
	if err := t.out.watermark(ts, idle); err != nil {
		t.env.fail(err)
	}
}

// tick runs the operators' processing-time callbacks if one is due.
func (t *task) tick(now time.Time) error {
	if t.env.wakeAt.IsZero() || now.Before(t.env.wakeAt) {
		return nil
	}
	t.env.wakeAt = time.Time{}
	for _, r := range t.runs {
		if r.onTime != nil {
			r.onTime(now)
		}
	}
	return t.env.err
}

func (t *task) close() error {
	var errs []error
	for i := len(t.runs) - 1; i >= 0; i-- {
		if c := t.runs[i].close; c != nil {
			errs = append(errs, c())
		}
	}
	if t.source != nil && t.source.close != nil {
		errs = append(errs, t.source.close())
	}
	errs = append(errs, t.env.state.Close())
	return errors.Join(errs...)
}

// flush pushes out partial batches, operators' first (they emit into out).
func (t *task) flush() error {
	for _, r := range t.runs {
		if r.flush != nil {
			if err := r.flush(); err != nil {
				return err
			}
		}
	}
	return t.out.flush()
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
		res, err := t.source.poll()
		if err != nil {
			return err
		}
		if t.env.err != nil {
			return t.env.err
		}
		if res.Done {
			return nil
		}
		if t.source.watermark != nil {
			if ts, idle := t.source.watermark(); idle {
				t.sendIdle(true)
			} else {
				t.sendIdle(false)
				t.advance(ts)
			}
		}
		now := time.Now()
		t.env.metrics.pollLag(t.source.lag, now)
		if err := t.tick(now); err != nil {
			return err
		}
		if t.out.dirty() {
			now := time.Now()
			switch {
			case res.Wait > 0 || (!flushAt.IsZero() && now.After(flushAt)):
				if err := t.flush(); err != nil {
					return err
				}
				flushAt = time.Time{}
			case flushAt.IsZero():
				flushAt = now.Add(bufferTimeout)
			}
		}
		if res.Wait > 0 {
			wait := res.Wait
			if !t.env.wakeAt.IsZero() {
				wait = max(min(wait, time.Until(t.env.wakeAt)), 0)
			}
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
	var flushAt time.Time
	for {
		var d exchange.Delivery
		var err error
		dirty := t.out.dirty()
		if dirty && flushAt.IsZero() {
			flushAt = time.Now().Add(bufferTimeout)
		} else if !dirty {
			flushAt = time.Time{}
		}
		// Wait for input until the buffer timeout or an operator's
		// processing-time callback, whichever comes first.
		deadline := flushAt
		if w := t.env.wakeAt; !w.IsZero() && (deadline.IsZero() || w.Before(deadline)) {
			deadline = w
		}
		waitFrom := t.env.metrics.clock()
		if !deadline.IsZero() {
			wctx, cancel := context.WithDeadline(ctx, deadline)
			d, err = t.gate.Next(wctx)
			cancel()
			t.env.metrics.idleSince(waitFrom)
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				now := time.Now()
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
			t.env.metrics.in(d.Frame.Count)
			if err := t.decs[d.Index](&d.Frame); err != nil {
				return err
			}
		case exchange.KindWatermark:
			if d.Frame.Idle {
				t.valveStatus(t.valve.Idle(d.Index))
			} else {
				t.valveStatus(t.valve.Watermark(d.Index, d.Frame.Timestamp))
			}
		case exchange.KindBarrier:
			if _, seen := t.barriers[d.Frame.CheckpointID]; !seen {
				t.barriers[d.Frame.CheckpointID] = d.Frame
			}
			if err := t.aligned(d.Index, t.aligner.Barrier(d.Index, d.Frame.CheckpointID, time.Now())); err != nil {
				return err
			}
		case exchange.KindEnd:
			t.valveStatus(t.valve.End(d.Index))
			if err := t.aligned(d.Index, t.aligner.End(d.Index, time.Now())); err != nil {
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

// aligned carries out the aligner's decision for a barrier or end of channel.
func (t *task) aligned(index int, dec align.Decision) error {
	if dec.Block {
		t.gate.Block(index)
	}
	if dec.Abandoned > 0 {
		delete(t.barriers, dec.Abandoned)
	}
	if dec.Aligned {
		b := t.barriers[dec.ID]
		delete(t.barriers, dec.ID)
		if err := t.checkpoint(dec.ID, b.Timestamp, b.Savepoint, dec.Alignment); err != nil {
			return err
		}
	}
	for _, i := range dec.Unblock {
		t.gate.Unblock(i)
	}
	return nil
}
