package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Delivery is one frame handed to the consumer by Gate.Next.
type Delivery struct {
	Channel ChannelID
	Index   int // position of Channel in the slice given to Network.Gate
	Frame   Frame
}

// Gate is the input side of one consumer subtask: all its input channels, of
// all input edges. Next is not safe for concurrent use: one consumer
// goroutine drives a gate. Block, Unblock and Close may be called from any
// goroutine.
type Gate struct {
	n       *Network
	chans   []*inChan
	credits int
	// wake tells a waiting Next that something changed: a frame arrived, a
	// channel broke or was unblocked, or the gate closed. A token may be stale;
	// Next re-checks under mu.
	wake chan struct{}

	mu struct {
		sync.Mutex
		closed bool
		// next is where the round-robin scan starts, so that one busy
		// channel cannot starve the others.
		next int
		// last is the index of the channel whose frame Next returned last and
		// whose credit is still owed, or -1. The credit goes back on the
		// following Next: until then the consumer may still be using the frame.
		last   int
		ended  int // KindEnd frames delivered
		broken int // channels with err set
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
	queue    ring
	producer producerKind
	credits  int  // local producer: credits it holds
	owed     int  // remote producer: credits consumed but not yet sent
	blocked  bool // Block: no delivery, no credit
	finished bool // KindEnd queued; the producer sends nothing more
	err      error
}

// Gate registers the input channels of one consumer subtask and returns its
// gate. It must be called before producers deliver; producers that connect
// earlier wait for it (see Open). Registering a channel twice is a
// programming error and panics. On a closed Network the gate is born closed.
func (n *Network) Gate(channels []ChannelID) *Gate {
	g := &Gate{n: n, chans: make([]*inChan, len(channels)), credits: n.opts.Credits, wake: make(chan struct{}, 1)}
	g.mu.last = -1
	for i, id := range channels {
		g.chans[i] = &inChan{g: g, id: id, index: i, wake: make(chan struct{}, 1), queue: newRing(g.credits)}
	}
	if err := n.registerGate(g); err != nil {
		if !errors.Is(err, ErrClosed) {
			panic(err)
		}
		g.mu.closed = true
	}
	return g
}

// Next returns the next frame from any unblocked channel, taking channels in
// turn. The frame belongs to the caller. The credit for the frame Next
// returned previously goes back to its producer now, so a channel holds at
// most Options.Credits frames, counting the one the caller is processing.
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
		g.chans[i].returnCreditLocked()
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
	if g.mu.broken > 0 {
		for _, c := range g.chans {
			if c.err != nil && (c.blocked || c.queue.n == 0) {
				return Delivery{Channel: c.id, Index: c.index}, c.err, true
			}
		}
	}
	n := len(g.chans)
	i := g.mu.next
	for k := 0; k < n; k++ {
		if i >= n {
			i = 0
		}
		c := g.chans[i]
		if !c.blocked && c.queue.n > 0 {
			f := c.queue.pop()
			g.mu.next = i + 1
			if f.Kind == KindEnd {
				g.mu.ended++
			} else {
				g.mu.last = i
			}
			return Delivery{Channel: c.id, Index: i, Frame: f}, nil, true
		}
		i++
	}
	return Delivery{}, nil, false
}

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
	for _, c := range g.chans {
		c.queue.reset()
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
		c.credits = g.credits
	}
	return nil
}

// enqueueLocked queues f for the consumer.
func (c *inChan) enqueueLocked(f Frame) error {
	g := c.g
	switch {
	case g.mu.closed:
		return ErrClosed
	case c.finished:
		return fmt.Errorf("%w: %v: frame after end", ErrClosed, c.id)
	case c.err != nil:
		return c.err
	case c.queue.n == len(c.queue.buf):
		return fmt.Errorf("exchange: %v: producer sent %s frame without credit", c.id, f.Kind)
	}
	c.queue.push(f)
	if f.Kind == KindEnd {
		c.finished = true
	}
	signal(g.wake)
	return nil
}

func (c *inChan) deliver(f Frame) error {
	c.g.mu.Lock()
	err := c.enqueueLocked(f)
	c.g.mu.Unlock()
	return err
}

func (c *inChan) returnCreditLocked() {
	switch c.producer {
	case localProducer:
		c.credits++
	case remoteProducer:
		c.owed++
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

// ring is a fixed-capacity FIFO of frames. Credits bound its length, so it
// never grows.
type ring struct {
	buf     []Frame
	head, n int
}

func newRing(size int) ring { return ring{buf: make([]Frame, size)} }

func (r *ring) push(f Frame) {
	i := r.head + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.buf[i] = f
	r.n++
}

func (r *ring) pop() Frame {
	f := r.buf[r.head]
	r.buf[r.head] = Frame{} // drop references so the batch can be collected
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	return f
}

func (r *ring) reset() {
	clear(r.buf)
	r.head, r.n = 0, 0
}
