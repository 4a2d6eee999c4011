package exchange

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// proc is one simulated job process: a Network serving DataService on a
// 127.0.0.1 listener.
type proc struct {
	n    *Network
	addr string
	// fingerprint is the hash of the certificate the process serves with,
	// when opts.TLS.
	fingerprint []byte
}

func newProc(tb testing.TB, job string, attempt int64, opts Options) *proc {
	tb.Helper()
	return newProcLogging(tb, job, attempt, opts, io.Discard)
}

// newProcLogging is newProc with the Network's log written to w.
func newProcLogging(tb testing.TB, job string, attempt int64, opts Options, w io.Writer) *proc {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srvOpts := ServerOptions()
	var fingerprint []byte
	if opts.TLS {
		id, err := NewIdentity()
		if err != nil {
			tb.Fatal(err)
		}
		srvOpts, fingerprint = append(srvOpts, id.ServerOption()), id.Fingerprint()
	}
	srv := grpc.NewServer(srvOpts...)
	n := NewNetwork(job, attempt, opts, slog.New(slog.NewTextHandler(w, nil)))
	n.Register(srv)
	n.SetLocalAddr(lis.Addr().String())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Error(err)
		}
		srv.Stop()
		wg.Wait()
	})
	return &proc{n: n, addr: lis.Addr().String(), fingerprint: fingerprint}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func seqFrame(i int) Frame {
	return Frame{Kind: KindRecords, Data: binary.AppendUvarint(nil, uint64(i)), Count: 1}
}

func frameSeq(t *testing.T, f Frame) int {
	t.Helper()
	v, n := binary.Uvarint(f.Data)
	if n <= 0 || f.Count != 1 {
		t.Fatalf("bad records frame %+v", f)
	}
	return int(v)
}

// produce sends n record frames, a barrier and a watermark halfway, then
// the end of data, the final checkpoint's barrier and End.
func produce(ctx context.Context, s Sender, n int) error {
	defer s.Close()
	for i := range n {
		if i == n/2 {
			// A savepoint's barrier: the flag decides how every subtask
			// uploads its state (self-contained), so it must cross.
			if err := s.Send(ctx, Frame{Kind: KindBarrier, CheckpointID: 7, Timestamp: 1234, Savepoint: true}); err != nil {
				return err
			}
			if err := s.Send(ctx, Frame{Kind: KindWatermark, Timestamp: 99, Idle: true}); err != nil {
				return err
			}
		}
		if err := s.Send(ctx, seqFrame(i)); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	// Without credit, as barriers: the consumer may hold no credit to spare.
	if err := s.Send(ctx, Frame{Kind: KindEndOfData}); err != nil {
		return err
	}
	if err := s.Send(ctx, Frame{Kind: KindBarrier, CheckpointID: 8, Timestamp: 1235}); err != nil {
		return err
	}
	return s.Send(ctx, Frame{Kind: KindEnd})
}

func TestOrderingLocalAndRemote(t *testing.T) {
	ctx := testCtx(t)
	a := newProc(t, "job", 1, Options{Window: 4 * minFrameCost})
	b := newProc(t, "job", 1, Options{Window: 4 * minFrameCost})
	chans := []ChannelID{
		{Edge: 1, Producer: 0, Consumer: 0}, // local
		{Edge: 1, Producer: 1, Consumer: 0}, // remote
		{Edge: 2, Producer: 0, Consumer: 0}, // local
		{Edge: 2, Producer: 1, Consumer: 0}, // remote
	}
	gate := a.n.Gate(chans)
	defer gate.Close()
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, len(chans))
	for i, ch := range chans {
		from := a
		if i%2 == 1 {
			from = b
		}
		s, err := from.n.Open(ctx, ch, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		if IsLocal(s) != (i%2 == 0) {
			t.Fatalf("channel %v: IsLocal = %v", ch, IsLocal(s))
		}
		wg.Go(func() { errs <- produce(ctx, s, n) })
	}

	next := make([]int, len(chans))
	ends := make([]int, len(chans))
	barriers := make([]int, len(chans))
	endsOfData := make([]int, len(chans))
	for {
		d, err := gate.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.Channel != chans[d.Index] {
			t.Fatalf("delivery index %d channel %v", d.Index, d.Channel)
		}
		if ends[d.Index] > 0 {
			t.Fatalf("%v: frame after end", d.Channel)
		}
		switch f := d.Frame; f.Kind {
		case KindRecords:
			if got := frameSeq(t, f); got != next[d.Index] {
				t.Fatalf("%v: got record %d, want %d", d.Channel, got, next[d.Index])
			}
			next[d.Index]++
		case KindBarrier:
			final := endsOfData[d.Index] == 1
			if final && (f.CheckpointID != 8 || f.Timestamp != 1235 || f.Savepoint) ||
				!final && (f.CheckpointID != 7 || f.Timestamp != 1234 || !f.Savepoint || next[d.Index] != n/2) {
				t.Fatalf("%v: bad barrier %+v after %d records, %d ends of data", d.Channel, f, next[d.Index], endsOfData[d.Index])
			}
			barriers[d.Index]++
		case KindEndOfData:
			if next[d.Index] != n || barriers[d.Index] != 1 {
				t.Fatalf("%v: end of data after %d records, %d barriers", d.Channel, next[d.Index], barriers[d.Index])
			}
			endsOfData[d.Index]++
		case KindWatermark:
			if f.Timestamp != 99 || !f.Idle || barriers[d.Index] != 1 {
				t.Fatalf("%v: bad watermark %+v", d.Channel, f)
			}
		case KindEnd:
			ends[d.Index]++
		}
	}
	for i := range chans {
		if next[i] != n || ends[i] != 1 || barriers[i] != 2 || endsOfData[i] != 1 {
			t.Errorf("%v: %d records, %d ends, %d barriers, %d ends of data", chans[i], next[i], ends[i], barriers[i], endsOfData[i])
		}
	}
	if _, err := gate.Next(ctx); err != io.EOF {
		t.Errorf("Next after EOF: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestLocalFramePassesByPointer(t *testing.T) {
	ctx := testCtx(t)
	a := newProc(t, "job", 1, Options{})
	ch := ChannelID{Edge: 1}
	gate := a.n.Gate([]ChannelID{ch})
	s, err := a.n.Open(ctx, ch, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	batch := &[]string{"a", "b"}
	if err := s.Send(ctx, Frame{Kind: KindRecords, Local: batch, Count: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := gate.Next(ctx)
	if err != nil || d.Frame.Local != batch || d.Frame.Count != 2 {
		t.Fatalf("got %+v, %v", d, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	b := newProc(t, "job", 1, Options{})
	rs, err := b.n.Open(ctx, ChannelID{Edge: 2}, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if err := rs.Send(ctx, Frame{Kind: KindRecords, Local: batch}); err == nil {
		t.Fatal("remote sender accepted a Local frame")
	}
}

// A remote Sender is done with Frame.Data when Send returns: the producer
// overwrites its buffer at once, as its output does for the next batch, and
// the consumer still gets every frame's own bytes.
func TestRemoteSendLeavesDataToCaller(t *testing.T) {
	ctx := testCtx(t)
	gate, s := openChannel(t, ctx, true, 16, ChannelID{Edge: 1}) // room for 3 frames of 4 KiB
	if IsLocal(s) {
		t.Fatal("a channel from another process is local")
	}
	buf := make([]byte, 4<<10)
	for i := range 3 {
		for j := range buf {
			buf[j] = byte(i + 1)
		}
		if err := s.Send(ctx, Frame{Kind: KindRecords, Data: buf, Count: 1}); err != nil {
			t.Fatal(err)
		}
		clear(buf) // the next batch starts in the same buffer
	}
	for i := range 3 {
		d, err := gate.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Frame.Data) != len(buf) || d.Frame.Data[0] != byte(i+1) || d.Frame.Data[len(buf)-1] != byte(i+1) {
			t.Fatalf("frame %d arrived with bytes %d..%d, want %d", i, d.Frame.Data[0], d.Frame.Data[len(d.Frame.Data)-1], i+1)
		}
	}
}

// openChannel opens a channel to gate owner a, from a itself (local) or from
// a second process (remote), with a window of that many small frames.
func openChannel(t *testing.T, ctx context.Context, remote bool, frames int, ch ChannelID) (*Gate, Sender) {
	t.Helper()
	return openWindow(t, ctx, remote, frames*minFrameCost, ch)
}

// openWindow is openChannel with a window of that many bytes.
func openWindow(t *testing.T, ctx context.Context, remote bool, window int, ch ChannelID) (*Gate, Sender) {
	t.Helper()
	a := newProc(t, "job", 1, Options{Window: window})
	from := a
	if remote {
		from = newProc(t, "job", 1, Options{Window: window})
	}
	gate := a.n.Gate([]ChannelID{ch})
	t.Cleanup(func() { gate.Close() })
	s, err := from.n.Open(ctx, ch, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return gate, s
}

func bothModes(t *testing.T, f func(t *testing.T, remote bool)) {
	t.Run("local", func(t *testing.T) { f(t, false) })
	t.Run("remote", func(t *testing.T) { f(t, true) })
}

func notDone(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned early: %v", what, err)
	case <-time.After(150 * time.Millisecond):
	}
}

func waitDone(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

func TestBackpressure(t *testing.T) {
	bothModes(t, func(t *testing.T, remote bool) {
		ctx := testCtx(t)
		gate, s := openChannel(t, ctx, remote, 2, ChannelID{Edge: 1})
		for i := range 2 {
			if err := s.Send(ctx, seqFrame(i)); err != nil {
				t.Fatal(err)
			}
		}
		third := make(chan error, 1)
		go func() { third <- s.Send(ctx, seqFrame(2)) }()
		notDone(t, third, "third Send with 2 credits and no Next")

		// The first Next hands out frame 0 but keeps its credit: the
		// consumer may still be using it.
		if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != 0 {
			t.Fatalf("Next: %+v, %v", d, err)
		}
		notDone(t, third, "third Send while frame 0 is being processed")
		// The second Next returns frame 0's credit.
		if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != 1 {
			t.Fatalf("Next: %+v, %v", d, err)
		}
		waitDone(t, third, "third Send after credit returned")
		if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != 2 {
			t.Fatalf("Next: %+v, %v", d, err)
		}
	})
}

func TestSendUnblocksOnCancel(t *testing.T) {
	bothModes(t, func(t *testing.T, remote bool) {
		ctx := testCtx(t)
		_, s := openChannel(t, ctx, remote, 1, ChannelID{Edge: 1})
		if err := s.Send(ctx, seqFrame(0)); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Send(sctx, seqFrame(1)) }()
		notDone(t, done, "Send without credit")
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Send after cancel: %v", err)
		}

		// Close unblocks a Send waiting for credit too.
		go func() { done <- s.Send(ctx, seqFrame(1)) }()
		notDone(t, done, "Send without credit")
		s.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
	})
}

func TestBlockUnblock(t *testing.T) {
	bothModes(t, func(t *testing.T, remote bool) {
		ctx := testCtx(t)
		const credits, n = 2, 50
		a := newProc(t, "job", 1, Options{Window: credits * minFrameCost})
		b := newProc(t, "job", 1, Options{Window: credits * minFrameCost})
		held, other := ChannelID{Edge: 1, Producer: 0}, ChannelID{Edge: 1, Producer: 1}
		gate := a.n.Gate([]ChannelID{held, other})
		defer gate.Close()
		from := a
		if remote {
			from = b
		}
		sHeld, err := from.n.Open(ctx, held, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		sOther, err := a.n.Open(ctx, other, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		var sentHeld atomic.Int64
		errs := make(chan error, 2)
		go func() {
			defer sHeld.Close()
			for i := range n {
				if err := sHeld.Send(ctx, seqFrame(i)); err != nil {
					errs <- err
					return
				}
				sentHeld.Add(1)
			}
			errs <- sHeld.Send(ctx, Frame{Kind: KindEnd})
		}()

		// The held channel delivers its first frame (a barrier, say); block it.
		if d, err := gate.Next(ctx); err != nil || d.Index != 0 || frameSeq(t, d.Frame) != 0 {
			t.Fatalf("Next: %+v, %v", d, err)
		}
		gate.Block(0)
		// The other channel runs to its end while the held one waits.
		go func() { errs <- produce(ctx, sOther, n) }()
		for {
			d, err := gate.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d.Index == 0 {
				t.Fatalf("blocked channel delivered %+v", d.Frame)
			}
			if d.Frame.Kind == KindEnd {
				break
			}
		}
		// Backpressure: one frame consumed plus `credits` queued.
		time.Sleep(100 * time.Millisecond)
		if got := sentHeld.Load(); got != 1+credits {
			t.Fatalf("blocked producer completed %d sends, want %d", got, 1+credits)
		}
		gate.Unblock(0)
		next := 1
		for {
			d, err := gate.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Index != 0 {
				t.Fatalf("unexpected %+v", d)
			}
			if d.Frame.Kind == KindRecords {
				if got := frameSeq(t, d.Frame); got != next {
					t.Fatalf("got %d want %d", got, next)
				}
				next++
			}
		}
		if next != n {
			t.Fatalf("held channel delivered %d records, want %d", next, n)
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestBrokenChannel(t *testing.T) {
	ch := ChannelID{Edge: 3, Producer: 1, Consumer: 2}
	expectBroken := func(t *testing.T, ctx context.Context, gate *Gate) {
		t.Helper()
		for {
			d, err := gate.Next(ctx)
			if err == nil {
				continue // frames sent before the break
			}
			if !errors.Is(err, ErrChannelBroken) || !strings.Contains(err.Error(), ch.String()) || d.Channel != ch {
				t.Fatalf("Next: %+v, %v; want ErrChannelBroken naming %v", d, err, ch)
			}
			return
		}
	}
	t.Run("remote network closed", func(t *testing.T) {
		ctx := testCtx(t)
		a := newProc(t, "job", 1, Options{})
		b := newProc(t, "job", 1, Options{})
		gate := a.n.Gate([]ChannelID{ch})
		defer gate.Close()
		s, err := b.n.Open(ctx, ch, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := s.Send(ctx, seqFrame(i)); err != nil {
				t.Fatal(err)
			}
		}
		b.n.Close()
		expectBroken(t, ctx, gate)
		if err := s.Send(ctx, seqFrame(3)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send on closed network: %v", err)
		}
	})
	bothModes(t, func(t *testing.T, remote bool) {
		t.Run("sender closed before end", func(t *testing.T) {
			ctx := testCtx(t)
			gate, s := openChannel(t, ctx, remote, 4, ch)
			if err := s.Send(ctx, seqFrame(0)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			expectBroken(t, ctx, gate)
		})
	})
	t.Run("consumer network closed", func(t *testing.T) {
		ctx := testCtx(t)
		a := newProc(t, "job", 1, Options{Window: 1 * minFrameCost})
		b := newProc(t, "job", 1, Options{Window: 1 * minFrameCost})
		gate := a.n.Gate([]ChannelID{ch})
		s, err := b.n.Open(ctx, ch, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Send(ctx, seqFrame(0)); err != nil {
			t.Fatal(err)
		}
		// Hold the channel so that both ends wait: the producer for credit,
		// the consumer for a deliverable frame.
		gate.Block(0)
		blocked := make(chan error, 1)
		go func() { blocked <- s.Send(ctx, seqFrame(1)) }()
		next := make(chan error, 1)
		go func() {
			_, err := gate.Next(ctx)
			next <- err
		}()
		notDone(t, blocked, "Send without credit")
		notDone(t, next, "Next on a blocked channel")
		a.n.Close()
		if err := <-blocked; !errors.Is(err, ErrChannelBroken) {
			t.Fatalf("producer Send: %v, want ErrChannelBroken", err)
		}
		if err := <-next; !errors.Is(err, ErrClosed) {
			t.Fatalf("consumer Next: %v, want ErrClosed", err)
		}
	})
}

func TestWrongAttemptRefused(t *testing.T) {
	ctx := testCtx(t)
	ch := ChannelID{Edge: 1}
	a := newProc(t, "job", 2, Options{})
	gate := a.n.Gate([]ChannelID{ch})
	defer gate.Close()
	for _, p := range []struct {
		job     string
		attempt int64
	}{{"job", 1}, {"other", 2}} {
		stale := newProc(t, p.job, p.attempt, Options{})
		s, err := stale.n.Open(ctx, ch, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(ctx, seqFrame(0)); !errors.Is(err, ErrRefused) {
			t.Fatalf("%s attempt %d: Send = %v, want ErrRefused", p.job, p.attempt, err)
		}
		s.Close()
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if d, err := gate.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("gate delivered %+v, %v from a refused producer", d, err)
	}

	// The channel is still free for the right attempt.
	good := newProc(t, "job", 2, Options{})
	s, err := good.n.Open(ctx, ch, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(ctx, seqFrame(5)); err != nil {
		t.Fatal(err)
	}
	if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != 5 {
		t.Fatalf("Next: %+v, %v", d, err)
	}
	// A second producer for the same channel is refused.
	dup, err := good.n.Open(ctx, ch, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close()
	if err := dup.Send(ctx, seqFrame(0)); !errors.Is(err, ErrRefused) {
		t.Fatalf("duplicate producer: %v, want ErrRefused", err)
	}
}

func TestProducerBeforeGate(t *testing.T) {
	bothModes(t, func(t *testing.T, remote bool) {
		ctx := testCtx(t)
		ch := ChannelID{Edge: 4}
		a := newProc(t, "job", 1, Options{})
		from := a
		if remote {
			from = newProc(t, "job", 1, Options{})
		}
		s, err := from.n.Open(ctx, ch, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- produce(ctx, s, 3) }()
		notDone(t, done, "producer without a gate")
		gate := a.n.Gate([]ChannelID{ch})
		defer gate.Close()
		var n int
		for {
			_, err := gate.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 8 { // 3 records, barrier, watermark, end of data, barrier, end
			t.Fatalf("got %d frames", n)
		}
		waitDone(t, done, "producer")
	})
}

func TestEmptyGateAndClose(t *testing.T) {
	ctx := testCtx(t)
	a := newProc(t, "job", 1, Options{})
	if _, err := a.n.Gate(nil).Next(ctx); err != io.EOF {
		t.Fatalf("empty gate: %v", err)
	}
	g := a.n.Gate([]ChannelID{{Edge: 9}})
	done := make(chan error, 1)
	go func() {
		_, err := g.Next(ctx)
		done <- err
	}()
	notDone(t, done, "Next on idle gate")
	g.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	// The channel can be registered again once the gate closed.
	a.n.Gate([]ChannelID{{Edge: 9}}).Close()
	a.n.Close()
	if _, err := a.n.Open(ctx, ChannelID{}, a.addr); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Close: %v", err)
	}
	if _, err := a.n.Gate([]ChannelID{{Edge: 10}}).Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Gate after Close: %v", err)
	}
}

func TestLargeRemoteFrame(t *testing.T) {
	ctx := testCtx(t)
	gate, s := openChannel(t, ctx, true, 2, ChannelID{Edge: 5})
	big := make([]byte, 5<<20) // over gRPC's 4 MiB default limit
	for i := range big {
		big[i] = byte(i)
	}
	want := append([]byte(nil), big...)
	if err := s.Send(ctx, Frame{Kind: KindRecords, Data: big, Count: 1}); err != nil {
		t.Fatal(err)
	}
	d, err := gate.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Frame.Data) != string(want) {
		t.Fatalf("got %d bytes, corrupted", len(d.Frame.Data))
	}
	if err := s.Send(ctx, Frame{Kind: KindRecords, Data: make([]byte, maxFrameBytes+1)}); err == nil {
		t.Fatal("oversized frame accepted")
	}
}

func TestOpenUnreachablePeer(t *testing.T) {
	ctx := testCtx(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	p := newProc(t, "job", 1, Options{DialTimeout: 200 * time.Millisecond})
	start := time.Now()
	if _, err := p.n.Open(ctx, ChannelID{Edge: 1}, dead); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open to a dead peer: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Open took %v", d)
	}
}
