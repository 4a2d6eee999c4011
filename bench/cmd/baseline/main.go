// Command baseline runs one Nexmark query's single-threaded baseline and
// prints its result as JSON: events, wall and CPU seconds, and the output's
// checksum.
//
//	baseline --query q5 --events 10000000 [--seed 1]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/weir-run/weir/bench/baseline"
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/internal/procstat"
)

func main() {
	query := flag.String("query", "", "query: "+strings.Join(baseline.Names(), ", "))
	events := flag.Int64("events", 1_000_000, "number of events")
	seed := flag.Uint64("seed", nexmark.DefaultConfig().Seed, "generator seed")
	eventRate := flag.Float64("event-rate", nexmark.DefaultConfig().EventsPerSecond, "event-time rate of the generator")
	flag.Parse()
	q, ok := baseline.Queries[*query]
	if !ok {
		fmt.Fprintf(os.Stderr, "error: unknown query %q (want one of %s)\n", *query, strings.Join(baseline.Names(), ", "))
		os.Exit(2)
	}
	// One thread runs the query; the garbage collector may still use others,
	// which the CPU time counts.
	runtime.LockOSThread()
	g := nexmark.NewGenerator(nexmark.Config{Seed: *seed, EventsPerSecond: *eventRate})
	start := time.Now()
	sum := q(g, *events)
	wall := time.Since(start)
	cpu := procstat.CPU()
	json.NewEncoder(os.Stdout).Encode(nexmark.RunResult{Query: *query, Events: *events, WallSec: wall.Seconds(), CPUSec: cpu.Seconds(), Checksum: sum})
}
