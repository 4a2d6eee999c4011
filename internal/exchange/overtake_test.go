package exchange

import (
	"testing"
	"time"
)

// A barrier costs no credit: with every credit spent and the consumer not
// reading, it still reaches the gate. An aligned barrier queues behind the
// records; Overtake then lifts it out, with the records it passed.
func TestBarrierWithoutCreditAndOvertake(t *testing.T) {
	bothModes(t, func(t *testing.T, remote bool) {
		ctx := testCtx(t)
		gate, s := openChannel(t, ctx, remote, 2, ChannelID{Edge: 1})
		for i := range 2 {
			if err := s.Send(ctx, seqFrame(i)); err != nil {
				t.Fatal(err)
			}
		}
		sent := make(chan error, 1)
		go func() { sent <- s.Send(ctx, Frame{Kind: KindBarrier, CheckpointID: 3, Timestamp: 5}) }()
		waitDone(t, sent, "barrier Send with no credit left")
		// A record after it waits for credit as before.
		third := make(chan error, 1)
		go func() { third <- s.Send(ctx, seqFrame(2)) }()
		notDone(t, third, "third record Send with no credit")

		waitQueued(t, gate, 0, 3)
		gate.Overtake(3)
		d, err := gate.Next(ctx)
		if err != nil || d.Frame.Kind != KindBarrier || d.Frame.CheckpointID != 3 {
			t.Fatalf("first Next after Overtake: %+v, %v; want barrier 3", d, err)
		}
		if len(d.Overtaken) != 2 || frameSeq(t, d.Overtaken[0]) != 0 || frameSeq(t, d.Overtaken[1]) != 1 {
			t.Fatalf("barrier overtook %d frames, want records 0 and 1", len(d.Overtaken))
		}
		// The overtaken records are still delivered, in order, and the
		// barrier's delivery returned no credit it did not take.
		notDone(t, third, "third record Send after the barrier's delivery")
		for want := range 3 {
			d, err := gate.Next(ctx)
			if err != nil || d.Frame.Kind != KindRecords || frameSeq(t, d.Frame) != want {
				t.Fatalf("Next: %+v, %v; want record %d", d, err, want)
			}
			if want == 1 {
				waitDone(t, third, "third record Send after credit returned")
			}
		}
	})
}

// An unaligned barrier overtakes at once, and a partial batch sent as
// overdraft just before it is among what it overtook; neither takes credit.
func TestUnalignedBarrierOvertakesOverdraft(t *testing.T) {
	bothModes(t, func(t *testing.T, remote bool) {
		ctx := testCtx(t)
		gate, s := openChannel(t, ctx, remote, 1, ChannelID{Edge: 1})
		if err := s.Send(ctx, seqFrame(0)); err != nil {
			t.Fatal(err)
		}
		over := seqFrame(1)
		over.Overdraft = true
		if err := s.Send(ctx, over); err != nil {
			t.Fatal(err)
		}
		if err := s.Send(ctx, Frame{Kind: KindBarrier, CheckpointID: 9, Unaligned: true}); err != nil {
			t.Fatal(err)
		}
		d, err := gate.Next(ctx)
		if err != nil || d.Frame.Kind != KindBarrier || !d.Frame.Unaligned {
			t.Fatalf("first Next: %+v, %v; want the unaligned barrier", d, err)
		}
		if len(d.Overtaken) != 2 || !d.Overtaken[1].Overdraft {
			t.Fatalf("barrier overtook %+v, want record 0 and the overdraft batch", d.Overtaken)
		}
		for want := range 2 {
			if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != want {
				t.Fatalf("Next: %+v, %v; want record %d", d, err, want)
			}
		}
	})
}

// waitQueued waits until channel index of gate holds n frames.
func waitQueued(t *testing.T, g *Gate, index, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		g.mu.Lock()
		got := g.chans[index].queue.len()
		g.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("channel %d never held %d frames", index, n)
}
