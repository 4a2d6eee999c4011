package exchange

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A channel's window is in bytes: a batch costs its size, at least
// minFrameCost, and a local batch an eighth of the window. The producer
// sends while it holds any credit, so a batch larger than what is left (or
// than the whole window) still goes, and the next one waits for credit.
func TestWindowInBytes(t *testing.T) {
	sized := func(n int) func(int) Frame {
		return func(i int) Frame {
			d := make([]byte, n)
			binary.PutUvarint(d, uint64(i))
			return Frame{Kind: KindRecords, Data: d, Count: 1}
		}
	}
	local := func(i int) Frame { return Frame{Kind: KindRecords, Local: &i, Count: 1} }
	for _, tc := range []struct {
		name      string
		window    int
		frame     func(i int) Frame
		localOnly bool
		fit       int // frames sent before one waits for credit
	}{
		{name: "small frames cost the minimum", window: 8 << 10, frame: seqFrame, fit: 8},
		{name: "frames cost their size", window: 8 << 10, frame: sized(4 << 10), fit: 2},
		{name: "a frame goes while any credit is left", window: 8 << 10, frame: sized(3 << 10), fit: 3},
		{name: "a frame larger than the window", window: 2 << 10, frame: sized(10 << 10), fit: 1},
		{name: "local batches cost an eighth", window: 8 << 10, frame: local, localOnly: true, fit: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothModes(t, func(t *testing.T, remote bool) {
				if remote && tc.localOnly {
					t.Skip("local batches are in-memory only")
				}
				ctx := testCtx(t)
				gate, s := openWindow(t, ctx, remote, tc.window, ChannelID{Edge: 1})
				for i := range tc.fit {
					sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := s.Send(sctx, tc.frame(i))
					cancel()
					if err != nil {
						t.Fatalf("Send %d of %d within the window: %v", i, tc.fit, err)
					}
				}
				waiting := make(chan error, 1)
				go func() { waiting <- s.Send(ctx, tc.frame(tc.fit)) }()
				notDone(t, waiting, "Send beyond the window")

				seq := func(d Delivery) int {
					if p, ok := d.Frame.Local.(*int); ok {
						return *p
					}
					return frameSeq(t, d.Frame)
				}
				// The first frame is being processed: its credit is still out.
				if d, err := gate.Next(ctx); err != nil || seq(d) != 0 {
					t.Fatalf("Next: %+v, %v", d, err)
				}
				notDone(t, waiting, "Send while the first frame is processed")
				for i := 1; i <= tc.fit; i++ {
					d, err := gate.Next(ctx) // the first Next here returns frame 0's credit
					if err != nil || seq(d) != i {
						t.Fatalf("Next: %+v, %v; want frame %d", d, err, i)
					}
					if i == 1 {
						waitDone(t, waiting, "Send after credit came back")
					}
				}
			})
		})
	}
}

// A producer that sends beyond the window its consumer granted breaks the
// channel: the consumer's memory stays bounded by the window, and it says
// why.
func TestProducerBeyondItsWindowBreaksTheChannel(t *testing.T) {
	ctx := testCtx(t)
	ch := ChannelID{Edge: 1}
	a := newProc(t, "job", 1, Options{ChannelSecret: "s", Window: 2 * minFrameCost})
	gate := a.n.Gate([]ChannelID{ch})
	defer gate.Close()
	// The producer's own Network: the right headers, then frames with no
	// regard for credit.
	p := newProc(t, "job", 1, Options{ChannelSecret: "s"})
	cc, err := p.n.conn(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := weirv1.NewDataServiceClient(cc).Exchange(metadata.NewOutgoingContext(ctx, p.n.channelMD(ch)))
	if err != nil {
		t.Fatal(err)
	}
	if cr, err := stream.Recv(); err != nil || cr.Bytes != 2*minFrameCost {
		t.Fatalf("first credit %v, %v; want the window, %d bytes", cr, err, 2*minFrameCost)
	}
	batch := &weirv1.DataFrame{Payload: &weirv1.DataFrame_Batch{Batch: &weirv1.RecordBatch{Data: []byte{1, 7}, Count: 1}}}
	for range 3 {
		if err := stream.Send(batch); err != nil {
			break // the consumer may already have ended the stream
		}
	}
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "without credit") {
		t.Fatalf("stream ended with %v, want InvalidArgument: without credit", err)
	}
	var d Delivery
	for range 3 {
		if d, err = gate.Next(ctx); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrChannelBroken) || !strings.Contains(err.Error(), "without credit") || d.Channel != ch {
		t.Fatalf("consumer: %+v, %v; want the channel broken: without credit", d, err)
	}
}
