package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTLSChannelDeliversAndHidesItsBytes(t *testing.T) {
	ctx := testCtx(t)
	const secret = "the-attempts-channel-secret"
	consumer := newProc(t, "job", 1, Options{ChannelSecret: secret, TLS: true})
	tap := newTappingProxy(t, consumer.addr)
	producer := newProc(t, "job", 1, Options{ChannelSecret: secret, TLS: true})
	producer.n.SetPins(map[string][]byte{tap.addr: consumer.fingerprint})

	ch := ChannelID{Edge: 2, Producer: 1, Consumer: 0}
	gate := consumer.n.Gate([]ChannelID{ch})
	defer gate.Close()
	s, err := producer.n.Open(ctx, ch, tap.addr)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("plaintext-record-that-must-not-be-seen-on-the-wire")
	for i := range 3 {
		if err := s.Send(ctx, Frame{Kind: KindRecords, Data: payload, Count: 1}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for i := range 3 {
		d, err := gate.Next(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(d.Frame.Data, payload) || d.Channel != ch {
			t.Fatalf("frame %d: got %q on %v", i, d.Frame.Data, d.Channel)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wire := tap.seen()
	if len(wire) < 3*len(payload) {
		t.Fatalf("the proxy saw %d bytes, fewer than the payload: the test is not watching the channel", len(wire))
	}
	for _, plain := range []string{string(payload), secret, "weir-channel-secret"} {
		if bytes.Contains(wire, []byte(plain)) {
			t.Errorf("%q crossed the wire in clear", plain)
		}
	}
}

func TestTLSChannelRefusesWhatItCannotPin(t *testing.T) {
	ctx := testCtx(t)
	opts := Options{ChannelSecret: "s", TLS: true, DialTimeout: time.Second}
	consumer := newProc(t, "job", 1, opts)
	ch := ChannelID{Edge: 1}
	gate := consumer.n.Gate([]ChannelID{ch})
	defer gate.Close()
	other := sha256.Sum256([]byte("another process's certificate"))

	for _, tc := range []struct {
		name     string
		producer Options
		pin      []byte // nil: none set
		want     string
	}{
		{"no pin", opts, nil, "no certificate pin"},
		{"another certificate", opts, other[:], "certificate is not the one its route pins"},
		{"plaintext producer", Options{ChannelSecret: "s", DialTimeout: time.Second}, nil, "not ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProc(t, "job", 1, tc.producer)
			if tc.pin != nil {
				p.n.SetPins(map[string][]byte{consumer.addr: tc.pin})
			}
			s, err := p.n.Open(ctx, ch, consumer.addr)
			if err == nil {
				err = s.Send(ctx, seqFrame(1))
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A TLS producer pinning a plaintext consumer does not fall back.
	plain := newProc(t, "job", 1, Options{ChannelSecret: "s"})
	pgate := plain.n.Gate([]ChannelID{ch})
	defer pgate.Close()
	p := newProc(t, "job", 1, opts)
	p.n.SetPins(map[string][]byte{plain.addr: other[:]})
	if s, err := p.n.Open(ctx, ch, plain.addr); err == nil {
		err = s.Send(ctx, seqFrame(1))
		s.Close()
		t.Fatalf("a TLS producer sent to a plaintext consumer: %v", err)
	}

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	for _, g := range []*Gate{gate, pgate} {
		if d, err := g.Next(short); err == nil {
			t.Fatalf("a refused producer delivered %+v", d)
		}
	}
}

// tappingProxy forwards TCP connections to a target and keeps a copy of
// every byte a client sent.
type tappingProxy struct {
	addr string
	mu   sync.Mutex
	buf  bytes.Buffer
}

func newTappingProxy(t *testing.T, target string) *tappingProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tappingProxy{addr: lis.Addr().String()}
	var wg sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			connsMu.Lock()
			conns = append(conns, c, up)
			connsMu.Unlock()
			wg.Go(func() { io.Copy(io.MultiWriter(up, p), c); up.Close() })
			wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() {
		lis.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *tappingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *tappingProxy) seen() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.buf.Bytes())
}
