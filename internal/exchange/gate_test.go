package exchange

import (
	"context"
	"errors"
	"slices"
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

// Next delivers the frame of the channel furthest behind in event time (its
// newest watermark delivered, from a batch's marks or a watermark frame),
// channels taking turns among equals and while they have delivered no
// watermark; a lagging channel passes over the one whose turn it is at most
// maxPassedOver times in a row.
func TestNextTakesTheLaggingChannelFirst(t *testing.T) {
	type sent struct {
		wm      int64 // the frame's last mark, or a watermark frame's time
		records bool  // a batch (its mark at wm unless wm is 0); else a watermark frame
	}
	batch := func(wms ...int64) []sent {
		var s []sent
		for _, w := range wms {
			s = append(s, sent{wm: w, records: true})
		}
		return s
	}
	cases := []struct {
		name   string
		chans  [2][]sent
		wantCh []int // the channel of each delivery, in order
	}{
		{"the laggard goes first", [2][]sent{batch(10, 20, 30), batch(100, 200)}, []int{0, 1, 0, 0, 1}},
		{"no watermarks: turns", [2][]sent{batch(0, 0, 0), batch(0, 0)}, []int{0, 1, 0, 1, 0}},
		{"equal watermarks: turns", [2][]sent{batch(10, 20, 30), batch(10, 20, 30)}, []int{0, 1, 0, 1, 0, 1}},
		{"a watermark frame ranks its channel", [2][]sent{{{wm: 500}, {wm: 600, records: true}}, batch(10, 20, 30)}, []int{0, 1, 1, 1, 0}},
		// Channel 0's watermark is stuck at 5: after the first two turns,
		// it is first in turn once, then passes channel 1 over 16 times.
		{"a stuck watermark starves nobody", [2][]sent{batch(slices.Repeat([]int64{5}, 20)...), batch(100, 200)},
			slices.Concat([]int{0, 1, 0}, slices.Repeat([]int{0}, maxPassedOver), []int{1, 0, 0})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProc(t, "job", 1, Options{})
			ctx := testCtx(t)
			ids := []ChannelID{{Producer: 0}, {Producer: 1}}
			g := p.n.Gate(ids)
			total := 0
			for i, id := range ids {
				s, err := p.n.Open(ctx, id, p.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for _, x := range tc.chans[i] {
					f := Frame{Kind: KindWatermark, Timestamp: x.wm}
					if x.records {
						f = seqFrame(total)
						if x.wm != 0 {
							f.Marks = []Mark{{At: 1, Timestamp: x.wm}}
						}
					}
					if err := s.Send(ctx, f); err != nil {
						t.Fatal(err)
					}
					total++
				}
			}
			var got []int
			for len(got) < total {
				d, err := g.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, d.Index)
			}
			if !slices.Equal(got, tc.wantCh) {
				t.Fatalf("delivered from channels %v, want %v", got, tc.wantCh)
			}
		})
	}
}
