package exchange

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Network is one job process's exchange endpoint: it serves DataService for
// the gates of its consumer subtasks and connects its producer subtasks to
// peers, sharing one grpc.ClientConn per peer address.
type Network struct {
	jobID   string
	attempt int64
	opts    Options
	log     *slog.Logger
	// refusals logs streams refused before admission, rate-limited.
	refusals *refusalLog

	// base parents every outgoing stream; Close cancels it.
	base   context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	// wg counts the goroutines the Network runs or hosts (credit readers,
	// stream handlers and their receivers), so Close returns after they exit.
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu struct {
		sync.Mutex
		closed    bool
		localAddr string
		chans     map[ChannelID]*inChan
		// gateAdded is closed and replaced whenever a gate registers, waking
		// producers that wait for their consumer.
		gateAdded chan struct{}
		conns     map[string]*grpc.ClientConn
		// pins are the consumers' certificate hashes by address (TLS).
		pins map[string][]byte
	}
}

// NewNetwork returns the endpoint of one job process for attempt attempt of
// job jobID. Streams from producers of another job or attempt are refused.
// A nil logger discards.
func NewNetwork(jobID string, attempt int64, opts Options, logger *slog.Logger) *Network {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Network{
		jobID:    jobID,
		attempt:  attempt,
		opts:     opts.withDefaults(),
		log:      logger,
		refusals: newRefusalLog(logger, time.Minute),
		done:     make(chan struct{}),
	}
	n.base, n.cancel = context.WithCancel(context.Background())
	n.mu.chans = make(map[ChannelID]*inChan)
	n.mu.gateAdded = make(chan struct{})
	n.mu.conns = make(map[string]*grpc.ClientConn)
	return n
}

// Register registers the DataService server on s, which the caller owns,
// starts and stops. s should be built with ServerOptions.
func (n *Network) Register(s *grpc.Server) {
	weirv1.RegisterDataServiceServer(s, dataServer{n: n})
}

// SetLocalAddr sets the address peers use to reach this process. Open
// compares a consumer's address with it to choose an in-memory channel.
func (n *Network) SetLocalAddr(addr string) {
	n.mu.Lock()
	n.mu.localAddr = addr
	n.mu.Unlock()
}

// Open connects a producer to consumer channel ch, whose process serves data
// at addr. If addr is this process's address (SetLocalAddr) the channel is in
// memory; otherwise it is a DataService stream over the shared connection to
// addr.
//
// Open does not wait for the consumer's gate: the first Send does, up to
// ~30 s after Open. For a remote channel Open waits until the connection is
// ready, bounded by ctx and Options.DialTimeout. ctx bounds only Open: the
// channel lives until Close or Network.Close.
func (n *Network) Open(ctx context.Context, ch ChannelID, addr string) (Sender, error) {
	n.mu.Lock()
	closed, local := n.mu.closed, n.mu.localAddr
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if addr == local && local != "" {
		return newLocalSender(n, ch), nil
	}
	return n.openRemote(ctx, ch, addr)
}

// Close closes client connections, fails open senders (ErrClosed) and gates
// (Next returns ErrClosed), ends hosted streams, and waits for the Network's
// goroutines. It is idempotent.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.mu.closed = true
		gates := make(map[*Gate]struct{})
		for _, c := range n.mu.chans {
			gates[c.g] = struct{}{}
		}
		conns := n.mu.conns
		n.mu.chans, n.mu.conns = nil, nil
		n.mu.Unlock()

		// Gates first: cancelling the hosted streams would otherwise break
		// their channels, and a consumer could see "channel broken" for
		// what is its own network closing (ErrClosed).
		for g := range gates {
			g.shut()
		}
		close(n.done)
		n.cancel()
		var errs []error
		for addr, cc := range conns {
			if err := cc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("exchange: close connection to %s: %w", addr, err))
			}
		}
		n.wg.Wait()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// goTracked runs f in a goroutine counted by n.wg, unless the Network is
// closed.
func (n *Network) goTracked(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// enter counts a goroutine the caller already runs (a stream handler).
func (n *Network) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

func (n *Network) registerGate(g *Gate) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return ErrClosed
	}
	seen := make(map[ChannelID]struct{}, len(g.chans))
	for _, c := range g.chans {
		if _, dup := seen[c.id]; dup {
			return fmt.Errorf("exchange: channel %v listed twice in one gate", c.id)
		}
		if _, dup := n.mu.chans[c.id]; dup {
			return fmt.Errorf("exchange: channel %v already has a gate", c.id)
		}
		seen[c.id] = struct{}{}
	}
	for _, c := range g.chans {
		n.mu.chans[c.id] = c
	}
	close(n.mu.gateAdded)
	n.mu.gateAdded = make(chan struct{})
	return nil
}

func (n *Network) unregisterGate(g *Gate) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range g.chans {
		if n.mu.chans[c.id] == c {
			delete(n.mu.chans, c.id)
		}
	}
}

// errNoGate is returned when no gate registered a channel within gateWait.
var errNoGate = errors.New("no gate registered the channel in time")

// waitChan returns the registered input channel id, waiting for its gate
// until deadline, ctx or stop end.
func (n *Network) waitChan(ctx context.Context, id ChannelID, deadline time.Time, stop <-chan struct{}) (*inChan, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		n.mu.Lock()
		if n.mu.closed {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		if c := n.mu.chans[id]; c != nil {
			n.mu.Unlock()
			return c, nil
		}
		added := n.mu.gateAdded
		n.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-added:
		case <-timer.C:
			return nil, fmt.Errorf("%w: %v: %w", ErrRefused, id, errNoGate)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stop:
			return nil, ErrClosed
		case <-n.done:
			return nil, ErrClosed
		}
	}
}

// conn returns the shared connection to addr. grpc.NewClient connects
// lazily, so nothing here does I/O.
func (n *Network) conn(addr string) (*grpc.ClientConn, error) {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	cc := n.mu.conns[addr]
	n.mu.Unlock()
	if cc != nil {
		return cc, nil
	}
	creds, err := n.transport(addr)
	if err != nil {
		return nil, err
	}
	// No stats handler or tracing here: they may read a message after
	// SendMsg returned, and a remote Sender's caller reuses Frame.Data as
	// soon as Send returns (Sender.Send).
	cc, err = grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
			grpc.CallContentSubtype(codecName),
		),
		experimental.WithBufferPool(bufferPool),
		grpc.WithReadBufferSize(64<<10),
		grpc.WithWriteBufferSize(256<<10),
	)
	if err != nil {
		return nil, fmt.Errorf("exchange: connect %s: %w", addr, err)
	}
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		_ = cc.Close()
		return nil, ErrClosed
	}
	if prev := n.mu.conns[addr]; prev != nil {
		n.mu.Unlock()
		_ = cc.Close() // lost a race with another Open; never used
		return prev, nil
	}
	n.mu.conns[addr] = cc
	n.mu.Unlock()
	return cc, nil
}
