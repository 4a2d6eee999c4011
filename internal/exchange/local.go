package exchange

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// localSender is an in-memory channel to a gate of the same Network. Frames,
// Data and Local included, pass by value into the gate's queue with no copy.
type localSender struct {
	n        *Network
	id       ChannelID
	deadline time.Time // for the consumer's gate to register

	c       atomic.Pointer[inChan] // set once the gate is found
	closing chan struct{}          // closed by Close

	mu struct {
		sync.Mutex
		closed bool
	}
}

func newLocalSender(n *Network, id ChannelID) *localSender {
	return &localSender{n: n, id: id, deadline: time.Now().Add(gateWait), closing: make(chan struct{})}
}

func (s *localSender) Send(ctx context.Context, f Frame) error {
	if err := checkFrame(f); err != nil {
		return err
	}
	c := s.c.Load()
	if c == nil {
		var err error
		if c, err = s.attach(ctx); err != nil {
			return err
		}
	}
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	g := c.g
	cost := f.cost(g.window)
	g.mu.Lock()
	for cost > 0 && c.credits <= 0 && !g.mu.closed {
		g.mu.Unlock()
		select {
		case <-c.wake:
		case <-s.closing:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
	}
	err := c.enqueueLocked(f)
	if err == nil {
		c.credits -= cost
	}
	g.mu.Unlock()
	return err
}

// attach finds the consumer's input channel, waiting for its gate.
func (s *localSender) attach(ctx context.Context) (*inChan, error) {
	c, err := s.n.waitChan(ctx, s.id, s.deadline, s.closing)
	if err != nil {
		return nil, err
	}
	if err := c.attach(localProducer); err != nil {
		return nil, err
	}
	s.mu.Lock()
	closed := s.mu.closed
	if !closed {
		s.c.Store(c)
	}
	s.mu.Unlock()
	if closed {
		// Close ran while we attached and did not see c.
		c.breakChannel(errProducerClosed)
		return nil, ErrClosed
	}
	return c, nil
}

var errProducerClosed = errors.New("producer closed before end")

func (s *localSender) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	c := s.c.Load()
	s.mu.Unlock()
	close(s.closing)
	if c != nil {
		c.breakChannel(errProducerClosed) // no-op once KindEnd was queued
	}
	return nil
}

// checkFrame rejects frames no channel can carry.
func checkFrame(f Frame) error {
	if f.Kind < KindRecords || f.Kind > KindEndOfData {
		return fmt.Errorf("exchange: invalid frame kind %v", f.Kind)
	}
	return nil
}
