package sdk

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/keygroup"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	partForward   = weirv1.Partitioning_PARTITIONING_FORWARD
	partHash      = weirv1.Partitioning_PARTITIONING_HASH
	partRebalance = weirv1.Partitioning_PARTITIONING_REBALANCE
	partBroadcast = weirv1.Partitioning_PARTITIONING_BROADCAST
)

func tenInts(p *Pipeline, opts ...Option) Stream[int64] {
	return Generate(p, 10, func(i int64) int64 { return i }, opts...)
}

func sameInt64(v int64) int64 { return v }

func sinkAway[T any](s Stream[T], name string, opts ...Option) {
	var b bag[T]
	b.sinkTo(s, append([]Option{WithName(name)}, opts...)...)
}

// wantVertex is the part of a JobGraph vertex the table checks.
type wantVertex struct {
	name        string
	parallelism int32
	uids        []string
}

type wantEdge struct {
	from, to int32
	part     weirv1.Partitioning
}

func TestPlanChaining(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        int
		build    func(p *Pipeline)
		vertices []wantVertex
		edges    []wantEdge
	}{{
		name: "forward chain fuses into one vertex",
		p:    2,
		build: func(p *Pipeline) {
			s := Filter(Map(tenInts(p), sameInt64), func(int64) bool { return true })
			sinkAway(FlatMap(s, func(v int64, emit func(int64)) { emit(v) }), "Out")
		},
		vertices: []wantVertex{{"Source: Generate -> Map -> Filter -> FlatMap -> Out", 2,
			[]string{"source-0", "map-1", "filter-2", "flatmap-3", "sink-4"}}},
	}, {
		name: "KeyBy makes a HASH edge",
		p:    3,
		build: func(p *Pipeline) {
			k := KeyBy(Map(tenInts(p), sameInt64), func(v int64) int64 { return v % 3 })
			sinkAway(Aggregate(k, Count[int64](), WithName("Count"), WithUID("count")), "Out")
		},
		vertices: []wantVertex{
			{"Source: Generate -> Map", 3, []string{"source-0", "map-1"}},
			{"Count -> Out", 3, []string{"count", "sink-3"}},
		},
		edges: []wantEdge{{0, 1, partHash}},
	}, {
		name: "Reduce makes a HASH edge too",
		p:    1,
		build: func(p *Pipeline) {
			sinkAway(Reduce(KeyBy(tenInts(p), sameInt64), func(a, b int64) int64 { return a + b }), "Out")
		},
		vertices: []wantVertex{
			{"Source: Generate", 1, []string{"source-0"}},
			{"Reduce -> Out", 1, []string{"reduce-1", "sink-2"}},
		},
		edges: []wantEdge{{0, 1, partHash}},
	}, {
		name: "different parallelism rebalances",
		p:    4,
		build: func(p *Pipeline) {
			s := Map(tenInts(p, WithParallelism(1)), sameInt64, WithParallelism(1))
			sinkAway(Map(s, sameInt64, WithParallelism(2)), "Out", WithParallelism(2))
		},
		vertices: []wantVertex{
			{"Source: Generate -> Map", 1, []string{"source-0", "map-1"}},
			{"Map -> Out", 2, []string{"map-2", "sink-3"}},
		},
		edges: []wantEdge{{0, 1, partRebalance}},
	}, {
		name: "StartNewChain keeps a forward edge",
		p:    2,
		build: func(p *Pipeline) {
			sinkAway(Map(tenInts(p), sameInt64, StartNewChain()), "Out")
		},
		vertices: []wantVertex{
			{"Source: Generate", 2, nil},
			{"Map -> Out", 2, nil},
		},
		edges: []wantEdge{{0, 1, partForward}},
	}, {
		name: "explicit Rebalance at equal parallelism",
		p:    2,
		build: func(p *Pipeline) {
			sinkAway(Map(Rebalance(tenInts(p)), sameInt64), "Out")
		},
		vertices: []wantVertex{{"Source: Generate", 2, nil}, {"Map -> Out", 2, nil}},
		edges:    []wantEdge{{0, 1, partRebalance}},
	}, {
		name: "Broadcast",
		p:    2,
		build: func(p *Pipeline) {
			sinkAway(Broadcast(tenInts(p)), "Out", WithParallelism(3))
		},
		vertices: []wantVertex{{"Source: Generate", 2, nil}, {"Out", 3, nil}},
		edges:    []wantEdge{{0, 1, partBroadcast}},
	}, {
		name: "Broadcast at equal parallelism is not chained",
		p:    1,
		build: func(p *Pipeline) {
			sinkAway(Broadcast(tenInts(p)), "Out")
		},
		vertices: []wantVertex{{"Source: Generate", 1, nil}, {"Out", 1, nil}},
		edges:    []wantEdge{{0, 1, partBroadcast}},
	}, {
		name: "KeyBy after Rebalance still hashes",
		p:    2,
		build: func(p *Pipeline) {
			sinkAway(Aggregate(KeyBy(Rebalance(tenInts(p)), sameInt64), Count[int64]()), "Out")
		},
		vertices: []wantVertex{{"Source: Generate", 2, nil}, {"Aggregate -> Out", 2, nil}},
		edges:    []wantEdge{{0, 1, partHash}},
	}, {
		name: "a window aggregate's combiner chains before the shuffle",
		p:    2,
		build: func(p *Pipeline) {
			ints := WithTimestamps(tenInts(p), sameInt64)
			w := WindowAggregate(Window(KeyBy(ints, sameInt64), Sliding(10*time.Millisecond, 2*time.Millisecond)),
				Count[int64](), WithUID("count"))
			sinkAway(w.Results(), "Out")
		},
		// The combiner takes the window's uid; the sink's position-derived
		// one is what it was without a combiner.
		vertices: []wantVertex{
			{"Source: Generate -> Combine", 2, []string{"source-0", "count.combine"}},
			{"WindowAggregate -> Out", 2, []string{"count", "sink-2"}},
		},
		edges: []wantEdge{{0, 1, partHash}},
	}, {
		name: "no combiner for NoCombiner, per-record triggers or sessions",
		p:    1,
		build: func(p *Pipeline) {
			ints := WithTimestamps(tenInts(p), sameInt64)
			k := KeyBy(ints, sameInt64)
			for _, w := range []WindowedStream[int64, int64]{
				Window(k, Tumbling(time.Millisecond), NoCombiner()),
				Window(k, Tumbling(time.Millisecond), WithTrigger(AtWatermark().EarlyEvery(2))),
				Window(k, Sessions(time.Millisecond)),
			} {
				sinkAway(WindowAggregate(w, Count[int64]()).Results(), "Out")
			}
		},
		vertices: []wantVertex{
			{"Source: Generate", 1, nil},
			{"WindowAggregate -> Out", 1, nil},
			{"WindowAggregate -> Out", 1, nil},
			{"WindowAggregate -> Out", 1, nil},
		},
		edges: []wantEdge{{0, 1, partHash}, {0, 2, partHash}, {0, 3, partHash}},
	}, {
		name: "a stream with two consumers ends its chain",
		p:    2,
		build: func(p *Pipeline) {
			s := Map(tenInts(p), sameInt64, WithName("Shared"))
			sinkAway(s, "A")
			sinkAway(Map(s, sameInt64, WithName("Double")), "B")
		},
		vertices: []wantVertex{
			{"Source: Generate -> Shared", 2, nil},
			{"A", 2, nil},
			{"Double -> B", 2, nil},
		},
		edges: []wantEdge{{0, 1, partForward}, {0, 2, partForward}},
	}, {
		name: "a fan-out to stateless operators before shuffles chains",
		p:    2,
		build: func(p *Pipeline) {
			s := Map(Rebalance(tenInts(p)), sameInt64, WithName("Spread"))
			evens := Filter(s, func(v int64) bool { return v%2 == 0 }, WithName("Evens"))
			tens := Map(s, func(v int64) int64 { return v * 10 }, WithName("Tens"))
			sinkAway(Aggregate(KeyBy(evens, sameInt64), Count[int64]()), "A")
			sinkAway(Rebalance(tens), "B")
		},
		// One operator runs both, with the first one's uid.
		vertices: []wantVertex{
			{"Source: Generate", 2, nil},
			{"Spread -> Evens | Tens", 2, []string{"map-1", "filter-2"}},
			{"Aggregate -> A", 2, nil},
			{"B", 2, nil},
		},
		edges: []wantEdge{{0, 1, partRebalance}, {1, 2, partHash}, {1, 3, partRebalance}},
	}, {
		name: "a fan-out behind a source runs in a subtask of its own",
		p:    2,
		build: func(p *Pipeline) {
			s := tenInts(p)
			evens := Filter(s, func(v int64) bool { return v%2 == 0 }, WithName("Evens"))
			tens := Map(s, func(v int64) int64 { return v * 10 }, WithName("Tens"))
			sinkAway(Aggregate(KeyBy(evens, sameInt64), Count[int64]()), "A")
			sinkAway(Rebalance(tens), "B")
		},
		// One channel from the source instead of one per consumer.
		vertices: []wantVertex{
			{"Source: Generate", 2, nil},
			{"Evens | Tens", 2, []string{"filter-1"}},
			{"Aggregate -> A", 2, nil},
			{"B", 2, nil},
		},
		edges: []wantEdge{{0, 1, partForward}, {1, 2, partHash}, {1, 3, partRebalance}},
	}, {
		name: "a fan-out is not fused where a consumer chains further",
		p:    2,
		build: func(p *Pipeline) {
			s := tenInts(p)
			sinkAway(Map(s, sameInt64, WithName("Chained")), "A")
			sinkAway(Rebalance(Map(s, sameInt64, WithName("Shuffled"))), "B")
		},
		vertices: []wantVertex{
			{"Source: Generate", 2, nil},
			{"Chained -> A", 2, nil},
			{"Shuffled", 2, nil},
			{"B", 2, nil},
		},
		edges: []wantEdge{{0, 1, partForward}, {0, 2, partForward}, {2, 3, partRebalance}},
	}, {
		name: "names and uids from options",
		p:    1,
		build: func(p *Pipeline) {
			s := Map(tenInts(p, WithName("Numbers"), WithUID("numbers")), sameInt64, WithName("Same"), WithUID("same.v2"))
			sinkAway(s, "Sink", WithUID("sink_1"))
		},
		vertices: []wantVertex{{"Source: Numbers -> Same -> Sink", 1, []string{"numbers", "same.v2", "sink_1"}}},
	}, {
		name: "two sources",
		p:    2,
		build: func(p *Pipeline) {
			sinkAway(tenInts(p, WithName("A")), "OutA")
			sinkAway(Map(tenInts(p, WithName("B"), WithParallelism(1)), sameInt64, WithParallelism(1)), "OutB", WithParallelism(1))
		},
		vertices: []wantVertex{
			{"Source: A -> OutA", 2, nil},
			{"Source: B -> Map -> OutB", 1, nil},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPipeline("job", tc.p)
			tc.build(p)
			pl, err := p.compile()
			if err != nil {
				t.Fatal(err)
			}
			g := pl.JobGraph()
			dump := prototext.Format(g)
			if g.GetName() != "job" {
				t.Errorf("name %q", g.GetName())
			}
			if len(g.Vertices) != len(tc.vertices) {
				t.Fatalf("%d vertices, want %d:\n%s", len(g.Vertices), len(tc.vertices), dump)
			}
			for i, want := range tc.vertices {
				v := g.Vertices[i]
				if v.Id != int32(i) || v.Name != want.name || v.Parallelism != want.parallelism ||
					v.IsSource != strings.HasPrefix(want.name, "Source: ") {
					t.Errorf("vertex %d = %q (id %d, p %d, source %v), want %q p %d:\n%s",
						i, v.Name, v.Id, v.Parallelism, v.IsSource, want.name, want.parallelism, dump)
				}
				if want.uids != nil {
					var uids []string
					for _, op := range v.Operators {
						uids = append(uids, op.Uid)
					}
					if fmt.Sprint(uids) != fmt.Sprint(want.uids) {
						t.Errorf("vertex %d uids %v, want %v", i, uids, want.uids)
					}
				}
				if len(v.Operators) != strings.Count(want.name, " -> ")+1 {
					t.Errorf("vertex %d has %d operators for name %q", i, len(v.Operators), want.name)
				}
			}
			if len(g.Edges) != len(tc.edges) {
				t.Fatalf("%d edges, want %d:\n%s", len(g.Edges), len(tc.edges), dump)
			}
			for i, want := range tc.edges {
				e := g.Edges[i]
				if e.Source != want.from || e.Target != want.to || e.Partitioning != want.part {
					t.Errorf("edge %d = %d->%d %v, want %d->%d %v", i, e.Source, e.Target, e.Partitioning,
						want.from, want.to, want.part)
				}
			}
			// Every process computes the plan from its own pipeline: the
			// same build must give the same graph.
			p2 := NewPipeline("job", tc.p)
			tc.build(p2)
			pl2, err := p2.compile()
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(g, pl2.JobGraph()) {
				t.Errorf("a second build gives another graph:\n%s", prototext.Format(pl2.JobGraph()))
			}
		})
	}
}

func TestPlanOperatorKinds(t *testing.T) {
	p := NewPipeline("kinds", 1)
	s := FlatMap(Filter(Map(tenInts(p), sameInt64), func(int64) bool { return true }), func(v int64, emit func(int64)) {})
	sinkAway(Reduce(KeyBy(s, sameInt64), func(a, b int64) int64 { return a }), "R")
	sinkAway(Aggregate(KeyBy(s, sameInt64), Count[int64]()), "A")
	pl, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, v := range pl.JobGraph().Vertices {
		for _, op := range v.Operators {
			kinds = append(kinds, op.Kind+":"+op.Name)
		}
	}
	want := "[source:Generate map:Map filter:Filter flatmap:FlatMap reduce:Reduce sink:R aggregate:Aggregate sink:A]"
	if fmt.Sprint(kinds) != want {
		t.Errorf("operators %v, want %s", kinds, want)
	}
}

func TestPlanMaxParallelism(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     int
		build func(p *Pipeline)
		want  int32
	}{
		{"default from pipeline parallelism", 4, func(p *Pipeline) { sinkAway(tenInts(p), "Out") },
			int32(keygroup.DefaultMaxParallelism(4))},
		{"largest operator parallelism wins", 1, func(p *Pipeline) {
			sinkAway(Map(tenInts(p), sameInt64, WithParallelism(200)), "Out", WithParallelism(3))
		}, int32(keygroup.DefaultMaxParallelism(200))},
		{"override", 4, func(p *Pipeline) { p.SetMaxParallelism(7); sinkAway(tenInts(p), "Out") }, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPipeline("m", tc.p)
			tc.build(p)
			pl, err := p.compile()
			if err != nil {
				t.Fatal(err)
			}
			if got := pl.JobGraph().MaxParallelism; got != tc.want {
				t.Errorf("max parallelism %d, want %d", got, tc.want)
			}
		})
	}
	if keygroup.DefaultMaxParallelism(200) != 512 {
		t.Fatalf("keygroup rule changed: %d", keygroup.DefaultMaxParallelism(200))
	}
}

// A job's buffer timeout reaches the runtime's graph; unset, the runtime
// keeps its default.
func TestPlanBufferTimeout(t *testing.T) {
	for _, set := range []time.Duration{0, 40 * time.Millisecond} {
		p := NewPipeline("b", 1)
		if set > 0 {
			p.SetBufferTimeout(set)
		}
		sinkAway(tenInts(p), "Out")
		g, err := p.compile()
		if err != nil {
			t.Fatal(err)
		}
		if g.BufferTimeout != set {
			t.Errorf("set %v: the graph has %v", set, g.BufferTimeout)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(p *Pipeline)
		want  []string // substrings of the error
	}{
		{"empty pipeline", func(p *Pipeline) {}, []string{"empty"}},
		{"duplicate uid", func(p *Pipeline) {
			s := tenInts(p, WithUID("x"), WithName("First"))
			sinkAway(Map(s, sameInt64, WithUID("x"), WithName("Second")), "Out")
		}, []string{`"First"`, `"Second"`, `"x"`, "unique"}},
		{"uid clashing with a derived one", func(p *Pipeline) {
			sinkAway(Map(tenInts(p), sameInt64, WithUID("source-0")), "Out")
		}, []string{`"source-0"`, "unique"}},
		{"uid with a space", func(p *Pipeline) { sinkAway(tenInts(p, WithUID("my source")), "Out") },
			[]string{`"my source"`, "uid"}},
		{"uid with a slash", func(p *Pipeline) { sinkAway(tenInts(p, WithUID("a/b")), "Out") }, []string{`"a/b"`}},
		{"uid too long", func(p *Pipeline) { sinkAway(tenInts(p, WithUID(strings.Repeat("u", 129))), "Out") },
			[]string{"1-128"}},
		{"negative parallelism", func(p *Pipeline) { sinkAway(tenInts(p, WithParallelism(-1)), "Out") },
			[]string{"parallelism -1"}},
		{"buffer timeout zero", func(p *Pipeline) { p.SetBufferTimeout(0); sinkAway(tenInts(p), "Out") },
			[]string{"buffer timeout 0s", "positive"}},
		{"buffer timeout negative", func(p *Pipeline) { p.SetBufferTimeout(-time.Second); sinkAway(tenInts(p), "Out") },
			[]string{"buffer timeout -1s"}},
		{"first error wins", func(p *Pipeline) {
			sinkAway(tenInts(p, WithUID("bad uid")), "Out", WithUID("sink bad"))
		}, []string{`"bad uid"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPipeline("e", 2)
			tc.build(p)
			_, err := p.compile()
			if err == nil {
				t.Fatal("compile succeeded")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
	// A 128-character uid of every allowed character class is fine.
	p := NewPipeline("ok", 1)
	sinkAway(tenInts(p, WithUID(strings.Repeat("aZ0._-", 21)+"xy")), "Out")
	if _, err := p.compile(); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineAccessors(t *testing.T) {
	p := NewPipeline("first", 0)
	if p.Parallelism() != 1 {
		t.Errorf("parallelism %d for 0, want 1", p.Parallelism())
	}
	p.SetName("second")
	s := tenInts(p)
	if p.Name() != "second" || s.Pipeline() != p {
		t.Errorf("name %q, stream pipeline %p", p.Name(), s.Pipeline())
	}
	sinkAway(s, "Out")
	pl, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	if g := pl.JobGraph(); g.Name != "second" || g.Vertices[0].Parallelism != 1 {
		t.Errorf("graph %q, parallelism %d", g.Name, g.Vertices[0].Parallelism)
	}
}

// A fused fan-out gives each consumer every record and sends each one's
// output its own way: three consumers of three output types, over a hash
// and two rebalance edges.
func TestFanOutRunsEveryConsumer(t *testing.T) {
	p := NewPipeline("fanout", 2)
	s := Generate(p, 100, func(i int64) int64 { return i })
	evens := Filter(s, func(v int64) bool { return v%2 == 0 }, WithName("Evens"))
	words := Map(s, func(v int64) string { return fmt.Sprint("w", v) }, WithName("Words"))
	pairs := FlatMap(s, func(v int64, emit func(KV[int64, int64])) {
		if v < 3 {
			emit(KV[int64, int64]{v, v})
			emit(KV[int64, int64]{v, -v})
		}
	}, WithName("Pairs"))
	var counts bag[KV[int64, int64]]
	counts.sinkTo(Aggregate(KeyBy(evens, func(v int64) int64 { return v % 3 }), Count[int64](), EmitFinal()))
	var ws bag[string]
	ws.sinkTo(Rebalance(words))
	var ps bag[KV[int64, int64]]
	ps.sinkTo(Rebalance(pairs))
	pl, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	if name := pl.JobGraph().Vertices[1].Name; name != "Evens | Words | Pairs" {
		t.Fatalf("vertex 1 %q: the fan-out is not fused", name)
	}
	mustRun(t, p)
	if got, want := multiset(counts.items()), multiset([]KV[int64, int64]{{0, 17}, {1, 16}, {2, 17}}); !slices.Equal(got, want) {
		t.Errorf("counts of evens by v%%3: %v, want %v", got, want)
	}
	var wantWords []string
	for i := range 100 {
		wantWords = append(wantWords, fmt.Sprint("w", i))
	}
	if got, want := multiset(ws.items()), multiset(wantWords); !slices.Equal(got, want) {
		t.Errorf("words: %v, want %v", got, want)
	}
	if got, want := multiset(ps.items()), multiset([]KV[int64, int64]{{0, 0}, {0, 0}, {1, 1}, {1, -1}, {2, 2}, {2, -2}}); !slices.Equal(got, want) {
		t.Errorf("pairs: %v, want %v", got, want)
	}
}
