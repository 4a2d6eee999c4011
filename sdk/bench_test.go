package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/procstat"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// The benchmarks report records/s beside a plain Go loop doing the same
// work in the same run, so the ratio survives a noisy machine.

// The work of BenchmarkChain3: map, filter, map, then a sum.
func chain3Map1(i int64) int64  { return i * 2 }
func chain3Filter(v int64) bool { return v%3 != 0 }
func chain3Map2(v int64) int64  { return v + 1 }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func perSec(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// sumSink adds every record into total.
func sumSink(s Stream[int64], total *atomic.Int64) {
	NewSink(s, "Sum", func(TaskInfo) (SinkWriter[int64], error) { return &summer{total: total}, nil })
}

type summer struct {
	total *atomic.Int64
	sum   int64
}

func (s *summer) Write(v int64) error { s.sum += v; return nil }
func (s *summer) Finish() error       { s.total.Add(s.sum); return nil }
func (s *summer) Close() error        { return nil }

func BenchmarkChain3(b *testing.B) {
	var want int64
	for i := range int64(b.N) {
		if v := chain3Map1(i); chain3Filter(v) {
			want += chain3Map2(v)
		}
	}
	b.Run("weir", func(b *testing.B) {
		var total atomic.Int64
		p := NewPipeline("chain3", 1)
		gen := Generate(p, int64(b.N), func(i int64) int64 { return i })
		sumSink(Map(Filter(Map(gen, chain3Map1), chain3Filter), chain3Map2), &total)
		pl, err := p.compile()
		if err != nil || len(pl.Vertices) != 1 {
			b.Fatalf("want one fused chain: %v, %d vertices", err, len(pl.Vertices))
		}
		b.ResetTimer()
		if err := pl.RunLocal(context.Background(), quiet(), nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		perSec(b, b.N)
	})
	b.Run("loop", func(b *testing.B) {
		var sum int64
		for i := range int64(b.N) {
			if v := chain3Map1(i); chain3Filter(v) {
				sum += chain3Map2(v)
			}
		}
		perSec(b, b.N)
		if b.N > 0 && sum == 0 && want != 0 {
			b.Fatal("loop lost its work")
		}
	})
}

// BenchmarkExchange moves int64 records from a generator in one job process
// endpoint to a summing sink in another over loopback gRPC: encode, batch,
// credits, HTTP/2, decode. Both endpoints live in this test process, each
// with its own Network and gRPC server, as two job processes would.
func BenchmarkExchange(b *testing.B) {
	b.Run("weir-remote", func(b *testing.B) {
		remoteSum(b, int64(b.N))
		perSec(b, b.N)
	})
	b.Run("loop", func(b *testing.B) {
		// The same work without the framework: a producer goroutine hands
		// batches of 512 records to a consumer over a buffered channel.
		ch := make(chan []int64, 8)
		go func() {
			batch := make([]int64, 0, 512)
			for i := range int64(b.N) {
				if batch = append(batch, i); len(batch) == cap(batch) {
					ch <- batch
					batch = make([]int64, 0, 512)
				}
			}
			ch <- batch
			close(ch)
		}()
		var sum int64
		for batch := range ch {
			for _, v := range batch {
				sum += v
			}
		}
		perSec(b, b.N)
		if want := int64(b.N) * int64(b.N-1) / 2; sum != want {
			b.Fatalf("sum %d, want %d", sum, want)
		}
	})
}

// remoteSum moves n generated int64 records (Generate's options opts)
// through a rebalance from one job process endpoint to a summing sink in
// another over loopback gRPC, and checks the sum.
func remoteSum(b *testing.B, n int64, opts ...Option) {
	var total atomic.Int64
	p := NewPipeline("exchange", 1)
	gen := Generate(p, n, func(i int64) int64 { return i }, opts...)
	sumSink(Map(Rebalance(gen), func(v int64) int64 { return v }, StartNewChain()), &total)
	pl, err := p.compile()
	if err != nil || len(pl.Vertices) != 2 {
		b.Fatalf("want two vertices: %v", err)
	}
	a, stopA := serveNetwork(b)
	c, stopC := serveNetwork(b)
	defer stopA()
	defer stopC()
	route := func(r runtime.SubtaskRef) string {
		if r.Vertex == 0 {
			return a.Self
		}
		return c.Self
	}
	a.Route, c.Route = route, route
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, d := range []*runtime.Deployment{a, c} {
		wg.Go(func() {
			errs[i] = pl.Run(context.Background(), d, []runtime.SubtaskRef{{Vertex: i}}, func(runtime.SubtaskRef, weirv1.TaskState, error) {})
		})
	}
	wg.Wait()
	b.StopTimer()
	if errs[0] != nil || errs[1] != nil {
		b.Fatal(errs)
	}
	if want := n * (n - 1) / 2; total.Load() != want {
		b.Fatalf("sum %d, want %d", total.Load(), want)
	}
}

// BenchmarkPacedExchange is BenchmarkExchange's remote pipeline with the
// source paced at a modest rate, as most jobs run: the CPU (of this whole
// process: both endpoints) it costs per record, which at such rates is
// mostly per frame and per wake-up rather than per record.
func BenchmarkPacedExchange(b *testing.B) {
	for _, rate := range []float64{2_000, 20_000} {
		b.Run(fmt.Sprintf("rate=%v", rate), func(b *testing.B) {
			n := int64(rate / 2) // half a second per run
			before := procstat.CPU()
			for range b.N {
				remoteSum(b, n, WithRate(rate))
			}
			cpu := procstat.CPU() - before
			b.ReportMetric(float64(cpu.Microseconds())/float64(n*int64(b.N)), "cpu-µs/record")
		})
	}
}

// serveNetwork starts one job process endpoint: a Network behind its own
// gRPC server on a loopback port.
func serveNetwork(tb testing.TB) (*runtime.Deployment, func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	nw := exchange.NewNetwork("bench", 1, exchange.Options{}, nil)
	srv := grpc.NewServer(exchange.ServerOptions()...)
	nw.Register(srv)
	go srv.Serve(lis)
	self := lis.Addr().String()
	nw.SetLocalAddr(self)
	d := &runtime.Deployment{JobID: "bench", Attempt: 1, Net: nw, Self: self, Logger: quiet()}
	return d, func() {
		nw.Close()
		srv.Stop()
	}
}
