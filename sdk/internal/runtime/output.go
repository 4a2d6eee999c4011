package runtime

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/internal/watermark"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	// batchBytes is the size at which an encoded batch is sent: large enough
	// to amortise per-frame costs, small enough to keep latency and memory low.
	batchBytes = 32 << 10
	// batchBufBytes is an encoded batch's buffer: room for the record that
	// takes it past batchBytes.
	batchBufBytes = batchBytes + batchBytes/4
	// localBatch is the record count at which an in-memory batch is sent.
	localBatch = 512
	// bufferTimeout is the default of Graph.BufferTimeout: how long a
	// record, or a watermark, may wait in a partial batch while the subtask
	// is busy, the flush deadline that keeps latency bounded when a channel
	// is too slow to fill its batch. (A gate-fed subtask that runs out of
	// input flushes at once.)
	bufferTimeout = 5 * time.Millisecond
)

// StreamType is what the runtime needs to know of a stream's record type:
// how to write records to the exchange and read them back. Records makes
// one from a codec.
type StreamType interface {
	newOutput(env *subtaskEnv, edges []outEdge) (emit any, out output)
	discard() any
	// decoder's func hands a record frame's records to emit and its
	// watermarks (Frame.Marks), each at its place, to mark.
	decoder(emit any) func(f *exchange.Frame, mark func(ts int64)) error
	// encoded returns a record frame's batch as the remote encoding, the
	// records as uvarint-length-prefixed encodings: Data as is, a local
	// batch encoded (for in-flight data of unaligned snapshots).
	encoded(f *exchange.Frame) []byte
}

// outEdge is one outgoing edge of a subtask: a sender per consumer channel.
type outEdge struct {
	part    weirv1.Partitioning
	keyHash func() any
	senders []exchange.Sender
	local   []bool // by sender: exchange.IsLocal
}

// output is the untyped face of a subtask's writers.
type output interface {
	dirty() bool
	flush() error
	end() error
	// endOfData tells every consumer, at once, that no record follows:
	// the subtask's input ended and its operators finished.
	endOfData() error
	// barrier sends checkpoint barrier id on every channel, after flush. An
	// unaligned barrier does not wait for credit: partial batches go as
	// overdraft and the barrier overtakes them at the consumer.
	barrier(id, ts int64, savepoint, unaligned bool) error
	// watermark sends watermark ts, or the idle marker, on every channel,
	// at its place among the records: the ones before it stay before it and
	// the ones after after. A watermark does not flush: it goes into each
	// channel's batch (see typedOutput.watermark).
	watermark(ts int64, idle bool) error
}

// Records is the StreamType of records of type T encoded by codec. Records
// cross the exchange in batches: in memory to a subtask of this process,
// else as uvarint-length-prefixed encodings.
func Records[T any](codec Codec[T]) StreamType { return records[T]{codec: codec} }

type records[T any] struct{ codec Codec[T] }

func (t records[T]) discard() any { return func(T) {} }

func (t records[T]) encoded(f *exchange.Frame) []byte {
	if f.Local == nil {
		return f.Data
	}
	var buf, scratch []byte
	for _, v := range f.Local.([]T) {
		scratch = t.codec.Append(scratch[:0], v)
		buf = uvarintframe.AppendBytes(buf, scratch)
	}
	return buf
}

func (t records[T]) decoder(emit any) func(*exchange.Frame, func(int64)) error {
	f := emit.(func(T))
	codec := t.codec
	return func(fr *exchange.Frame, mark func(int64)) error {
		mc := newMarkCursor(fr.Marks)
		if fr.Local != nil {
			for i, v := range fr.Local.([]T) {
				if i == mc.next {
					mc.deliver(i, mark)
				}
				f(v)
			}
			mc.deliver(fr.Count, mark)
			return nil
		}
		r := uvarintframe.NewReader(fr.Data)
		for i := range fr.Count {
			if i == mc.next {
				mc.deliver(i, mark)
			}
			rec := r.Frame()
			if r.Err() != nil {
				return fmt.Errorf("%w: corrupt batch framing: %w", ErrDecode, r.Err())
			}
			v, err := codec.Decode(rec)
			if err != nil {
				return err
			}
			f(v)
		}
		mc.deliver(fr.Count, mark)
		return nil
	}
}

// markCursor walks a batch's watermarks (exchange.Frame.Marks) alongside
// its records: next is the position of the next one (-1: none left), so a
// decoder checks one int per record.
type markCursor struct {
	marks []exchange.Mark
	next  int
}

func newMarkCursor(marks []exchange.Mark) markCursor {
	c := markCursor{marks: marks, next: -1}
	if len(marks) > 0 {
		c.next = marks[0].At
	}
	return c
}

// deliver hands mark the watermarks at position i, all that are left when i
// is the batch's count.
func (c *markCursor) deliver(i int, mark func(int64)) {
	for len(c.marks) > 0 && c.marks[0].At <= i {
		mark(c.marks[0].Timestamp)
		c.marks = c.marks[1:]
	}
	c.next = -1
	if len(c.marks) > 0 {
		c.next = c.marks[0].At
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
	s exchange.Sender
	// local: an in-memory channel, which takes []T batches (recs) and owns
	// each once sent; a remote one takes encoded batches (buf) and is done
	// with one when Send returns, so buf takes the next batch.
	local bool
	recs  []T
	buf   []byte
	n     int
	// marks are the watermarks in the batch, at their places among its
	// records (exchange.Frame.Marks).
	marks []exchange.Mark
}

// dirty reports whether the channel holds a partial batch or a watermark.
func (c *chanWriter[T]) dirty() bool { return len(c.recs) > 0 || c.n > 0 || len(c.marks) > 0 }

// count is the number of records in the channel's batch.
func (c *chanWriter[T]) count() int {
	if c.local {
		return len(c.recs)
	}
	return c.n
}

// mark puts watermark ts into the batch after its records so far. One
// already at that place says less, so ts replaces it.
func (c *chanWriter[T]) mark(ts int64) {
	n := c.count()
	if k := len(c.marks); k > 0 && c.marks[k-1].At == n {
		c.marks[k-1].Timestamp = ts
		return
	}
	c.marks = append(c.marks, exchange.Mark{At: n, Timestamp: ts})
}

func (t records[T]) newOutput(env *subtaskEnv, edges []outEdge) (any, output) {
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
	if !c.dirty() {
		o.pending++
	}
	if c.local {
		c.recs = append(c.recs, v)
		if len(c.recs) >= localBatch {
			o.send(c)
		}
		return
	}
	if c.buf == nil {
		c.buf = make([]byte, 0, batchBufBytes)
	}
	o.scratch = o.codec.Append(o.scratch[:0], v)
	c.buf = uvarintframe.AppendBytes(c.buf, o.scratch)
	c.n++
	if len(c.buf) >= batchBytes {
		o.send(c)
	}
}

// send hands the channel's batch to its sender (a local one takes
// ownership; see reset).
func (o *typedOutput[T]) send(c *chanWriter[T]) { o.sendBatch(c, false) }

// sendBatch sends the channel's batch with the watermarks in it, without
// waiting for credit when overdraft. A batch of watermarks alone goes as a
// watermark frame, which costs no credit: all its marks are at 0, so there
// is one.
func (o *typedOutput[T]) sendBatch(c *chanWriter[T], overdraft bool) {
	var f exchange.Frame
	switch {
	case c.local && len(c.recs) > 0:
		f = exchange.Frame{Kind: exchange.KindRecords, Local: c.recs, Count: len(c.recs), Marks: c.marks, Overdraft: overdraft}
	case !c.local && c.n > 0:
		f = exchange.Frame{Kind: exchange.KindRecords, Data: c.buf, Count: c.n, Marks: c.marks, Overdraft: overdraft}
	case len(c.marks) > 0:
		o.pending--
		f = exchange.Frame{Kind: exchange.KindWatermark, Timestamp: c.marks[len(c.marks)-1].Timestamp}
		c.marks = nil
		if err := c.s.Send(o.env.ctx, f); err != nil {
			o.env.fail(fmt.Errorf("send watermark to downstream: %w", err))
		}
		return
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

// reset gives the channel a fresh batch: the consumer owns a sent []T.
// A remote sender is done with an encoded batch once sent, so its buffer is
// emptied for the next one: allocating and zeroing 40 KiB per 32 KiB batch
// cost 2–3% of the CPU of q4 and q8 at p=2 (memory clearing 20–24 → 9–10 ms
// per million events). One that a large record grew is let go.
func (o *typedOutput[T]) reset(c *chanWriter[T]) {
	switch {
	case c.local:
		c.recs = make([]T, 0, localBatch)
	case cap(c.buf) <= batchBufBytes:
		c.buf, c.n = c.buf[:0], 0
	default:
		c.buf, c.n = nil, 0
	}
	c.marks = nil
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

// broadcastFrame flushes (partial batches and the watermarks in them), then
// sends f on every channel. With an unaligned barrier the partial
// batches go as overdraft, so nothing waits for credit.
func (o *typedOutput[T]) broadcastFrame(f exchange.Frame) error {
	for _, e := range o.edges {
		for _, c := range e.chans {
			o.sendBatch(c, f.Unaligned)
		}
	}
	if o.env.err != nil {
		return o.env.err
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

func (o *typedOutput[T]) barrier(id, ts int64, savepoint, unaligned bool) error {
	return o.broadcastFrame(exchange.Frame{Kind: exchange.KindBarrier, CheckpointID: id, Timestamp: ts, Savepoint: savepoint, Unaligned: unaligned})
}

// watermark puts watermark ts into each channel's batch, in band, instead
// of flushing the batch: flushing at every watermark kept remote batches at
// a tenth of their size and made the exchange round-trip bound (issue 20).
// The consumer sees it exactly where it was emitted among the records (a
// record after it may be late). The batch goes out when full, when a
// gate-fed subtask runs out of input or a source is to wait past the flush
// deadline, or at the latest at that deadline (Graph.BufferTimeout); a
// channel without records then sends the watermark as a
// watermark frame. The idle marker and the final watermark (end of input)
// are rare and urgent: they flush and go out at once.
//
// A channel that got no record over a whole watermark interval is quiet:
// its batch goes out at the second watermark after its last record instead
// of at the deadline. That is where results wait: a combiner's partials or
// a window's panes come out in a burst when the watermark passes, and then
// nothing follows them until the next window. A busy channel gets records
// between any two watermarks and keeps filling its batch.
func (o *typedOutput[T]) watermark(ts int64, idle bool) error {
	if idle || ts == watermark.Max {
		return o.broadcastFrame(exchange.Frame{Kind: exchange.KindWatermark, Timestamp: ts, Idle: idle})
	}
	for _, e := range o.edges {
		for _, c := range e.chans {
			if !c.dirty() {
				o.pending++
			}
			n := c.count()
			quiet := n > 0 && len(c.marks) > 0 && c.marks[len(c.marks)-1].At == n
			c.mark(ts)
			if quiet {
				o.send(c)
			}
		}
	}
	return o.env.err
}

func (o *typedOutput[T]) endOfData() error {
	return o.broadcastFrame(exchange.Frame{Kind: exchange.KindEndOfData})
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

func (noOutput) endOfData() error { return nil }

func (noOutput) barrier(int64, int64, bool, bool) error { return nil }
func (noOutput) watermark(int64, bool) error            { return nil }

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

func (os outputs) endOfData() error { return os.each(output.endOfData) }
func (os outputs) barrier(id, ts int64, savepoint, unaligned bool) error {
	return os.each(func(o output) error { return o.barrier(id, ts, savepoint, unaligned) })
}
func (os outputs) watermark(ts int64, idle bool) error {
	return os.each(func(o output) error { return o.watermark(ts, idle) })
}
