// Command job runs one Nexmark query as a weir job over generated events,
// for the bench harness (bench/cmd/weirbench, which builds it as "nexmark")
// and for trying weir out:
//
//	go build -o nexmark ./bench/job
//	nexmark -- --query q5 --events 10000000 [--seed 1] [--rate R] [--latency] [--report-dir D]
//
// The output goes to a checksum sink: it counts and hashes the results
// (nexmark.Checksum, order-independent) and, when --report-dir is given,
// writes a nexmark.SinkReport per subtask at the end of input. The query
// semantics are in bench/nexmark/QUERIES.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

func main() { sdk.Main(build) }

// query builds a query on the event stream, ending in checksumSink.
type query func(events sdk.Stream[nexmark.Event], out sinkConfig)

// queries is filled by the q*.go files' init functions.
var queries = map[string]query{}

func queryNames() []string {
	names := make([]string, 0, len(queries))
	for n := range queries {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func build(p *sdk.Pipeline, args []string) error {
	fs := flag.NewFlagSet("nexmark", flag.ContinueOnError)
	name := fs.String("query", "", "query to run: "+strings.Join(queryNames(), ", "))
	events := fs.Int64("events", 1_000_000, "number of events to generate")
	seed := fs.Uint64("seed", nexmark.DefaultConfig().Seed, "generator seed")
	rate := fs.Float64("rate", 0, "events per second for the whole job (0: as fast as possible)")
	eventRate := fs.Float64("event-rate", nexmark.DefaultConfig().EventsPerSecond, "event-time rate of the generator (events per second of event time)")
	latency := fs.Bool("latency", false, "stamp events with the wall clock at the source and record output latency")
	reportDir := fs.String("report-dir", "", "directory for the sinks' reports (none: only log the checksum)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q, ok := queries[*name]
	switch {
	case *name == "":
		return fmt.Errorf("nexmark needs --query (one of %s)", strings.Join(queryNames(), ", "))
	case !ok:
		return fmt.Errorf("unknown query %q (want one of %s)", *name, strings.Join(queryNames(), ", "))
	case *events < 0:
		return errors.New("--events must not be negative")
	case *eventRate <= 0:
		return errors.New("--event-rate must be positive")
	case *rate < 0:
		return errors.New("--rate must not be negative")
	}
	sdk.RegisterCodec[nexmark.Event](nexmark.EventCodec{})
	gen := nexmark.NewGenerator(nexmark.Config{Seed: *seed, EventsPerSecond: *eventRate})
	ev := sdk.Generate(p, *events, gen.Event, sdk.WithRate(*rate), sdk.WithName("Nexmark"), sdk.WithUID("nexmark-source"))
	if *latency {
		ev = sdk.Map(ev, func(e nexmark.Event) nexmark.Event {
			e.Emit = time.Now().UnixNano()
			return e
		}, sdk.WithName("StampEmit"), sdk.WithUID("stamp"))
	}
	ev = sdk.AssignTimestamps(ev, nexmark.Event.Time, sdk.BoundedOutOfOrder(0), sdk.WithUID("timestamps"))
	q(ev, sinkConfig{query: *name, dir: *reportDir})
	return nil
}
