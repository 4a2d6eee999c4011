package exchange

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/syncbuf"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestStreamWithoutTheChannelSecretIsRefused(t *testing.T) {
	ctx := testCtx(t)
	ch := ChannelID{Edge: 1}
	a := newProc(t, "job", 1, Options{ChannelSecret: "s3cret"})
	gate := a.n.Gate([]ChannelID{ch})
	defer gate.Close()
	for _, secret := range []string{"", "s3cre", "s3cret!", "S3CRET"} {
		p := newProc(t, "job", 1, Options{ChannelSecret: secret})
		s, err := p.n.Open(ctx, ch, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(ctx, seqFrame(0))
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "channel secret") {
			t.Fatalf("secret %q: Send = %v, want ErrRefused naming the channel secret", secret, err)
		}
		s.Close()
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if d, err := gate.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("gate delivered %+v, %v from a producer without the secret", d, err)
	}
	good := newProc(t, "job", 1, Options{ChannelSecret: "s3cret"})
	s, err := good.n.Open(ctx, ch, a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(ctx, seqFrame(7)); err != nil {
		t.Fatal(err)
	}
	if d, err := gate.Next(ctx); err != nil || frameSeq(t, d.Frame) != 7 {
		t.Fatalf("Next: %+v, %v", d, err)
	}
}

// A stranger opening streams with a huge first message and no secret is
// refused from its headers alone: nothing it sent is decoded or logged, and
// its refusals make one log line.
func TestStrangerIsRefusedBeforeItsFramesAreRead(t *testing.T) {
	ctx := testCtx(t)
	var log syncbuf.Buffer
	a := newProcLogging(t, "job", 1, Options{ChannelSecret: "s3cret"}, &log)
	gate := a.n.Gate([]ChannelID{{Edge: 1}})
	defer gate.Close()

	cc, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	huge := strings.Repeat("J", 60<<20)
	var wg sync.WaitGroup
	codesSeen := make(chan codes.Code, 8)
	for i := range 8 {
		wg.Go(func() {
			md := metadata.Pairs(mdJob, huge[:1<<10], mdEdge, "1", mdProducer, "0", mdConsumer, "0")
			if i%2 == 1 {
				md = metadata.Pairs(mdSecret, "guess")
			}
			stream, err := weirv1.NewDataServiceClient(cc).Exchange(metadata.NewOutgoingContext(ctx, md))
			if err != nil {
				codesSeen <- status.Code(err)
				return
			}
			_ = stream.Send(&weirv1.DataFrame{Payload: &weirv1.DataFrame_Batch{Batch: &weirv1.RecordBatch{Data: []byte(huge), Count: 1}}})
			_, err = stream.Recv()
			codesSeen <- status.Code(err)
		})
	}
	wg.Wait()
	close(codesSeen)
	for c := range codesSeen {
		if c != codes.Unauthenticated {
			t.Errorf("stream ended with %v, want Unauthenticated", c)
		}
	}
	out := log.String()
	if n := strings.Count(out, "refused stream"); n != 1 || len(out) > 1<<10 || strings.Contains(out, "JJJJ") {
		t.Errorf("refusals logged %d lines, %d bytes (want one short line without the peer's bytes):\n%.2000s", n, len(out), out)
	}
}

func TestRefusalLogIsRateLimitedPerPeer(t *testing.T) {
	var log syncbuf.Buffer
	r := newRefusalLog(slogTo(&log), time.Minute)
	now := time.Unix(0, 0)
	r.now = func() time.Time { return now }
	err := status.Error(codes.Unauthenticated, "no secret")
	for range 100 {
		r.refused(peerAt("10.0.0.1:1"), err)
		r.refused(peerAt("10.0.0.2:1"), err)
	}
	if n := strings.Count(log.String(), "refused stream"); n != 2 {
		t.Fatalf("100 refusals from each of 2 peers logged %d lines, want 2", n)
	}
	now = now.Add(time.Minute)
	r.refused(peerAt("10.0.0.1:1"), err)
	if !strings.Contains(log.String(), "refused_since_last_line=99") {
		t.Errorf("the next line does not count the suppressed refusals:\n%s", log.String())
	}
	for i := range 2 * maxRefusalPeers {
		r.refused(peerAt("10.1."+itoa(i/256)+"."+itoa(i%256)+":1"), err)
	}
	if len(r.last) > maxRefusalPeers {
		t.Errorf("the log remembers %d peers, bound %d", len(r.last), maxRefusalPeers)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func peerAt(addr string) *peer.Peer {
	a, _ := net.ResolveTCPAddr("tcp", addr)
	return &peer.Peer{Addr: a}
}

func itoa(i int) string { return strconv.Itoa(i) }
