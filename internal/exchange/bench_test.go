package exchange

import (
	"context"
	"io"
	"testing"
)

const benchFrameBytes = 32 << 10

var benchOpts = Options{}

// benchFrame is reused across Sends. On a local channel that breaks the
// ownership rule (a remote one is done with Data when Send returns), which
// is harmless here because nobody reads the contents: the benchmarks measure
// moving frames, not producing them.
func benchFrame() Frame {
	return Frame{Kind: KindRecords, Data: make([]byte, benchFrameBytes), Count: 256}
}

func benchChannel(b *testing.B, remote bool) {
	ctx := context.Background()
	a := newProc(b, "bench", 1, benchOpts)
	from := a
	if remote {
		from = newProc(b, "bench", 1, benchOpts)
	}
	ch := ChannelID{Edge: 1}
	gate := a.n.Gate([]ChannelID{ch})
	defer gate.Close()
	s, err := from.n.Open(ctx, ch, a.addr)
	if err != nil {
		b.Fatal(err)
	}
	f := benchFrame()
	b.SetBytes(benchFrameBytes)
	b.ReportAllocs()
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() {
		defer s.Close()
		for range b.N {
			if err := s.Send(ctx, f); err != nil {
				errc <- err
				return
			}
		}
		errc <- s.Send(ctx, Frame{Kind: KindEnd})
	}()
	n := 0
	for {
		d, err := gate.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if d.Frame.Kind == KindRecords {
			n += len(d.Frame.Data)
		}
	}
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if n != b.N*benchFrameBytes {
		b.Fatalf("moved %d bytes, want %d", n, b.N*benchFrameBytes)
	}
}

// BenchmarkLocal moves 32 KiB frames through an in-memory channel with the
// default 1 MiB window (32 frames).
func BenchmarkLocal(b *testing.B) { benchChannel(b, false) }

// BenchmarkRemote moves 32 KiB frames over a DataService stream on 127.0.0.1
// with the default 1 MiB window (32 frames).
func BenchmarkRemote(b *testing.B) { benchChannel(b, true) }

// BenchmarkChanBaseline moves the same frames through a buffered Go channel
// of the same capacity as the window, the floor for the local channel.
func BenchmarkChanBaseline(b *testing.B) {
	f := benchFrame()
	c := make(chan Frame, defaultWindow/benchFrameBytes)
	b.SetBytes(benchFrameBytes)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			c <- f
		}
		close(c)
	}()
	n := 0
	for f := range c {
		n += len(f.Data)
	}
	if n != b.N*benchFrameBytes {
		b.Fatalf("moved %d bytes", n)
	}
}
