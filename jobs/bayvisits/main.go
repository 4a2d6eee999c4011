// Command bayvisits turns parking-bay sensor events into visits: session
// windows per bay in event time.
//
//	bayvisits -- --input FILE --output DIR [--gap 60s] [--max-out-of-order 30s]
//	bayvisits -- --brokers B --input-topic T1 --output-topic T2 [--gap 60s] [--max-out-of-order 30s]
//	bayvisits -- --brokers B --input-topic T1 --output-topic T2 [--gap 60s] [--max-out-of-order 30s] \
//	    [--early-every N] [--early-after D] [--lateness D] [--retracting] [--late-topic T3]
//
// Input: JSON lines {"bay":"b17","ts":1700000000123} (ts in unix ms), not
// sorted, but none more than --max-out-of-order older than the largest ts
// before it. Output (committed files): one JSON line per visit,
// {"bay":"b17","start":S,"end":E,"count":N}: a visit is the merge of the
// half-open intervals [ts, ts+gap) of a bay's events that overlap; S is its
// smallest ts, E its largest ts plus gap and N its number of events.
//
// In Kafka mode the events are the values of T1's records, watermarked per
// partition by their ts, and each visit is a record of T2 keyed by the bay,
// written exactly once.
//
// Refinements mode (Kafka only; any of its flags turns it on) emits every
// pane of a visit instead of the final visit alone: early panes after
// every --early-every events of a visit and --early-after of processing
// time after its first event since the last pane, the on-time pane when
// the watermark passes its end, and a late pane for each event up to
// --lateness behind it. Each pane is a record of T2 keyed by the bay,
//
//	{"bay":"b17","start":S,"end":E,"count":N,"timing":"EARLY","index":0,"retraction":false}
//
// with timing EARLY, ON_TIME or LATE and index its number within the
// visit's window. With --retracting, each pane after a visit's first is
// preceded by the same record with "retraction":true withdrawing the
// previous one, and a visit that merges into a larger one is withdrawn the
// same way: a reader that cancels each retraction against the equal pane
// keeps exactly the current visits. Events later than --lateness go to
// --late-topic T3 as they came in, keyed by the bay (dropped without it).
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/file"
	"github.com/weir-run/weir/sdk/connector/kafka"
)

func main() { sdk.Main(build) }

// event is one sensor reading.
type event struct {
	Bay string `json:"bay"`
	TS  int64  `json:"ts"`
}

// visit is a session's accumulator.
type visit struct{ Start, Last, Count int64 }

// pane is a visit as the session window emits it.
type pane = sdk.Pane[string, visit]

// eventCodec and visitCodec keep JSON off the hot path: events cross the
// exchange and visits are read and written in state for every event.
type eventCodec struct{}

func (eventCodec) Append(dst []byte, e event) []byte {
	return append(binary.AppendVarint(dst, e.TS), e.Bay...)
}

func (eventCodec) Decode(b []byte) (event, error) {
	ts, n := binary.Varint(b)
	if n <= 0 {
		return event{}, fmt.Errorf("%w: event", sdk.ErrDecode)
	}
	return event{Bay: string(b[n:]), TS: ts}, nil
}

type visitCodec struct{}

func (visitCodec) Append(dst []byte, v visit) []byte {
	return binary.AppendVarint(binary.AppendVarint(binary.AppendVarint(dst, v.Start), v.Last), v.Count)
}

func (visitCodec) Decode(b []byte) (visit, error) {
	var v visit
	for _, f := range []*int64{&v.Start, &v.Last, &v.Count} {
		x, n := binary.Varint(b)
		if n <= 0 {
			return visit{}, fmt.Errorf("%w: visit", sdk.ErrDecode)
		}
		*f, b = x, b[n:]
	}
	return v, nil
}

func init() {
	sdk.RegisterCodec[event](eventCodec{})
	sdk.RegisterCodec[visit](visitCodec{})
}

// visits is the session aggregate.
var visits = sdk.AggregateFunc[event, visit, visit]{
	Init: func() visit { return visit{Start: 1<<63 - 1, Last: -1 << 63} },
	Add: func(v visit, e event) visit {
		return visit{Start: min(v.Start, e.TS), Last: max(v.Last, e.TS), Count: v.Count + 1}
	},
	Merge: func(a, b visit) visit {
		return visit{Start: min(a.Start, b.Start), Last: max(a.Last, b.Last), Count: a.Count + b.Count}
	},
	Result: func(v visit) visit { return v },
}

func parse(line string) (event, bool) {
	if line == "" {
		return event{}, false
	}
	var e event
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Bay == "" {
		panic(fmt.Sprintf("bayvisits: bad input line %q", line))
	}
	return e, true
}

func build(p *sdk.Pipeline, args []string) error {
	fs := flag.NewFlagSet("bayvisits", flag.ContinueOnError)
	input := fs.String("input", "", "JSON-lines file (or directory) of events")
	output := fs.String("output", "", "directory for the visits")
	brokers := fs.String("brokers", "", "Kafka bootstrap brokers, comma-separated (Kafka mode)")
	inTopic := fs.String("input-topic", "", "Kafka topic of events (Kafka mode)")
	outTopic := fs.String("output-topic", "", "Kafka topic for the visits (Kafka mode)")
	gap := fs.Duration("gap", 60*time.Second, "session gap")
	ooo := fs.Duration("max-out-of-order", 30*time.Second, "how much older than the newest event an event may be")
	earlyEvery := fs.Int("early-every", 0, "refinements: an early pane after every N events of a visit (0: none)")
	earlyAfter := fs.Duration("early-after", 0, "refinements: an early pane this long (processing time) after a visit's first event since its last pane (0: none)")
	lateness := fs.Duration("lateness", 0, "refinements: how far behind the watermark an event may still refine its visit with a late pane")
	retracting := fs.Bool("retracting", false, "refinements: precede each pane with the retraction of the one it replaces")
	lateTopic := fs.String("late-topic", "", "refinements: Kafka topic for the events later than --lateness")
	if err := fs.Parse(args); err != nil {
		return err
	}
	kafkaMode := *brokers != "" || *inTopic != "" || *outTopic != ""
	refine := *earlyEvery != 0 || *earlyAfter != 0 || *lateness != 0 || *retracting || *lateTopic != ""
	switch {
	case kafkaMode && (*brokers == "" || *inTopic == "" || *outTopic == ""):
		return errors.New("bayvisits in Kafka mode needs --brokers, --input-topic and --output-topic")
	case kafkaMode && (*input != "" || *output != ""):
		return errors.New("bayvisits reads a file (--input, --output) or Kafka (--brokers ...), not both")
	case !kafkaMode && (*input == "" || *output == ""):
		return errors.New("bayvisits needs --input and --output (or --brokers, --input-topic and --output-topic)")
	case *gap < time.Millisecond:
		return errors.New("--gap must be at least 1ms")
	case *ooo < 0:
		return errors.New("--max-out-of-order must not be negative")
	case refine && !kafkaMode:
		return errors.New("bayvisits: --early-every, --early-after, --lateness, --retracting and --late-topic need Kafka mode (the file output holds final visits only)")
	case *earlyEvery < 0 || *earlyAfter < 0 || *lateness < 0:
		return errors.New("--early-every, --early-after and --lateness must not be negative")
	}
	var timed sdk.Stream[event]
	if kafkaMode {
		// Watermarks per partition: the bound holds within each.
		ws := sdk.BoundedOutOfOrder(*ooo)
		recs := kafka.SourceWithEventTime(p, kafka.SourceConfig{Brokers: strings.Split(*brokers, ","), Topics: []string{*inTopic}, Watermarks: &ws},
			sdk.JSONCodec[event]{}, func(r kafka.Record[event]) int64 { return r.Value.TS }, sdk.WithUID("events"))
		// The Map changes the record type, so the event time is declared
		// again for the values (the watermarks are the source's).
		timed = sdk.WithTimestamps(sdk.Map(recs, func(r kafka.Record[event]) event { return r.Value }, sdk.WithName("Value")),
			func(e event) int64 { return e.TS })
	} else {
		lines := file.Lines(p, *input, sdk.WithUID("lines"))
		events := sdk.FlatMap(lines, func(l string, emit func(event)) {
			if e, ok := parse(l); ok {
				emit(e)
			}
		}, sdk.WithName("Parse"), sdk.WithUID("parse"))
		// Per source subtask: each reads its chunks in file order, a
		// subsequence of the file, so the out-of-orderness bound holds
		// for it too.
		timed = sdk.AssignTimestamps(events, func(e event) int64 { return e.TS },
			sdk.BoundedOutOfOrder(*ooo), sdk.WithUID("timestamps"))
	}
	var wopts []sdk.WindowOption
	if refine {
		wopts = append(wopts, sdk.WithTrigger(sdk.AtWatermark().EarlyEvery(*earlyEvery).EarlyAfter(*earlyAfter)),
			sdk.AllowedLateness(*lateness))
		if *retracting {
			wopts = append(wopts, sdk.WithAccumulation(sdk.Retracting))
		}
	}
	sessions := sdk.WindowAggregate(
		sdk.Window(sdk.KeyBy(timed, func(e event) string { return e.Bay }), sdk.Sessions(*gap), wopts...),
		visits, sdk.WithName("Visits"), sdk.WithUID("visits"))
	g := gap.Milliseconds()
	format := func(p pane) string {
		b, _ := json.Marshal(p.Key)
		return `{"bay":` + string(b) + `,"start":` + strconv.FormatInt(p.Value.Start, 10) +
			`,"end":` + strconv.FormatInt(p.Value.Last+g, 10) + `,"count":` + strconv.FormatInt(p.Value.Count, 10) + `}`
	}
	if refine {
		plain := format
		format = func(p sdk.Pane[string, visit]) string {
			s := plain(p)
			return s[:len(s)-1] + `,"timing":"` + p.Timing.String() + `","index":` + strconv.FormatInt(p.Index, 10) +
				`,"retraction":` + strconv.FormatBool(p.Retraction) + `}`
		}
	}
	if kafkaMode {
		cfg := kafka.SinkConfig{Brokers: strings.Split(*brokers, ",")}
		cfg.Topic = *outTopic
		kafka.SinkKeyed(sessions.Results(), cfg, func(p pane) string { return p.Key },
			kafka.EncoderFunc[pane](func(dst []byte, p pane) []byte { return append(dst, format(p)...) }), sdk.WithUID("output"))
		if *lateTopic != "" {
			cfg.Topic = *lateTopic
			kafka.SinkKeyed(sessions.Late(), cfg, func(e event) string { return e.Bay },
				kafka.EncoderFunc[event](func(dst []byte, e event) []byte {
					b, _ := json.Marshal(e)
					return append(dst, b...)
				}), sdk.WithUID("late-output"))
		}
		return nil
	}
	file.Sink(sessions.Results(), *output, format, sdk.WithUID("sink"))
	return nil
}
