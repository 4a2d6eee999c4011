// Command beam runs the Nexmark peer queries wcount and scount on the Apache
// Beam Go SDK with its Prism runner, in process, and prints the same result
// JSON as bench/cmd/baseline: events, wall and CPU seconds, and the output's
// checksum, which must equal the baseline's.
//
//	go run . --query wcount|scount --events N [--seed 1] [--event-rate 10000] [--shards 8]
//
// Semantics: bench/nexmark/QUERIES.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/pprof"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/internal/procstat"
)

func init() {
	beam.RegisterType(reflect.TypeFor[nexmark.Checksum]())
	register.DoFn2x0[[]byte, func(int64)](&shardsFn{})
	register.Emitter1[int64]()
	register.DoFn2x0[int64, func(beam.EventTime, int64)](&generateFn{})
	register.Emitter2[beam.EventTime, int64]()
	register.DoFn4x0[beam.Window, int64, int, func(nexmark.Checksum)](&hashFn{})
	register.Emitter1[nexmark.Checksum]()
	register.Function2x1(mergeChecksums)
	register.DoFn1x1[nexmark.Checksum, error](&writeFn{})
}

// shardsFn turns the impulse into the shard numbers 0..Shards-1.
type shardsFn struct {
	Shards int64
}

func (f *shardsFn) ProcessElement(_ []byte, emit func(int64)) {
	for s := range f.Shards {
		emit(s)
	}
}

// generateFn generates the events of one shard, a contiguous part of the
// index range [0, N), and emits every bid's auction at the bid's event time.
type generateFn struct {
	Seed      uint64
	EventRate float64
	N, Shards int64

	g *nexmark.Generator
}

func (f *generateFn) Setup() {
	f.g = nexmark.NewGenerator(nexmark.Config{Seed: f.Seed, EventsPerSecond: f.EventRate})
}

func (f *generateFn) ProcessElement(shard int64, emit func(beam.EventTime, int64)) {
	lo, hi := shardRange(f.N, f.Shards, shard)
	for i := lo; i < hi; i++ {
		e := f.g.Event(i)
		if e.Kind != nexmark.KindBid {
			continue
		}
		emit(beam.EventTime(e.Time()), e.Bid.Auction)
	}
}

// shardRange is shard s's part of [0, n) out of p shards.
func shardRange(n, p, s int64) (lo, hi int64) {
	return n * s / p, n * (s + 1) / p
}

// hashFn makes a window's count of one auction a KeyCount and hashes it into
// a checksum of one output.
type hashFn struct {
	buf []byte
}

func (f *hashFn) ProcessElement(w beam.Window, auction int64, count int, emit func(nexmark.Checksum)) {
	iw := w.(window.IntervalWindow)
	var c nexmark.Checksum
	f.buf = nexmark.Add(&c, f.buf, nexmark.KeyCount{Key: auction, Count: int64(count), Start: int64(iw.Start), End: int64(iw.End)})
	emit(c)
}

func mergeChecksums(a, b nexmark.Checksum) nexmark.Checksum {
	a.Merge(b)
	return a
}

// writeFn writes the final checksum to Path, for the driver to read: the
// pipeline's only way back to the program that ran it.
type writeFn struct {
	Path string
}

func (f *writeFn) ProcessElement(c nexmark.Checksum) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(f.Path, b, 0o644)
}

// build makes the pipeline of query (wcount or scount) writing its checksum
// to out.
func build(query string, n, shards int64, seed uint64, rate float64, out string) (*beam.Pipeline, error) {
	var wfn *window.Fn
	switch query {
	case "wcount":
		wfn = window.NewFixedWindows(10 * time.Second)
	case "scount":
		wfn = window.NewSlidingWindows(2*time.Second, 10*time.Second)
	default:
		return nil, fmt.Errorf("unknown query %q (want wcount or scount)", query)
	}
	p, s := beam.NewPipelineWithRoot()
	shardIDs := beam.ParDo(s, &shardsFn{Shards: shards}, beam.Impulse(s))
	// Without the reshuffle, the runner fuses the generator with the
	// impulse into one bundle, run by one worker.
	shardIDs = beam.Reshuffle(s, shardIDs)
	auctions := beam.ParDo(s, &generateFn{Seed: seed, EventRate: rate, N: n, Shards: shards}, shardIDs)
	counts := stats.Count(s, beam.WindowInto(s, wfn, auctions))
	sums := beam.ParDo(s, &hashFn{}, counts)
	total := beam.Combine(s, mergeChecksums, beam.WindowInto(s, window.NewGlobalWindows(), sums))
	beam.ParDo0(s, &writeFn{Path: out}, total)
	return p, nil
}

// run runs the query on Prism in this process and returns its checksum.
func run(ctx context.Context, query string, n, shards int64, seed uint64, rate float64) (nexmark.Checksum, error) {
	var c nexmark.Checksum
	dir, err := os.MkdirTemp("", "weir-beam-peer-")
	if err != nil {
		return c, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "checksum.json")
	p, err := build(query, n, shards, seed, rate, out)
	if err != nil {
		return c, err
	}
	if _, err := prism.Execute(ctx, p); err != nil {
		return c, err
	}
	b, err := os.ReadFile(out)
	if os.IsNotExist(err) {
		return c, nil // no output at all: the empty checksum
	}
	if err != nil {
		return c, err
	}
	err = json.Unmarshal(b, &c)
	return c, err
}

func main() {
	query := flag.String("query", "", "query: wcount or scount")
	events := flag.Int64("events", 1_000_000, "number of events")
	seed := flag.Uint64("seed", nexmark.DefaultConfig().Seed, "generator seed")
	eventRate := flag.Float64("event-rate", nexmark.DefaultConfig().EventsPerSecond, "event-time rate of the generator")
	shards := flag.Int64("shards", 8, "parts the event index range is split into, generated in parallel")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	beam.Init()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *shards < 1 {
		*shards = 1
	}
	start := time.Now()
	sum, err := run(context.Background(), *query, *events, *shards, *seed, *eventRate)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	wall := time.Since(start)
	cpu := procstat.CPU()
	json.NewEncoder(os.Stdout).Encode(nexmark.RunResult{Query: *query, Events: *events, WallSec: wall.Seconds(), CPUSec: cpu.Seconds(), Checksum: sum})
}
