package runtime

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/uvarintframe"
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

// StreamType is what the runtime needs to know of a stream's record type:
// how to write records to the exchange and read them back. Records makes
// one from a codec.
type StreamType interface {
	newOutput(env *subtaskEnv, edges []outEdge) (emit any, out output)
	discard() any
	decoder(emit any) func(*exchange.Frame) error
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
	local   []bool
}

// output is the untyped face of a subtask's writers.
type output interface {
	dirty() bool
	flush() error
	end() error
	// barrier sends checkpoint barrier id on every channel, after flush. An
	// unaligned barrier does not wait for credit: partial batches go as
	// overdraft and the barrier overtakes them at the consumer.
	barrier(id, ts int64, savepoint, unaligned bool) error
	// watermark sends watermark ts, or the idle marker, on every channel,
	// after flush: records before it stay before it.
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

func (t records[T]) decoder(emit any) func(*exchange.Frame) error {
	f := emit.(func(T))
	codec := t.codec
	return func(fr *exchange.Frame) error {
		if fr.Local != nil {
			for _, v := range fr.Local.([]T) {
				f(v)
			}
			return nil
		}
		r := uvarintframe.NewReader(fr.Data)
		for range fr.Count {
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
	c.buf = uvarintframe.AppendBytes(c.buf, o.scratch)
	c.n++
	if len(c.buf) >= batchBytes {
		o.send(c)
	}
}

// send hands the channel's batch to its sender (which takes ownership).
func (o *typedOutput[T]) send(c *chanWriter[T]) { o.sendBatch(c, false) }

// sendBatch sends the channel's batch, without waiting for credit when
// overdraft.
func (o *typedOutput[T]) sendBatch(c *chanWriter[T], overdraft bool) {
	var f exchange.Frame
	switch {
	case c.local && len(c.recs) > 0:
		f = exchange.Frame{Kind: exchange.KindRecords, Local: c.recs, Count: len(c.recs), Overdraft: overdraft}
	case !c.local && c.n > 0:
		f = exchange.Frame{Kind: exchange.KindRecords, Data: c.buf, Count: c.n, Overdraft: overdraft}
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

// broadcastFrame flushes, then sends f on every channel. With an unaligned
// barrier the partial batches go as overdraft, so nothing waits for credit.
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
func (os outputs) barrier(id, ts int64, savepoint, unaligned bool) error {
	return os.each(func(o output) error { return o.barrier(id, ts, savepoint, unaligned) })
}
func (os outputs) watermark(ts int64, idle bool) error {
	return os.each(func(o output) error { return o.watermark(ts, idle) })
}
