// Command keyedcount counts generated events per key.
//
//	keyedcount -- --events N --keys M [--rate R] [--slow D] --output DIR
//
// Event i has key "k<i mod M>". When the input ends the committed output
// holds one line "key<TAB>count" per key. --rate caps events per second for
// the whole job (0: as fast as possible). --slow makes the count the job's
// bottleneck, sleeping D per 100 events, so the exchange into it stays full
// (backpressure, as behind a slow sink).
package main

import (
	"errors"
	"flag"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/file"
)

func main() { sdk.Main(build) }

func build(p *sdk.Pipeline, args []string) error {
	fs := flag.NewFlagSet("keyedcount", flag.ContinueOnError)
	events := fs.Int64("events", 1_000_000, "number of events")
	keys := fs.Int64("keys", 1000, "number of distinct keys")
	rate := fs.Float64("rate", 0, "events per second for the whole job (0: unlimited)")
	output := fs.String("output", "", "directory for the counts")
	slow := fs.Duration("slow", 0, "sleep this long per 100 events counted (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *output == "":
		return errors.New("keyedcount needs --output")
	case *keys < 1:
		return errors.New("--keys must be at least 1")
	case *events < 0:
		return errors.New("--events must not be negative")
	}
	m := *keys
	ev := sdk.Generate(p, *events, func(i int64) string { return "k" + strconv.FormatInt(i%m, 10) },
		sdk.WithRate(*rate), sdk.WithUID("events"))
	count := sdk.Count[string]()
	if *slow > 0 {
		var n atomic.Int64
		add, d := count.Add, *slow
		count.Add = func(acc int64, k string) int64 {
			if n.Add(1)%100 == 0 {
				time.Sleep(d)
			}
			return add(acc, k)
		}
	}
	counts := sdk.Aggregate(sdk.KeyBy(ev, func(k string) string { return k }), count,
		sdk.EmitFinal(), sdk.WithName("Count"), sdk.WithUID("count"))
	file.Sink(counts, *output, func(kv sdk.KV[string, int64]) string {
		return kv.Key + "\t" + strconv.FormatInt(kv.Value, 10)
	}, sdk.WithUID("sink"))
	return nil
}
