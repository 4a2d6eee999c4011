package sdk

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Union merges any number of streams of any parallelism: every record of
// every input arrives once (a stream given twice, twice).
func TestUnionMergesEveryInput(t *testing.T) {
	p := NewPipeline("union", 2)
	a := genSeq(p, 100, WithParallelism(1))
	b := Map(genSeq(p, 50, WithParallelism(3)), func(v int64) int64 { return 1000 + v })
	c := Map(genSeq(p, 20), func(v int64) int64 { return 2000 + v }, WithParallelism(4))
	var out bag[int64]
	out.sinkTo(Union(a, b, c, c))
	mustRun(t, p)
	var want []int64
	for i := range int64(100) {
		want = append(want, i)
	}
	for i := range int64(50) {
		want = append(want, 1000+i)
	}
	for i := range int64(20) {
		want = append(want, 2000+i, 2000+i)
	}
	got := out.items()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("union gave %d records, want %d: %v", len(got), len(want), got)
	}
}

// A keyed union keeps the key: a key's records from both inputs meet in
// one subtask of the next keyed operator and share its state.
func TestUnionKeyedSharesState(t *testing.T) {
	p := NewPipeline("union", 3)
	key := func(v int64) int64 { return v % 5 }
	a := KeyBy(genSeq(p, 100, WithParallelism(1)), key)
	b := KeyBy(Map(genSeq(p, 60, WithParallelism(2)), func(v int64) int64 { return 1000 + v }), key)
	var out bag[KV[int64, int64]]
	out.sinkTo(Aggregate(UnionKeyed(a, b), Count[int64](), EmitFinal()))
	mustRun(t, p)
	want := map[int64]int64{}
	for i := range int64(100) {
		want[i%5]++
	}
	for i := range int64(60) {
		want[(1000+i)%5]++
	}
	got := map[int64]int64{}
	for _, kv := range out.items() {
		if _, dup := got[kv.Key]; dup {
			t.Fatalf("key %d counted in two subtasks: its state was split", kv.Key)
		}
		got[kv.Key] = kv.Value
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts per key %v, want %v", got, want)
	}
}

// The union's watermark is the minimum over its inputs: a slow input's
// records are not late although the other input's event time ran far
// ahead (and ended: its final watermark does not release the union).
func TestUnionWatermarkIsTheMinimum(t *testing.T) {
	p := NewPipeline("union", 2)
	ts := func(v int64) int64 { return v }
	fast := AssignTimestamps(Map(genSeq(p, 200, WithParallelism(1)), func(v int64) int64 { return 100_000 + v*100 }),
		ts, BoundedOutOfOrder(0))
	slow := AssignTimestamps(Map(genSeq(p, 30, WithParallelism(1), WithRate(300)), func(v int64) int64 { return v * 100 }),
		ts, BoundedOutOfOrder(0))
	u := Union(fast, slow)
	w := WindowAggregate(Window(KeyBy(u, func(int64) string { return "k" }), Tumbling(time.Second)), Count[int64]())
	var panes bag[Pane[string, int64]]
	var late bag[int64]
	panes.sinkTo(w.Results())
	late.sinkTo(w.Late())
	mustRun(t, p)
	if l := late.items(); len(l) > 0 {
		t.Fatalf("%d records of the slow input were late: the union's watermark followed the fast one", len(l))
	}
	var total int64
	for _, pn := range panes.items() {
		total += pn.Value
	}
	if total != 230 {
		t.Fatalf("the windows counted %d records, want 230", total)
	}
}

// Union's output keeps the first input's codec and the event time when
// every input has one; the plan has one union vertex fed by every input.
func TestUnionPlan(t *testing.T) {
	p := NewPipeline("union", 2)
	ts := func(v int64) int64 { return v }
	a := WithTimestamps(genSeq(p, 1), ts)
	b := WithTimestamps(genSeq(p, 1, WithParallelism(3)), ts)
	if Union(a, b).ts == nil {
		t.Error("a union of timestamped streams lost the event time")
	}
	if Union(a, genSeq(p, 1)).ts != nil {
		t.Error("a union with an input without event time has one")
	}
	u := Union(a, b)
	sinkAway(u, "Out")
	g, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	v := g.Vertices[len(g.Vertices)-1]
	if v.Name() != "Union -> Out" || len(v.In) != 2 {
		t.Fatalf("last vertex %q with %d inputs, want Union -> Out with 2", v.Name(), len(v.In))
	}
	if q := NewPipeline("other", 1); true {
		Union(genSeq(q, 1), a)
		if q.Err() == nil {
			t.Error("a union across pipelines was accepted")
		}
	}
}
