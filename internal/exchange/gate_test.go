package exchange

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Mail posted to a gate overtakes queued data, wakes an idle Next, and
// costs no credit.
func TestPostOvertakesDataAndWakesNext(t *testing.T) {
	p := newProc(t, "job", 1, Options{Window: 2 * minFrameCost})
	ctx := testCtx(t)
	ch := ChannelID{Edge: 0, Producer: 0, Consumer: 0}
	g := p.n.Gate([]ChannelID{ch})
	s, err := p.n.Open(ctx, ch, p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2 {
		if err := s.Send(ctx, seqFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	g.Post(Frame{Kind: KindBarrier, CheckpointID: 7})
	d, err := g.Next(ctx)
	if err != nil || d.Index != -1 || d.Frame.CheckpointID != 7 {
		t.Fatalf("first Next = %+v, %v; want the posted frame with index -1", d, err)
	}
	for i := range 2 {
		d, err := g.Next(ctx)
		if err != nil || frameSeq(t, d.Frame) != i {
			t.Fatalf("data frame %d: %+v, %v", i, d, err)
		}
	}

	// An idle Next wakes for mail.
	go func() {
		time.Sleep(20 * time.Millisecond)
		g.Post(Frame{Kind: KindBarrier, CheckpointID: 8})
	}()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err = g.Next(wctx)
	if errors.Is(err, context.DeadlineExceeded) || d.Index != -1 || d.Frame.CheckpointID != 8 {
		t.Fatalf("idle Next = %+v, %v; want the mail", d, err)
	}
}
