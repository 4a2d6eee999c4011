package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

type exchangeClient = grpc.BidiStreamingClient[weirv1.DataFrame, weirv1.Credit]
type exchangeServer = grpc.BidiStreamingServer[weirv1.DataFrame, weirv1.Credit]

// remoteSender is the producer end of a DataService Exchange stream. It
// starts with no credit; the consumer grants Options.Window bytes once its
// gate accepted the stream, then each frame's cost once it is consumed.
type remoteSender struct {
	n      *Network
	id     ChannelID
	stream exchangeClient
	cancel context.CancelFunc

	wake       chan struct{} // capacity 1: credit arrived or the stream ended
	closing    chan struct{} // closed by Close
	readerDone chan struct{} // closed when readCredits returns
	closeOnce  sync.Once

	mu struct {
		sync.Mutex
		credits int   // bytes; below 0 after a frame larger than what was left
		err     error // set once the stream ended; sticky
		ended   bool  // KindEnd sent
		closed  bool
	}
}

func (n *Network) openRemote(ctx context.Context, id ChannelID, addr string) (Sender, error) {
	cc, err := n.conn(addr)
	if err != nil {
		return nil, err
	}
	// The stream outlives ctx, so it gets its own context; ctx and
	// DialTimeout only bound getting it started.
	sctx, cancel := context.WithCancel(n.base)
	stopCtx := context.AfterFunc(ctx, cancel)
	timer := time.AfterFunc(n.opts.DialTimeout, cancel)
	stream, err := weirv1.NewDataServiceClient(cc).Exchange(metadata.NewOutgoingContext(sctx, n.channelMD(id)), grpc.WaitForReady(true))
	timerStopped, ctxStopped := timer.Stop(), stopCtx()
	if err == nil && (!timerStopped || !ctxStopped) {
		err = context.Canceled // cancelled just after the stream started
	}
	if err != nil {
		cancel()
		switch {
		case n.base.Err() != nil:
			err = ErrClosed
		case ctx.Err() != nil:
			err = ctx.Err()
		case !timerStopped:
			// gRPC's message says why, e.g. a TLS handshake refused.
			err = fmt.Errorf("connection not ready within %v: %w (%s)", n.opts.DialTimeout, context.DeadlineExceeded, status.Convert(err).Message())
		}
		return nil, fmt.Errorf("exchange: open %v at %s: %w", id, addr, err)
	}
	s := &remoteSender{
		n:          n,
		id:         id,
		stream:     stream,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if !n.goTracked(s.readCredits) {
		cancel()
		return nil, ErrClosed
	}
	return s, nil
}

// readCredits receives Credit messages until the stream ends.
func (s *remoteSender) readCredits() {
	defer close(s.readerDone)
	var cr weirv1.Credit
	for {
		if err := s.stream.RecvMsg(&cr); err != nil {
			s.mu.Lock()
			s.mu.err = s.classifyLocked(err)
			s.mu.Unlock()
			signal(s.wake)
			return
		}
		s.mu.Lock()
		s.mu.credits += int(cr.Bytes)
		s.mu.Unlock()
		signal(s.wake)
	}
}

// classifyLocked turns the stream's final error into the error Send reports.
func (s *remoteSender) classifyLocked(err error) error {
	if s.n.base.Err() != nil || s.mu.closed {
		return ErrClosed
	}
	if err == io.EOF {
		if s.mu.ended {
			return fmt.Errorf("%w: %v: finished", ErrClosed, s.id)
		}
		err = errors.New("consumer ended the stream before end")
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.AlreadyExists, codes.NotFound:
		return fmt.Errorf("%w: %v: %s", ErrRefused, s.id, status.Convert(err).Message())
	}
	return fmt.Errorf("%w: %v: %w", ErrChannelBroken, s.id, err)
}

func (s *remoteSender) Send(ctx context.Context, f Frame) error {
	if err := checkFrame(f); err != nil {
		return err
	}
	if f.Local != nil {
		return fmt.Errorf("exchange: %v: Frame.Local on a remote channel", s.id)
	}
	if len(f.Data) > maxFrameBytes {
		return fmt.Errorf("exchange: %v: %d-byte frame exceeds the %d-byte limit", s.id, len(f.Data), maxFrameBytes)
	}
	// A frame goes while any credit is left, even if it costs more: a
	// batch larger than the window must still get through.
	cost := f.cost(s.n.opts.Window)
	s.mu.Lock()
	for cost > 0 && s.mu.credits <= 0 && s.mu.err == nil && !s.mu.closed && !s.mu.ended {
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.closing:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	switch {
	case s.mu.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.mu.ended:
		s.mu.Unlock()
		return fmt.Errorf("%w: %v: send after end", ErrClosed, s.id)
	case s.mu.err != nil:
		err := s.mu.err
		s.mu.Unlock()
		return err
	}
	s.mu.credits -= cost
	s.mu.Unlock()

	if err := s.stream.Send(toProto(f)); err != nil {
		// The stream is aborted; its status comes from the credit reader.
		<-s.readerDone
		s.mu.Lock()
		err = s.mu.err
		s.mu.Unlock()
		return err
	}
	if f.Kind == KindEnd {
		s.mu.Lock()
		s.mu.ended = true
		s.mu.Unlock()
		_ = s.stream.CloseSend() // always nil
	}
	return nil
}

func (s *remoteSender) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		ended := s.mu.ended
		s.mu.closed = true
		s.mu.Unlock()
		close(s.closing)
		if ended {
			// The consumer ends the stream with OK once it has read End;
			// cancelling before that could discard frames in transit.
			t := time.NewTimer(closeWait)
			select {
			case <-s.readerDone:
			case <-t.C:
			case <-s.n.done:
			}
			t.Stop()
		}
		s.cancel()
		<-s.readerDone
	})
	return nil
}

func toProto(f Frame) *weirv1.DataFrame {
	m := &weirv1.DataFrame{}
	switch f.Kind {
	case KindRecords:
		b := &weirv1.RecordBatch{Data: f.Data, Count: int32(f.Count), Overdraft: f.Overdraft}
		if len(f.Marks) > 0 {
			b.MarkAt = make([]int32, len(f.Marks))
			b.MarkTimestampUnixMs = make([]int64, len(f.Marks))
			for i, mk := range f.Marks {
				b.MarkAt[i], b.MarkTimestampUnixMs[i] = int32(mk.At), mk.Timestamp
			}
		}
		m.Payload = &weirv1.DataFrame_Batch{Batch: b}
	case KindBarrier:
		m.Payload = &weirv1.DataFrame_Barrier{Barrier: &weirv1.Barrier{CheckpointId: f.CheckpointID, TimestampUnixMs: f.Timestamp, Savepoint: f.Savepoint, Unaligned: f.Unaligned}}
	case KindWatermark:
		m.Payload = &weirv1.DataFrame_Watermark{Watermark: &weirv1.Watermark{TimestampUnixMs: f.Timestamp, Idle: f.Idle}}
	case KindEnd:
		m.Payload = &weirv1.DataFrame_End{End: &weirv1.EndOfPartition{}}
	case KindEndOfData:
		m.Payload = &weirv1.DataFrame_EndOfData{EndOfData: &weirv1.EndOfData{}}
	}
	return m
}

var (
	errNoPayload = errors.New("frame without payload")
	errBadMarks  = errors.New("record batch with misplaced watermarks")
)

func fromProto(m *weirv1.DataFrame) (Frame, error) {
	switch p := m.Payload.(type) {
	case *weirv1.DataFrame_Batch:
		f := Frame{Kind: KindRecords, Data: p.Batch.GetData(), Count: int(p.Batch.GetCount()), Overdraft: p.Batch.GetOverdraft()}
		at, ts := p.Batch.GetMarkAt(), p.Batch.GetMarkTimestampUnixMs()
		if len(at) != len(ts) {
			return Frame{}, errBadMarks
		}
		if len(at) > 0 {
			f.Marks = make([]Mark, len(at))
			prev := 0
			for i := range at {
				// Consumers rely on positions in order and within the batch.
				if int(at[i]) < prev || int(at[i]) > f.Count {
					return Frame{}, errBadMarks
				}
				prev = int(at[i])
				f.Marks[i] = Mark{At: prev, Timestamp: ts[i]}
			}
		}
		return f, nil
	case *weirv1.DataFrame_Barrier:
		return Frame{Kind: KindBarrier, CheckpointID: p.Barrier.GetCheckpointId(), Timestamp: p.Barrier.GetTimestampUnixMs(),
			Savepoint: p.Barrier.GetSavepoint(), Unaligned: p.Barrier.GetUnaligned()}, nil
	case *weirv1.DataFrame_Watermark:
		return Frame{Kind: KindWatermark, Timestamp: p.Watermark.GetTimestampUnixMs(), Idle: p.Watermark.GetIdle()}, nil
	case *weirv1.DataFrame_End:
		return Frame{Kind: KindEnd}, nil
	case *weirv1.DataFrame_EndOfData:
		return Frame{Kind: KindEndOfData}, nil
	}
	return Frame{}, errNoPayload
}

type dataServer struct {
	weirv1.UnimplementedDataServiceServer
	n *Network
}

func (d dataServer) Exchange(stream exchangeServer) error { return d.n.serve(stream) }

// serverStream is the consumer end of one Exchange stream. The handler
// goroutine (serve) owns sending credits; recv owns receiving frames. They are
// split because a handler blocked in Recv could not end the stream when its
// gate or Network closes: gRPC ends a server stream only when the handler
// returns.
type serverStream struct {
	n        *Network
	stream   exchangeServer
	attached chan *inChan  // capacity 1: set once the gate accepted the stream
	done     chan struct{} // closed when recv returns
	// Set before done is closed.
	clean bool  // KindEnd and then the producer's half-close
	err   error // why recv stopped otherwise
}

func (n *Network) serve(stream exchangeServer) error {
	if !n.enter() {
		return status.Error(codes.Unavailable, "exchange: network closed")
	}
	defer n.wg.Done()
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	id, err := n.admit(md)
	if err != nil {
		p, _ := peer.FromContext(ctx)
		n.refusals.refused(p, err)
		return err
	}
	rs := &serverStream{
		n:        n,
		stream:   stream,
		attached: make(chan *inChan, 1),
		done:     make(chan struct{}),
	}
	n.wg.Add(1) // serve holds a count, so Close's Wait has not returned
	go func() {
		defer n.wg.Done()
		rs.recv()
	}()

	c, err := n.waitChan(ctx, id, time.Now().Add(gateWait), rs.done)
	if err == nil {
		err = c.attach(remoteProducer)
	}
	if err != nil {
		switch {
		case errors.Is(err, errNoGate):
			n.log.Warn("exchange: refused stream: no gate for channel", "channel", id.String(), "waited", gateWait)
			return status.Error(codes.NotFound, err.Error())
		case errors.Is(err, ErrRefused):
			n.log.Warn("exchange: refused stream", "channel", id.String(), "err", err)
			return status.Error(codes.AlreadyExists, err.Error())
		case errors.Is(err, ErrClosed):
			if rs.isDone() {
				return rs.err
			}
			return status.Error(codes.Unavailable, "exchange: gate closed")
		}
		return status.FromContextError(err).Err()
	}
	rs.attached <- c
	if err := stream.Send(&weirv1.Credit{Bytes: int32(c.g.window)}); err != nil {
		return err
	}
	g := c.g
	for {
		select {
		case <-c.wake:
			g.mu.Lock()
			k, closed := c.owed, g.mu.closed
			c.owed = 0
			g.mu.Unlock()
			if closed {
				return status.Error(codes.Unavailable, "exchange: gate closed")
			}
			if k > 0 {
				// A fresh message each time: stats handlers on the caller's
				// server may hold on to sent messages.
				if err := stream.Send(&weirv1.Credit{Bytes: int32(k)}); err != nil {
					return err
				}
			}
		case <-rs.done:
			if rs.clean {
				return nil
			}
			return rs.err
		case <-n.done:
			return status.Error(codes.Unavailable, "exchange: network closed")
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

func (rs *serverStream) isDone() bool {
	select {
	case <-rs.done:
		return true
	default:
		return false
	}
}

// recv waits until the stream is attached to its gate, and then moves frames
// into the gate: nothing is read from a stream before its gate accepted it. A
// stream that fails before KindEnd breaks its channel.
func (rs *serverStream) recv() {
	defer close(rs.done)
	var c *inChan
	select {
	case c = <-rs.attached:
	case <-rs.stream.Context().Done():
		rs.err = status.FromContextError(rs.stream.Context().Err()).Err()
		return
	}
	ended := false
	for {
		m, err := rs.stream.Recv()
		if err != nil {
			if err == io.EOF && ended {
				rs.clean = true
				return
			}
			if err == io.EOF {
				err = errors.New("producer closed the stream before end")
			}
			c.breakChannel(err)
			rs.err = err
			return
		}
		if ended {
			rs.err = status.Error(codes.InvalidArgument, "exchange: frame after end")
			return
		}
		f, err := fromProto(m)
		if err == nil {
			err = c.deliver(f)
		}
		if err != nil {
			c.breakChannel(err)
			code := codes.InvalidArgument
			if errors.Is(err, ErrClosed) {
				code = codes.Unavailable
			}
			rs.err = status.Error(code, err.Error())
			return
		}
		ended = f.Kind == KindEnd
	}
}
