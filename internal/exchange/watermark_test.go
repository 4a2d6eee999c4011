package exchange

import (
	"testing"
)

// A watermark costs no credit: with every credit spent and the consumer not
// reading, watermarks still reach the gate, behind the records sent before
// them. Consecutive ones coalesce into the newest, so they cannot pile up;
// one after a record batch does not merge across it, nor does an idle marker.
func TestWatermarkWithoutCreditKeepsOrderAndCoalesces(t *testing.T) {
	bothModes(t, func(t *testing.T, remote bool) {
		ctx := testCtx(t)
		gate, s := openChannel(t, ctx, remote, 1, ChannelID{Edge: 1})
		send := func(f Frame) {
			t.Helper()
			done := make(chan error, 1)
			go func() { done <- s.Send(ctx, f) }()
			waitDone(t, done, f.Kind.String()+" Send with no credit left")
		}
		send(seqFrame(0)) // spends the only credit
		for ts := int64(1); ts <= 50; ts++ {
			send(Frame{Kind: KindWatermark, Timestamp: ts})
		}
		send(Frame{Kind: KindWatermark, Timestamp: 50, Idle: true})
		send(Frame{Kind: KindWatermark, Timestamp: 60})
		// record 0, watermark 50 (50 coalesced), idle, watermark 60.
		waitQueued(t, gate, 0, 4)

		blocked := make(chan error, 1)
		go func() { blocked <- s.Send(ctx, seqFrame(1)) }()
		notDone(t, blocked, "record Send with no credit")

		if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != 0 {
			t.Fatalf("Next: %+v, %v; want record 0", d, err)
		}
		want := []Frame{{Kind: KindWatermark, Timestamp: 50}, {Kind: KindWatermark, Timestamp: 50, Idle: true}, {Kind: KindWatermark, Timestamp: 60}}
		for _, w := range want {
			d, err := gate.Next(ctx)
			if err != nil || d.Frame.Kind != w.Kind || d.Frame.Timestamp != w.Timestamp || d.Frame.Idle != w.Idle {
				t.Fatalf("Next: %+v, %v; want %+v", d.Frame, err, w)
			}
			// Record 0's credit came back with the first watermark's
			// delivery; the watermarks' deliveries return none.
		}
		waitDone(t, blocked, "record Send after credit returned")
		if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != 1 {
			t.Fatalf("Next: %+v, %v; want record 1", d, err)
		}
	})
}
