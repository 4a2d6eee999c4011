package kafka

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-run/weir/sdk"
)

// drain polls r until it has emitted at least want records and nothing
// more came for a while (failing after a longer while).
func drain[T any](t *testing.T, r *reader[T], want int) []Record[T] {
	t.Helper()
	var got []Record[T]
	deadline := time.Now().Add(10 * time.Second)
	quiet := time.Now().Add(500 * time.Millisecond)
	for {
		n := len(got)
		if _, err := r.Poll(func(rec Record[T]) { got = append(got, rec) }); err != nil {
			t.Fatal(err)
		}
		if len(got) > n {
			quiet = time.Now().Add(300 * time.Millisecond)
		}
		if len(got) >= want && time.Now().After(quiet) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d records, want %d", len(got), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func openAll(t *testing.T, cfg SourceConfig, p int, all [][]byte, restored bool) []*reader[string] {
	t.Helper()
	var rs []*reader[string]
	for s := range p {
		r, err := openReader(task{subtask: s, parallelism: p, all: all, restored: restored}, cfg.withDefaults(), sdk.StringCodec{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		rs = append(rs, r)
	}
	return rs
}

func valuesOf(recs []Record[string]) []string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, r.Value)
	}
	return sorted(vs)
}

// Records of aborted transactions never come out; committed ones do, once.
func TestSourceReadsCommittedOnly(t *testing.T) {
	brokers := broker(t, 3, "in")
	produce(t, brokers, "in", values("plain-", 0, 50)...)
	for _, commit := range []bool{true, false, true} {
		cl := client(t, brokers, kgo.DefaultProduceTopic("in"), kgo.TransactionalID("tx"))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		prefix := "aborted-"
		if commit {
			prefix = "committed-"
		}
		for _, v := range values(prefix, 0, 20) {
			cl.Produce(context.Background(), &kgo.Record{Key: []byte(v), Value: []byte(v + "-" + time.Now().String())}, nil)
		}
		if err := cl.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	rs := openAll(t, SourceConfig{Brokers: brokers, Topics: []string{"in"}}, 2, nil, false)
	var got []Record[string]
	for _, r := range rs {
		got = append(got, drain(t, r, 0)...)
	}
	plain, committed := 0, 0
	for _, r := range got {
		switch {
		case strings.HasPrefix(r.Value, "plain-"):
			plain++
		case strings.HasPrefix(r.Value, "committed-"):
			committed++
		default:
			t.Fatalf("read %q from an aborted transaction", r.Value)
		}
		if r.Topic != "in" || r.Timestamp.IsZero() || len(r.Key) == 0 {
			t.Fatalf("record lacks metadata: %+v", r)
		}
	}
	if plain != 50 || committed != 40 {
		t.Fatalf("read %d plain and %d committed records, want 50 and 40", plain, committed)
	}
}

// Offsets snapshotted by 2 subtasks resume at 3 subtasks (and back at 1)
// with every record read exactly once, and partitions added while running
// are found and read from their start.
func TestSourceResumesAtAnyParallelismAndFindsNewPartitions(t *testing.T) {
	brokers := broker(t, 4, "a", "b")
	produce(t, brokers, "a", values("a", 0, 200)...)
	produce(t, brokers, "b", values("b", 0, 100)...)
	cfg := SourceConfig{Brokers: brokers, Topics: []string{"a", "b"}, DiscoveryInterval: 50 * time.Millisecond}

	var got []Record[string]
	var items [][]byte
	for _, r := range openAll(t, cfg, 2, nil, false) {
		got = append(got, drain(t, r, 0)...)
		its, _ := r.SnapshotSplits()
		items = append(items, its...)
	}
	produce(t, brokers, "a", values("a", 200, 300)...)
	// Two more partitions for b, written before anyone reads them.
	adm := client(t, brokers)
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "b", 6
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	if resp, err := req.RequestWith(context.Background(), adm); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v %+v", err, resp)
	}
	extra := client(t, brokers, kgo.DefaultProduceTopic("b"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i, v := range values("b", 100, 160) {
		if err := extra.ProduceSync(context.Background(), &kgo.Record{Value: []byte(v), Partition: int32(i%2 + 4)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var items2 [][]byte
	rs := openAll(t, cfg, 3, items, true)
	for _, r := range rs {
		got = append(got, drain(t, r, 0)...)
	}
	// Write after the restore too: discovery is not needed for these.
	produce(t, brokers, "b", values("b", 160, 170)...)
	for _, r := range rs {
		got = append(got, drain(t, r, 0)...)
		its, _ := r.SnapshotSplits()
		items2 = append(items2, its...)
	}
	if len(items2) != 10 {
		t.Fatalf("3 subtasks snapshotted %d partitions, want 4 of a and 6 of b", len(items2))
	}
	for _, r := range openAll(t, cfg, 1, items2, true) {
		got = append(got, drain(t, r, 0)...)
	}
	want := sorted(append(values("a", 0, 300), values("b", 0, 170)...))
	if g := valuesOf(got); !equal(g, want) {
		t.Fatalf("read %d records, want each of %d once", len(g), len(want))
	}
}

func TestSourceStartOffsets(t *testing.T) {
	brokers := broker(t, 2, "in")
	produce(t, brokers, "in", values("old", 0, 10)...)
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	produce(t, brokers, "in", values("mid", 0, 10)...)

	// A group that committed offset 3 on partition 0 only.
	cl := client(t, brokers)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation, commit.MemberID = "g", -1, ""
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("in")
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic, ct.TopicID = "in", mresp.Topics[0].TopicID
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 3
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	if resp, err := commit.RequestWith(context.Background(), cl); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit group offsets: %v %+v", err, resp)
	}
	counts := func(at StartOffset) int {
		rs := openAll(t, SourceConfig{Brokers: brokers, Topics: []string{"in"}, StartAt: at}, 1, nil, false)
		produce(t, brokers, "in", "new-"+at.String())
		return len(drain(t, rs[0], 0))
	}
	if n := counts(Latest()); n != 1 {
		t.Errorf("latest read %d records, want only the 1 written after the start", n)
	}
	if n := counts(AtTimestamp(mid)); n != 12 {
		t.Errorf("from a timestamp read %d records, want the 10 after it and 2 newer", n)
	}
	// Partition 0 from offset 3, partition 1 from its start.
	p0, _ := countPartitions(t, brokers)
	if n := counts(GroupOffsets("g")); n != 23-3 {
		t.Errorf("from group offsets read %d records, want %d (all 23 but the first 3 of partition 0, which had %d)", n, 23-3, p0)
	}
	if n := counts(Earliest()); n != 24 {
		t.Errorf("earliest read %d records, want 24", n)
	}
}

// countPartitions returns how many records partitions 0 and 1 of "in" hold.
func countPartitions(t *testing.T, brokers []string) (int64, int64) {
	t.Helper()
	r := &reader[string]{cl: client(t, brokers), cfg: SourceConfig{Topics: []string{"in"}}}
	end, err := r.listOffsets(context.Background(), []topicPartition{{"in", 0}, {"in", 1}}, Latest())
	if err != nil {
		t.Fatal(err)
	}
	return end[topicPartition{"in", 0}], end[topicPartition{"in", 1}]
}

type event struct {
	N int `json:"n"`
}

// A record the codec refuses fails the job with where it is, or is skipped
// when the job asks so.
func TestSourcePoisonRecord(t *testing.T) {
	brokers := broker(t, 1, "in")
	produce(t, brokers, "in", `{"n":1}`, `not json`, `{"n":3}`)
	open := func(skip bool) *reader[event] {
		r, err := openReader(task{parallelism: 1}, SourceConfig{Brokers: brokers, Topics: []string{"in"}, SkipUndecodable: skip}.withDefaults(), sdk.JSONCodec[event]{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	r := open(false)
	var err error
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		_, err = r.Poll(func(Record[event]) {})
	}
	if err == nil || !strings.Contains(err.Error(), "in/0 offset 1: the value does not decode") || !errors.Is(err, sdk.ErrDecode) {
		t.Fatalf("err = %v, want a decode error naming in/0 offset 1", err)
	}
	got := drain(t, open(true), 2)
	if len(got) != 2 || got[0].Value.N != 1 || got[1].Value.N != 3 {
		t.Fatalf("skipping read %+v, want n=1 and n=3", got)
	}
}

func TestSourceRefusesUnknownTopic(t *testing.T) {
	brokers := broker(t, 1, "in")
	_, err := openReader(task{parallelism: 1}, SourceConfig{Brokers: brokers, Topics: []string{"nope"}}.withDefaults(), sdk.StringCodec{})
	if err == nil || !strings.Contains(err.Error(), `topic "nope"`) {
		t.Fatalf("err = %v, want one naming the topic", err)
	}
}

func TestSourceLag(t *testing.T) {
	brokers := broker(t, 1, "in")
	produce(t, brokers, "in", values("v", 0, 10)...)
	r := openAll(t, SourceConfig{Brokers: brokers, Topics: []string{"in"}}, 1, nil, false)[0]
	drain(t, r, 10)
	l := r.lag(time.Now())
	if len(l) != 1 || l[0].Records != 0 || l[0].Behind <= 0 || l[0].Behind > time.Minute {
		t.Fatalf("lag = %+v, want 0 records and a small positive time", l)
	}
}

// A restored reader knows every partition's lag from its restored offset
// before it reads anything (a restarted job's status shows it at once, not
// "unknown" until data reaches each partition), as does a fresh one from
// its starting offset.
func TestSourceLagBeforeTheFirstFetch(t *testing.T) {
	brokers := broker(t, 3, "in")
	cl := client(t, brokers, kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(3) {
		for i := range 10 * (p + 1) {
			rec := &kgo.Record{Value: []byte(itoa(int(i))), Partition: p}
			if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := SourceConfig{Brokers: brokers, Topics: []string{"in"}}
	// Restored at offsets 4, 0 and 25 of partitions holding 10, 20, 30.
	var items [][]byte
	for p, next := range []int64{4, 0, 25} {
		items = append(items, encodeSplit(split{tp: topicPartition{"in", int32(p)}, next: next}))
	}
	for name, tc := range map[string]struct {
		items    [][]byte
		restored bool
		want     []int64
	}{
		"restored": {items, true, []int64{6, 20, 5}},
		"fresh":    {nil, false, []int64{10, 20, 30}},
	} {
		r := openAll(t, cfg, 1, tc.items, tc.restored)[0]
		l := r.lag(time.Now())
		if len(l) != 3 {
			t.Fatalf("%s: lag of %d partitions, want 3", name, len(l))
		}
		for i, pl := range l {
			if pl.Records != tc.want[i] || pl.Behind != 0 {
				t.Errorf("%s: partition %d lag %d records, behind %v; want %d, 0 (no record read)", name, pl.Partition, pl.Records, pl.Behind, tc.want[i])
			}
		}
	}
}

func FuzzDecodeSplit(f *testing.F) {
	f.Add(encodeSplit(split{tp: topicPartition{"topic", 3}, next: 42}))
	f.Add(encodeSplit(split{tp: topicPartition{"topic", 3}, next: 42, wm: 1_700_000_000_000, hasWM: true}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		sp, err := decodeSplit(b)
		if err != nil {
			return
		}
		if got := encodeSplit(sp); string(got) != string(b) {
			t.Fatalf("decoded %+v from %x, which encodes as %x", sp, b, got)
		}
	})
}

func FuzzRecordCodec(f *testing.F) {
	c := RecordCodec[string]{Value: sdk.StringCodec{}}
	f.Add(c.Append(nil, Record[string]{Key: []byte("k"), Value: "v", Topic: "t", Partition: 2, Offset: 9, Timestamp: time.UnixMilli(5)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := c.Decode(b)
		if err != nil {
			return
		}
		r2, err := c.Decode(c.Append(nil, r))
		if err != nil || string(r2.Key) != string(r.Key) || r2.Value != r.Value || r2.Topic != r.Topic ||
			r2.Partition != r.Partition || r2.Offset != r.Offset || !r2.Timestamp.Equal(r.Timestamp) {
			t.Fatalf("round trip of %+v gave %+v, %v", r, r2, err)
		}
	})
}

// With Watermarks set, the source's watermark is the minimum over its
// partitions' (each the partition's latest time minus the bound, minus 1),
// and a partition quiet for the idleness timeout stops holding it back.
func TestSourcePartitionWatermarks(t *testing.T) {
	brokers := broker(t, 2, "in")
	cl := client(t, brokers, kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	at := func(partition int32, ms int64) *kgo.Record {
		return &kgo.Record{Value: []byte("v"), Partition: partition, Timestamp: time.UnixMilli(ms)}
	}
	if err := cl.ProduceSync(context.Background(), at(0, 10_000), at(0, 12_000), at(1, 5_000)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ws := sdk.BoundedOutOfOrder(time.Second).WithIdleness(300 * time.Millisecond)
	r, err := openReader(task{parallelism: 1}, SourceConfig{Brokers: brokers, Topics: []string{"in"}, Watermarks: &ws}.withDefaults(), sdk.StringCodec{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.eventTime = kafkaTime[string]
	w := watermarked[string]{r}
	drain(t, r, 3)
	// drain waited out the idleness: both partitions are idle now.
	if _, idle := w.Watermark(); !idle {
		t.Fatal("not idle after 300ms without records")
	}
	if err := cl.ProduceSync(context.Background(), at(0, 13_000), at(1, 6_000)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		r.Poll(func(Record[string]) {})
		if ts, idle := w.Watermark(); !idle && ts == 6_000-1_000-1 {
			break
		}
		if time.Now().After(deadline) {
			ts, idle := w.Watermark()
			t.Fatalf("watermark %d (idle %v), want 4999: partition 1's", ts, idle)
		}
	}
}

// Each partition's watermark is saved with its offset and comes back with
// the partition, to whichever subtask reads it after a restore at any
// parallelism: a restored reader's watermark is the minimum over its
// partitions' before it reads anything, not "none". A checkpoint without
// watermarks (format 1) restores as before.
func TestSourcePartitionWatermarksRestored(t *testing.T) {
	brokers := broker(t, 4, "in")
	cl := client(t, brokers, kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	latest := map[topicPartition]int64{}
	for p := range int32(4) {
		ms := int64(p+1) * 10_000
		latest[topicPartition{"in", p}] = ms
		rec := &kgo.Record{Value: []byte("v"), Partition: p, Timestamp: time.UnixMilli(ms)}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ws := sdk.BoundedOutOfOrder(time.Second)
	cfg := SourceConfig{Brokers: brokers, Topics: []string{"in"}, Watermarks: &ws}
	open := func(p int, items [][]byte) []watermarked[string] {
		var ws []watermarked[string]
		for s := range p {
			r, err := openReader(task{subtask: s, parallelism: p, all: items, restored: items != nil}, cfg.withDefaults(), sdk.StringCodec{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			r.eventTime = kafkaTime[string]
			ws = append(ws, watermarked[string]{r})
		}
		return ws
	}
	var items [][]byte
	for _, w := range open(2, nil) {
		drain(t, w.reader, 0)
		its, _ := w.SnapshotSplits()
		items = append(items, its...)
	}
	if len(items) != 4 {
		t.Fatalf("snapshotted %d partitions, want 4", len(items))
	}
	for _, it := range items {
		sp, err := decodeSplit(it)
		if err != nil || !sp.hasWM || sp.wm != latest[sp.tp]-1_000-1 {
			t.Fatalf("saved %+v (%v), want partition %v at watermark %d", sp, err, sp.tp, latest[sp.tp]-1_001)
		}
	}
	for _, q := range []int{1, 2, 3} {
		for s, w := range open(q, items) {
			want, any := int64(math.MaxInt64), false
			for tp, ms := range latest {
				if owner(tp, q) == s {
					want, any = min(want, ms-1_000-1), true
				}
			}
			ts, idle := w.Watermark()
			if !any {
				if !idle {
					t.Errorf("subtask %d of %d reads no partition but is not idle", s, q)
				}
				continue
			}
			if idle || ts != want {
				t.Errorf("subtask %d of %d restored at watermark %d (idle %v), want %d", s, q, ts, idle, want)
			}
			// Saved again before any record: the partitions keep theirs.
			its, _ := w.SnapshotSplits()
			for _, it := range its {
				if sp, _ := decodeSplit(it); sp.wm != latest[sp.tp]-1_001 {
					t.Errorf("subtask %d of %d saves %v at %d, want %d", s, q, sp.tp, sp.wm, latest[sp.tp]-1_001)
				}
			}
		}
	}
	// Old checkpoints: offsets only; the partitions start without a watermark.
	var old [][]byte
	for _, it := range items {
		sp, _ := decodeSplit(it)
		sp.hasWM = false
		old = append(old, encodeSplit(sp))
	}
	w := open(1, old)[0]
	if ts, idle := w.Watermark(); idle || ts != math.MinInt64 {
		t.Errorf("restored from offsets only at watermark %d (idle %v), want none", ts, idle)
	}
	if n := len(drain(t, w.reader, 0)); n != 0 {
		t.Errorf("read %d records again after the restore", n)
	}
}
