package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-run/weir/sdk"
)

type click struct {
	User string
	At   int64
}

type secret struct{ hidden int }

// Streams of Records take their codec from the connector: Filter, Map and
// AssignTimestamps over a Source's stream and a Map to Records need no
// sdk.WithCodec.
func TestRecordStreamsNeedNoCodec(t *testing.T) {
	p := sdk.NewPipeline("records", 2)
	recs := Source(p, SourceConfig{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"clicks"}}, sdk.JSONCodec[click]{})
	kept := sdk.Filter(recs, func(r Record[click]) bool { return r.Value.User != "" })
	same := sdk.Map(kept, func(r Record[click]) Record[click] { r.Key = []byte(r.Value.User); return r })
	timed := sdk.AssignTimestamps(sdk.Filter(same, func(Record[click]) bool { return true }),
		func(r Record[click]) int64 { return r.Value.At }, sdk.BoundedOutOfOrder(time.Second))
	sdk.Map(timed, func(r Record[click]) Record[string] { return Record[string]{Key: r.Key, Value: r.Value.User} })
	if err := p.Err(); err != nil {
		t.Fatalf("a pipeline of Records without WithCodec: %v", err)
	}

	c, ok := sdk.CodecFor[Record[string]]().(RecordCodec[string])
	if !ok || c.Value != (sdk.StringCodec{}) {
		t.Fatalf("CodecFor[Record[string]] = %#v, want RecordCodec with StringCodec", sdk.CodecFor[Record[string]]())
	}
	in := Record[string]{Key: []byte("k"), Value: "v", Topic: "t", Partition: 3, Offset: 9, Timestamp: time.UnixMilli(1_700_000_000_123)}
	if out, err := c.Decode(c.Append(nil, in)); err != nil || fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("round trip = %v, %v; want %v", out, err, in)
	}

	// The value's codec is still checked, and the advice can be followed.
	p = sdk.NewPipeline("records", 1)
	sdk.Map(sdk.Generate(p, 1, func(i int64) int64 { return i }), func(int64) Record[secret] { return Record[secret]{} })
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "sdk.RegisterCodec[kafka.secret]") {
		t.Fatalf("Err() = %v, want advice to register kafka.secret's codec", err)
	}
}

// SinkKeyed writes a windowed result in one call: the key from the pane,
// the value through the encoder.
func TestSinkKeyedWindowedResults(t *testing.T) {
	brokers := broker(t, 2, "counts")
	p := sdk.NewPipeline("keyed", 2)
	clicks := sdk.AssignTimestamps(sdk.Generate(p, 60, func(i int64) click {
		return click{User: "u" + strconv.FormatInt(i%3, 10), At: 1_700_000_000_000 + i*100}
	}), func(c click) int64 { return c.At }, sdk.BoundedOutOfOrder(0))
	panes := sdk.WindowAggregate(sdk.Window(sdk.KeyBy(clicks, func(c click) string { return c.User }), sdk.Tumbling(time.Second)),
		sdk.Count[click]()).Results()
	SinkKeyed(panes, SinkConfig{Brokers: brokers, Topic: "counts", Delivery: AtLeastOnce},
		func(p sdk.Pane[string, int64]) string { return p.Key },
		EncoderFunc[sdk.Pane[string, int64]](func(dst []byte, p sdk.Pane[string, int64]) []byte {
			return strconv.AppendInt(dst, p.Value, 10)
		}), sdk.WithUID("out"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sdk.RunLocal(ctx, p); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{} // "user window"
	for i := range int64(60) {
		counts[fmt.Sprintf("u%d %d", i%3, i/10)]++
	}
	var want []string
	for k, n := range counts {
		user, _, _ := strings.Cut(k, " ")
		want = append(want, fmt.Sprintf("%s=%d", user, n))
	}
	slices.Sort(want)
	if got := readRecords(t, brokers, "counts"); !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
}

// SinkKeyed keeps Sink's two-phase commit: nothing is visible before the
// checkpoint completes, everything after. Records are timestamped by the
// producer.
func TestSinkKeyedExactlyOnce(t *testing.T) {
	brokers := broker(t, 2, "out")
	w, err := openWriter(task{subtask: 0, parallelism: 1, attempt: 1, job: "job1", uid: "sink", checkpointing: true},
		SinkConfig{Brokers: brokers, Topic: "out"}.withDefaults(), Encoder[int](sdk.VarintCodec[int]{}))
	if err != nil {
		t.Fatal(err)
	}
	var kw sdk.SinkWriter[int] = keyedWriter[int, string]{writer: w, key: func(i int) string { return "k" + strconv.Itoa(i) }}
	if _, ok := kw.(sdk.Committer); !ok {
		t.Fatal("SinkKeyed's writer does not commit with checkpoints")
	}
	before := time.Now().Add(-time.Minute)
	for i := range 5 {
		if err := kw.Write(i); err != nil {
			t.Fatal(err)
		}
	}
	c := kw.(sdk.Committer)
	if _, err := c.PreCommit(1); err != nil {
		t.Fatal(err)
	}
	if got := readRecords(t, brokers, "out"); len(got) != 0 {
		t.Fatalf("visible before the checkpoint completed: %v", got)
	}
	if err := c.Commit(1); err != nil {
		t.Fatal(err)
	}
	if err := kw.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readKgo(t, brokers, "out")
	if len(recs) != 5 {
		t.Fatalf("%d records committed, want 5", len(recs))
	}
	for _, r := range recs {
		v, err := sdk.VarintCodec[int]{}.Decode(r.Value)
		if err != nil || string(r.Key) != "k"+strconv.Itoa(v) || r.Timestamp.Before(before) {
			t.Errorf("record key %q value %v (%v) at %v", r.Key, v, err, r.Timestamp)
		}
	}
}

// readKgo returns every committed record of topic.
func readKgo(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl := client(t, brokers, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	var out []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if n == 0 {
			return out
		}
	}
}

// readRecords is readKgo as sorted "key=value" strings.
func readRecords(t *testing.T, brokers []string, topic string) []string {
	var out []string
	for _, r := range readKgo(t, brokers, topic) {
		out = append(out, fmt.Sprintf("%s=%s", r.Key, r.Value))
	}
	slices.Sort(out)
	return out
}
