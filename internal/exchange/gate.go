package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// Delivery is one frame handed to the consumer by Gate.Next.
type Delivery struct {
	Channel ChannelID
	Index   int // position of Channel in the slice given to Network.Gate
	Frame   Frame
	// Overtaken is set on an overtaking barrier (an Unaligned one, or one
	// Gate.Overtake promoted): the record frames that were queued ahead of
	// it on its channel when it overtook them. They are still delivered, in
	// order, after the barrier; the consumer stores them with its snapshot.
	// The frames share Data and Local with those deliveries: read only.
	Overtaken []Frame
}

// Gate is the input side of one consumer subtask: all its input channels, of
// all input edges. Next is not safe for concurrent use: one consumer
// goroutine drives a gate. Block, Unblock and Close may be called from any
// goroutine.
type Gate struct {
	n      *Network
	chans  []*inChan
	window int // Options.Window
	// wake tells a waiting Next that something changed: a frame arrived, a
	// channel broke or was unblocked, or the gate closed. A token may be stale;
	// Next re-checks under mu.
	wake chan struct{}

	mu struct {
		sync.Mutex
		closed bool
		// next is where the scan for a frame starts, so that channels
		// take turns (see pickLocked).
		next int
		// passedOver counts the frames in a row taken from a lagging
		// channel over the first ready one in turn.
		passedOver int
		// last is the index of the channel whose frame Next returned last and
		// whose credit (lastCost) is still owed, or -1. The credit goes back
		// on the following Next: until then the consumer may still be using
		// the frame.
		last     int
		lastCost int
		// overtaking: barriers of this checkpoint overtake the frames
		// queued ahead of them (Overtake); 0: none.
		overtaking int64
		// prio holds overtaking barriers, delivered before any queued frame.
		prio []Delivery
		// announced is the newest barrier queued behind other frames (not
		// a savepoint's): see Announced.
		announced Frame
		ended     int // KindEnd frames delivered
		broken    int // channels with err set
		// mail holds control messages for the consumer (Post).
		mail []Frame
	}
}

type producerKind uint8

const (
	noProducer producerKind = iota
	localProducer
	remoteProducer
)

// inChan is one input channel of a gate. Fields below the comment are guarded
// by g.mu: a single lock per gate keeps Next's scan over all channels cheap.
type inChan struct {
	g     *Gate
	id    ChannelID
	index int
	// wake (capacity 1) signals the producer side that credit came back or
	// the gate closed: a local sender waiting for credit, or the stream
	// handler that forwards credits to a remote producer.
	wake chan struct{}

	// Guarded by g.mu.
	queue    queue
	charged  int // credit (bytes) of the queued frames
	free     int // queued frames that cost no credit
	producer producerKind
	credits  int  // local producer: credit (bytes) it holds
	owed     int  // remote producer: credit consumed but not yet sent back
	blocked  bool // Block: no delivery, no credit
	finished bool // KindEnd queued; the producer sends nothing more
	err      error
	// wm is the newest watermark Next delivered from the channel (in a
	// batch's marks or a watermark frame), noWatermark before one.
	wm int64
}

// Gate registers the input channels of one consumer subtask and returns its
// gate. It must be called before producers deliver; producers that connect
// earlier wait for it (see Open). Registering a channel twice is a
// programming error and panics. On a closed Network the gate is born closed.
func (n *Network) Gate(channels []ChannelID) *Gate {
	g := &Gate{n: n, chans: make([]*inChan, len(channels)), window: n.opts.Window, wake: make(chan struct{}, 1)}
	g.mu.last = -1
	for i, id := range channels {
		g.chans[i] = &inChan{g: g, id: id, index: i, wake: make(chan struct{}, 1), queue: newQueue(localBatches), wm: noWatermark}
	}
	if err := n.registerGate(g); err != nil {
		if !errors.Is(err, ErrClosed) {
			panic(err)
		}
		g.mu.closed = true
	}
	return g
}

// Next returns the next frame from any unblocked channel: the one furthest
// behind in event time, channels taking turns among equals (see
// pickLocked). The frame belongs to the caller. The credit for the frame Next
// returned previously goes back to its producer now, so a channel holds at
// most Options.Window bytes (and one more frame), counting the frame the
// caller is processing.
//
// Once every channel delivered its KindEnd frame (each End is itself
// returned, once per channel), Next returns io.EOF. If a channel broke
// (remote stream failed or producer closed before KindEnd), Next returns an
// error wrapping ErrChannelBroken, with Delivery.Channel and Index naming the
// channel, as soon as that channel has no deliverable frames left; frames of
// other channels do not delay it. After Close, Next returns ErrClosed. If ctx
// ends first, Next returns ctx.Err().
func (g *Gate) Next(ctx context.Context) (Delivery, error) {
	g.mu.Lock()
	if i := g.mu.last; i >= 0 {
		g.mu.last = -1
		g.chans[i].returnCreditLocked(g.mu.lastCost)
	}
	for {
		if g.mu.closed {
			g.mu.Unlock()
			return Delivery{}, ErrClosed
		}
		if len(g.mu.mail) > 0 {
			f := g.mu.mail[0]
			g.mu.mail = g.mu.mail[1:]
			g.mu.Unlock()
			return Delivery{Index: -1, Frame: f}, nil
		}
		if d, err, ok := g.pollLocked(); ok {
			g.mu.Unlock()
			return d, err
		}
		if g.mu.ended == len(g.chans) {
			g.mu.Unlock()
			return Delivery{}, io.EOF
		}
		g.mu.Unlock()
		select {
		case <-g.wake:
		case <-ctx.Done():
			return Delivery{}, ctx.Err()
		}
		g.mu.Lock()
	}
}

func (g *Gate) pollLocked() (Delivery, error, bool) {
	if len(g.mu.prio) > 0 {
		d := g.mu.prio[0]
		g.mu.prio[0] = Delivery{}
		g.mu.prio = g.mu.prio[1:]
		return d, nil, true
	}
	if g.mu.broken > 0 {
		for _, c := range g.chans {
			if c.err != nil && (c.blocked || c.queue.len() == 0) {
				return Delivery{Channel: c.id, Index: c.index}, c.err, true
			}
		}
	}
	i, ok := g.pickLocked()
	if !ok {
		return Delivery{}, nil, false
	}
	c := g.chans[i]
	f := c.queue.pop()
	g.mu.next = i + 1
	cost := f.cost(g.window)
	if cost > 0 {
		c.charged -= cost
	} else {
		c.free--
	}
	switch {
	case f.Kind == KindEnd:
		g.mu.ended++
	case cost > 0:
		g.mu.last, g.mu.lastCost = i, cost
	}
	switch {
	case len(f.Marks) > 0:
		c.wm = f.Marks[len(f.Marks)-1].Timestamp
	case f.Kind == KindWatermark && !f.Idle:
		c.wm = f.Timestamp
	}
	return Delivery{Channel: c.id, Index: i, Frame: f}, nil, true
}

// pickLocked chooses the channel whose frame Next delivers: of the channels
// with a deliverable frame, the one furthest behind in event time (the
// lowest watermark delivered from it), the channels taken in turn among
// equals. A channel that has delivered no watermark yet takes its turn and
// is not ranked. So the consumer sees its inputs merged in about
// event-time order, whichever producer runs ahead: a join or a session
// window then holds little waiting for the input that lags (a bid that
// comes before its auction waits in state until the auction does), where
// taking channels in turn let one producer's lead reach the whole of its
// queue. Without watermarks every channel is equal and it is plain turns.
// A channel is passed over at most maxPassedOver times in a row, so one
// whose watermark is stuck (a source that sends records but no newer
// watermark) cannot starve the others.
func (g *Gate) pickLocked() (int, bool) {
	n := len(g.chans)
	first, lag := -1, -1 // the first ready channel in turn; the laggard
	i := g.mu.next
	for range n {
		if i >= n {
			i = 0
		}
		c := g.chans[i]
		if !c.blocked && c.queue.len() > 0 {
			if first < 0 {
				first = i
				if c.wm == noWatermark {
					break
				}
			}
			if c.wm != noWatermark && (lag < 0 || c.wm < g.chans[lag].wm) {
				lag = i
			}
		}
		i++
	}
	switch {
	case first < 0:
		return 0, false
	case lag < 0 || lag == first || g.mu.passedOver >= maxPassedOver:
		g.mu.passedOver = 0
		return first, true
	}
	g.mu.passedOver++
	return lag, true
}

// noWatermark is an inChan's wm before the channel delivered a watermark.
const noWatermark = math.MinInt64

// maxPassedOver bounds how many frames in a row Next delivers from a
// lagging channel while an earlier one in turn has a frame ready.
const maxPassedOver = 16

// Post queues a control message for the gate's consumer. Next returns it
// before any channel's frames, with Index -1. Post never blocks and takes no
// credit: a subtask's own control traffic (checkpoint completion notices) is
// rare and must not wait behind backpressured data. Mail posted after the
// gate ended (io.EOF) or closed is dropped.
func (g *Gate) Post(f Frame) {
	g.mu.Lock()
	g.mu.mail = append(g.mu.mail, f)
	g.mu.Unlock()
	signal(g.wake)
}

// Block stops delivery from the channel at index (for checkpoint barrier
// alignment). Its frames stay queued and no credit comes back for them, so
// its producer is backpressured once its credits run out. (The credit of the
// frame Next returned last, say the barrier, still comes back on the next
// Next: that frame was consumed.) Index is a position in the slice given to
// Network.Gate; out of range panics.
func (g *Gate) Block(index int) {
	c := g.chans[index]
	g.mu.Lock()
	c.blocked = true
	g.mu.Unlock()
}

// Unblock resumes delivery from the channel at index.
func (g *Gate) Unblock(index int) {
	c := g.chans[index]
	g.mu.Lock()
	c.blocked = false
	g.mu.Unlock()
	signal(g.wake)
}

// Overtake makes the barriers of checkpoint id overtake the frames queued
// ahead of them: a barrier already queued leaves its queue now, and one
// that arrives later skips the queue. Next delivers such
// a barrier before any queued frame, with Delivery.Overtaken listing the
// record frames it passed. A consumer calls it when it turns a checkpoint
// unaligned (its alignment timed out), so that the barriers it still waits
// for do not wait behind backpressured data.
func (g *Gate) Overtake(id int64) {
	g.mu.Lock()
	g.mu.overtaking = id
	for _, c := range g.chans {
		for k := 0; k < c.queue.len(); k++ {
			// A copy: remove shifts the frames after it.
			if f := *c.queue.at(k); f.Kind == KindBarrier && f.CheckpointID == id {
				c.queue.remove(k)
				c.free--
				g.overtakeLocked(c, f, k)
				break
			}
		}
	}
	g.mu.Unlock()
	signal(g.wake)
}

// Announced returns the newest checkpoint barrier that reached the gate
// behind other frames (savepoints' aside), with its trigger time, whether
// or not it was delivered since; id 0 if none did. A consumer busy with
// the data ahead of it learns so that a checkpoint is waiting, and can
// make it overtake (Overtake) once it waited too long, before the barrier
// even reaches the head of its queue.
func (g *Gate) Announced() (id, ts int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.announced.CheckpointID, g.mu.announced.Timestamp
}

// overtakeLocked queues barrier f of channel c for priority delivery, ahead
// of the first n frames of c's queue, which it overtook. The barrier is
// delivered marked Unaligned: the consumer's snapshot for it is.
func (g *Gate) overtakeLocked(c *inChan, f Frame, n int) {
	f.Unaligned = true
	var passed []Frame
	for k := 0; k < n; k++ {
		if p := c.queue.at(k); p.Kind == KindRecords {
			passed = append(passed, *p)
		}
	}
	g.mu.prio = append(g.mu.prio, Delivery{Channel: c.id, Index: c.index, Frame: f, Overtaken: passed})
}

// Close unregisters the gate's channels, drops queued frames and fails the
// gate's producers: local senders get ErrClosed, remote producers'
// streams end. A consumer subtask that stops early (failure, cancel) closes
// its gate; after io.EOF it may too. Close is idempotent.
func (g *Gate) Close() error {
	g.n.unregisterGate(g)
	g.shut()
	return nil
}

func (g *Gate) shut() {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return
	}
	g.mu.closed = true
	g.mu.prio = nil
	for _, c := range g.chans {
		c.queue.reset()
		c.charged, c.free = 0, 0
		signal(c.wake)
	}
	g.mu.Unlock()
	signal(g.wake)
}

// attach binds a producer to the channel. A channel takes one producer for
// its lifetime: a reconnecting producer would have lost frames, so the job
// restarts instead.
func (c *inChan) attach(kind producerKind) error {
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.closed {
		return ErrClosed
	}
	if c.producer != noProducer {
		return fmt.Errorf("%w: %v already has a producer", ErrRefused, c.id)
	}
	c.producer = kind
	if kind == localProducer {
		c.credits = g.window
	}
	return nil
}

// enqueueLocked queues f for the consumer.
func (c *inChan) enqueueLocked(f Frame) error {
	g := c.g
	cost := f.cost(g.window)
	switch {
	case g.mu.closed:
		return ErrClosed
	case c.finished:
		return fmt.Errorf("%w: %v: frame after end", ErrClosed, c.id)
	case c.err != nil:
		return c.err
	case cost > 0 && c.charged >= g.window:
		// The producer sends while it holds any credit, so what it sent
		// before this frame was less than the window.
		return fmt.Errorf("exchange: %v: producer sent %s frame without credit", c.id, f.Kind)
	case cost == 0 && c.free >= maxUncharged:
		return fmt.Errorf("exchange: %v: too many frames without credit", c.id)
	}
	if f.Kind == KindBarrier && (f.Unaligned || f.CheckpointID == g.mu.overtaking) {
		g.overtakeLocked(c, f, c.queue.len())
		signal(g.wake)
		return nil
	}
	if f.Kind == KindBarrier && !f.Savepoint && f.CheckpointID > g.mu.announced.CheckpointID && c.queue.len() > 0 {
		g.mu.announced = f
	}
	if f.Kind == KindWatermark && !f.Idle && c.queue.len() > 0 {
		if last := c.queue.at(c.queue.len() - 1); last.Kind == KindWatermark && !last.Idle {
			// Nothing between them: the newer watermark says all the
			// older one did, so it takes its place.
			last.Timestamp = max(last.Timestamp, f.Timestamp)
			signal(g.wake)
			return nil
		}
	}
	if cost > 0 {
		c.charged += cost
	} else {
		c.free++
	}
	c.queue.push(f)
	if f.Kind == KindEnd {
		c.finished = true
	}
	signal(g.wake)
	return nil
}

// maxUncharged bounds the frames a channel queues without credit
// (barriers, overdraft batches, watermarks) before the producer is deemed
// broken: a well-behaved one sends one barrier per checkpoint, at most one
// overdraft batch per barrier and one watermark per batch or flush
// (consecutive watermarks coalesce), and the consumer drains them.
const maxUncharged = 1024

func (c *inChan) deliver(f Frame) error {
	c.g.mu.Lock()
	err := c.enqueueLocked(f)
	c.g.mu.Unlock()
	return err
}

func (c *inChan) returnCreditLocked(cost int) {
	switch c.producer {
	case localProducer:
		c.credits += cost
	case remoteProducer:
		c.owed += cost
	default:
		return
	}
	signal(c.wake)
}

// breakChannel marks the channel broken unless it already ended cleanly.
func (c *inChan) breakChannel(cause error) {
	g := c.g
	g.mu.Lock()
	if g.mu.closed || c.finished || c.err != nil {
		g.mu.Unlock()
		return
	}
	c.err = fmt.Errorf("%w: %v: %w", ErrChannelBroken, c.id, cause)
	g.mu.broken++
	g.mu.Unlock()
	signal(g.wake)
}

// signal leaves a token in a capacity-1 channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// queue is a FIFO of frames. The window bounds the frames that cost credit
// (minFrameCost each at least); barriers, watermarks and overdraft batches
// may add a few more. It grows as needed.
type queue struct {
	buf  []Frame
	head int
}

func newQueue(size int) queue { return queue{buf: make([]Frame, 0, size)} }

func (q *queue) len() int { return len(q.buf) - q.head }

func (q *queue) at(k int) *Frame { return &q.buf[q.head+k] }

func (q *queue) push(f Frame) {
	if q.head > 0 && len(q.buf) == cap(q.buf) {
		// Slide to the front before growing: the queue is usually short.
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, f)
}

func (q *queue) pop() Frame {
	f := q.buf[q.head]
	q.buf[q.head] = Frame{} // drop references so the batch can be collected
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
	return f
}

// remove drops the frame at position k.
func (q *queue) remove(k int) {
	i := q.head + k
	copy(q.buf[i:], q.buf[i+1:])
	q.buf[len(q.buf)-1] = Frame{}
	q.buf = q.buf[:len(q.buf)-1]
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
}

func (q *queue) reset() {
	clear(q.buf)
	q.buf, q.head = q.buf[:0], 0
}
