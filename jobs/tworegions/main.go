// Command tworegions runs two independent keyed counts in one job: two
// pipelined regions with no edge between them, so a failure in one restarts
// only that one.
//
//	tworegions -- --events N --keys M [--rate R] --output-a DIR --output-b DIR
//
// Each pipeline generates N events, event i with key "k<i mod M>", and its
// committed output holds one line "key<TAB>count" per key once its input
// ends. --rate caps events per second for each pipeline (0: unlimited).
package main

import (
	"errors"
	"flag"
	"strconv"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/file"
)

func main() { sdk.Main(build) }

func build(p *sdk.Pipeline, args []string) error {
	fs := flag.NewFlagSet("tworegions", flag.ContinueOnError)
	events := fs.Int64("events", 100_000, "number of events per pipeline")
	keys := fs.Int64("keys", 100, "number of distinct keys")
	rate := fs.Float64("rate", 0, "events per second for each pipeline (0: unlimited)")
	outA := fs.String("output-a", "", "directory for the counts of pipeline a")
	outB := fs.String("output-b", "", "directory for the counts of pipeline b")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *outA == "" || *outB == "":
		return errors.New("tworegions needs --output-a and --output-b")
	case *keys < 1:
		return errors.New("--keys must be at least 1")
	case *events < 0:
		return errors.New("--events must not be negative")
	}
	count(p, "a", *events, *keys, *rate, *outA)
	count(p, "b", *events, *keys, *rate, *outB)
	return nil
}

// count adds one generator -> keyed count -> file sink pipeline; name keeps
// its uids apart from the other pipeline's.
func count(p *sdk.Pipeline, name string, events, keys int64, rate float64, out string) {
	ev := sdk.Generate(p, events, func(i int64) string { return "k" + strconv.FormatInt(i%keys, 10) },
		sdk.WithRate(rate), sdk.WithUID("events-"+name), sdk.WithName("Events "+name))
	counts := sdk.Aggregate(sdk.KeyBy(ev, func(k string) string { return k }), sdk.Count[string](),
		sdk.EmitFinal(), sdk.WithName("Count "+name), sdk.WithUID("count-"+name))
	file.Sink(counts, out, func(kv sdk.KV[string, int64]) string {
		return kv.Key + "\t" + strconv.FormatInt(kv.Value, 10)
	}, sdk.WithUID("sink-"+name), sdk.WithName("Sink "+name))
}
