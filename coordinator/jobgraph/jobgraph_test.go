package jobgraph

import (
	"errors"
	"slices"
	"strings"
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	forward   = weirv1.Partitioning_PARTITIONING_FORWARD
	hash      = weirv1.Partitioning_PARTITIONING_HASH
	rebalance = weirv1.Partitioning_PARTITIONING_REBALANCE
)

// src and vtx build vertices with one operator per uid.
func src(id int32, name string, par int32, uids ...string) *weirv1.Vertex {
	v := vtx(id, name, par, uids...)
	v.IsSource = true
	return v
}

func vtx(id int32, name string, par int32, uids ...string) *weirv1.Vertex {
	v := &weirv1.Vertex{Id: id, Name: name, Parallelism: par}
	for _, u := range uids {
		v.Operators = append(v.Operators, &weirv1.Operator{Uid: u, Name: u, Kind: "map"})
	}
	return v
}

func edge(s, t int32, p weirv1.Partitioning) *weirv1.Edge {
	return &weirv1.Edge{Source: s, Target: t, Partitioning: p}
}

func graph(maxPar int32, vs []*weirv1.Vertex, es ...*weirv1.Edge) *weirv1.JobGraph {
	return &weirv1.JobGraph{Name: "test", MaxParallelism: maxPar, Vertices: vs, Edges: es}
}

// wordcount is a valid three-vertex graph; tests mutate copies of it.
func wordcount() *weirv1.JobGraph {
	return graph(128, []*weirv1.Vertex{
		src(1, "Source: lines -> FlatMap: split", 2, "lines", "split"),
		vtx(2, "Reduce: count", 4, "count"),
		vtx(3, "Sink: print", 4, "print"),
	}, edge(1, 2, hash), edge(2, 3, forward))
}

func TestValidateOK(t *testing.T) {
	g := wordcount()
	if err := Validate(g); err != nil {
		t.Fatal(err)
	}
	// A two-input vertex reading one stream on both inputs is fine, and so is
	// a diamond.
	g = graph(128, []*weirv1.Vertex{
		src(1, "src", 2, "a"),
		vtx(2, "left", 2, "b"),
		vtx(3, "right", 3, "c"),
		vtx(4, "join", 2, "d"),
	}, edge(1, 2, forward), edge(1, 3, rebalance), edge(2, 4, hash), edge(3, 4, hash),
		&weirv1.Edge{Source: 1, Target: 4, Partitioning: hash, TargetInput: 1})
	if err := Validate(g); err != nil {
		t.Fatal(err)
	}
}

func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(g *weirv1.JobGraph) *weirv1.JobGraph
		want   []string
	}{
		{
			name:   "nil",
			mutate: func(*weirv1.JobGraph) *weirv1.JobGraph { return nil },
			want:   []string{"graph is nil"},
		},
		{
			name: "no vertices",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				return graph(128, nil)
			},
			want: []string{"graph has no vertices"},
		},
		{
			name: "max parallelism zero",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.MaxParallelism = 0
				return g
			},
			want: []string{"max parallelism 0 is below 1"},
		},
		{
			name: "max parallelism too large",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.MaxParallelism = 40000
				return g
			},
			want: []string{"max parallelism 40000 is above 32768"},
		},
		{
			name: "parallelism zero",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[2].Parallelism = 0
				return g
			},
			want: []string{`vertex 3 "Sink: print": parallelism 0 is below 1`},
		},
		{
			name: "parallelism above max",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[1].Parallelism = 300
				g.Vertices[2].Parallelism = 300
				return g
			},
			want: []string{
				`vertex 2 "Reduce: count": parallelism 300 exceeds max parallelism 128`,
				`vertex 3 "Sink: print": parallelism 300 exceeds max parallelism 128`,
			},
		},
		{
			name: "duplicate vertex id",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices = append(g.Vertices, vtx(2, "again", 4, "again"))
				return g
			},
			want: []string{"vertex ids must be unique: 2 appears twice"},
		},
		{
			name: "vertex id three times",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices = append(g.Vertices, vtx(3, "x", 4, "x"), vtx(3, "y", 4, "y"))
				return g
			},
			want: []string{"vertex ids must be unique: 3 appears 3 times"},
		},
		{
			name: "no operators",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[2].Operators = nil
				g.Vertices[2].Name = ""
				return g
			},
			want: []string{"vertex 3 has no operators"},
		},
		{
			name: "empty uid",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[0].Operators[1].Uid = ""
				return g
			},
			want: []string{`vertex 1 "Source: lines -> FlatMap: split": operator 2 of 2 ("split") has an empty uid`},
		},
		{
			name: "nil operator",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[1].Operators = append(g.Vertices[1].Operators, nil)
				return g
			},
			want: []string{`vertex 2 "Reduce: count": operator 2 of 2 is nil`},
		},
		{
			name: "duplicate uid across vertices",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[2].Operators[0].Uid = "count"
				return g
			},
			want: []string{`duplicate operator uid "count" in vertex 2 and vertex 3`},
		},
		{
			name: "duplicate uid in one vertex",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[0].Operators[1].Uid = "lines"
				return g
			},
			want: []string{`duplicate operator uid "lines" twice in vertex 1`},
		},
		{
			name: "dangling target",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges = append(g.Edges, edge(2, 9, hash))
				return g
			},
			want: []string{"edge 2 -> 9: target vertex 9 does not exist"},
		},
		{
			name: "dangling source",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges = append(g.Edges, edge(7, 3, hash))
				return g
			},
			want: []string{"edge 7 -> 3: source vertex 7 does not exist"},
		},
		{
			name: "unspecified partitioning",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges[0].Partitioning = weirv1.Partitioning_PARTITIONING_UNSPECIFIED
				return g
			},
			want: []string{"edge 1 -> 2: partitioning is unspecified"},
		},
		{
			name: "unknown partitioning",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges[0].Partitioning = 42
				return g
			},
			want: []string{"edge 1 -> 2: partitioning 42 is unknown"},
		},
		{
			name: "negative target input",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges[0].TargetInput = -1
				return g
			},
			want: []string{"edge 1 -> 2: target input -1 is negative"},
		},
		{
			name: "forward with different parallelism",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges[0].Partitioning = forward
				return g
			},
			want: []string{"forward edge 1 -> 2 joins parallelism 2 to 4 (forward needs equal parallelism)"},
		},
		{
			name: "source with input",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices = append(g.Vertices, src(4, "Source: other", 4, "other"))
				g.Edges = append(g.Edges, edge(3, 4, forward))
				return g
			},
			want: []string{`edge 3 -> 4: source vertex 4 "Source: other" cannot have an incoming edge`},
		},
		{
			name: "no source",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices[0].IsSource = false
				g.Edges = append(g.Edges, edge(3, 1, rebalance))
				return g
			},
			want: []string{"graph has no source vertex", "cycle: 1 -> 2 -> 3 -> 1"},
		},
		{
			name: "non-source without input",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges = g.Edges[:1]
				return g
			},
			want: []string{`vertex 3 "Sink: print" is not a source but has no input edge`},
		},
		{
			name: "two-vertex cycle",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges = append(g.Edges, edge(3, 2, hash))
				return g
			},
			want: []string{"cycle: 2 -> 3 -> 2"},
		},
		{
			name: "self loop",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Edges = append(g.Edges, edge(3, 3, hash))
				return g
			},
			want: []string{"cycle: 3 -> 3"},
		},
		{
			name: "nil entries",
			mutate: func(g *weirv1.JobGraph) *weirv1.JobGraph {
				g.Vertices = append(g.Vertices, nil)
				g.Edges = append(g.Edges, nil)
				return g
			},
			want: []string{"vertex at position 3 is nil", "edge at position 2 is nil"},
		},
		{
			name: "many problems at once",
			mutate: func(*weirv1.JobGraph) *weirv1.JobGraph {
				return graph(128, []*weirv1.Vertex{
					src(1, "Source: s", 2, "s"),
					vtx(2, "Map: a", 2, "a"),
					vtx(2, "Map: b", 2, "b"),
					vtx(3, "Map: parse", 0, "parse", ""),
					vtx(4, "Reduce", 300, "count"),
					vtx(5, "Sink", 2, "count"),
					vtx(6, "Lonely", 1),
				},
					edge(1, 2, forward),
					edge(2, 9, hash),
					edge(2, 3, weirv1.Partitioning_PARTITIONING_UNSPECIFIED),
					edge(3, 4, hash),
					edge(4, 3, hash),
					edge(4, 5, forward),
				)
			},
			want: []string{
				"vertex ids must be unique: 2 appears twice",
				`vertex 3 "Map: parse": parallelism 0 is below 1`,
				`vertex 3 "Map: parse": operator 2 of 2 has an empty uid`,
				`vertex 4 "Reduce": parallelism 300 exceeds max parallelism 128`,
				`duplicate operator uid "count" in vertex 4 and vertex 5`,
				`vertex 6 "Lonely" has no operators`,
				"edge 2 -> 9: target vertex 9 does not exist",
				"edge 2 -> 3: partitioning is unspecified",
				"forward edge 4 -> 5 joins parallelism 300 to 2 (forward needs equal parallelism)",
				`vertex 6 "Lonely" is not a source but has no input edge`,
				"cycle: 3 -> 4 -> 3",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.mutate(wordcount()))
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is not a *ValidationError: %T", err)
			}
			if !slices.Equal(ve.Problems, tc.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s",
					strings.Join(ve.Problems, "\n  "), strings.Join(tc.want, "\n  "))
			}
			for _, p := range tc.want {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("message %q lacks %q", err, p)
				}
			}
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	one := &ValidationError{Problems: []string{"graph has no vertices"}}
	if got, want := one.Error(), "jobgraph: invalid graph: graph has no vertices"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	two := &ValidationError{Problems: []string{"a", "b"}}
	if got, want := two.Error(), "jobgraph: invalid graph: 2 problems:\n  a\n  b"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestValidateDoesNotModify(t *testing.T) {
	g := wordcount()
	g.Vertices[0].Parallelism = 0
	before := g.String()
	_ = Validate(g)
	_, _ = TopoOrder(g)
	_ = Expand(g)
	if g.String() != before {
		t.Errorf("graph changed:\n%s\n%s", before, g.String())
	}
}

func TestTopoOrder(t *testing.T) {
	// Listed out of order, with a diamond: ready vertices go smallest id first.
	g := graph(128, []*weirv1.Vertex{
		vtx(5, "sink", 1, "e"),
		vtx(3, "b", 1, "c"),
		vtx(2, "a", 1, "b"),
		src(1, "src", 1, "a"),
		src(4, "src2", 1, "d"),
	}, edge(1, 3, hash), edge(1, 2, hash), edge(2, 5, hash), edge(3, 5, hash), edge(4, 3, hash),
		&weirv1.Edge{Source: 1, Target: 2, Partitioning: hash, TargetInput: 1})
	got, err := TopoOrder(g)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 2, 4, 3, 5}; !slices.Equal(got, want) {
		t.Errorf("TopoOrder = %v, want %v", got, want)
	}

	for _, tc := range []struct {
		name string
		g    *weirv1.JobGraph
		want string
	}{
		{"nil", nil, "graph is nil"},
		{"cycle", graph(128, []*weirv1.Vertex{src(1, "", 1), vtx(2, "", 1), vtx(3, "", 1)},
			edge(1, 2, hash), edge(2, 3, hash), edge(3, 2, hash)), "cycle: 2 -> 3 -> 2"},
		{"dangling", graph(128, []*weirv1.Vertex{src(1, "", 1)}, edge(1, 2, hash)),
			"edge 1 -> 2: target vertex 2 does not exist"},
		{"duplicate", graph(128, []*weirv1.Vertex{src(1, "", 1), src(1, "", 1)}),
			"vertex ids must be unique: 1 appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order, err := TopoOrder(tc.g)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("TopoOrder = %v, %v; want error containing %q", order, err, tc.want)
			}
		})
	}
}

func TestCycleIsShortest(t *testing.T) {
	// 1 -> 2 -> 3 -> 4 -> 1 and a shortcut 2 -> 1: both in one component,
	// reported once as its shortest cycle through the smallest id.
	g := graph(128, []*weirv1.Vertex{src(1, "", 1), vtx(2, "", 1), vtx(3, "", 1), vtx(4, "", 1)},
		edge(1, 2, hash), edge(2, 3, hash), edge(3, 4, hash), edge(4, 1, hash), edge(2, 1, hash))
	_, err := TopoOrder(g)
	var ve *ValidationError
	if !errors.As(err, &ve) || !slices.Equal(ve.Problems, []string{"cycle: 1 -> 2 -> 1"}) {
		t.Fatalf("TopoOrder error = %v", err)
	}
}

func TestExpandAndSlots(t *testing.T) {
	g := wordcount()
	got := Expand(g)
	want := []Subtask{
		{1, 0}, {1, 1},
		{2, 0}, {2, 1}, {2, 2}, {2, 3},
		{3, 0}, {3, 1}, {3, 2}, {3, 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Expand = %v, want %v", got, want)
	}
	if n := SlotsNeeded(g); n != 4 {
		t.Errorf("SlotsNeeded = %d, want 4", n)
	}
	// Every subtask lands in a slot below SlotsNeeded, and each slot hosts at
	// most one subtask per vertex.
	seen := map[[2]int]bool{}
	for _, s := range got {
		slot := SlotOf(s)
		if slot < 0 || slot >= SlotsNeeded(g) {
			t.Errorf("SlotOf(%v) = %d out of range", s, slot)
		}
		k := [2]int{int(s.VertexID), slot}
		if seen[k] {
			t.Errorf("slot %d hosts vertex %d twice", slot, s.VertexID)
		}
		seen[k] = true
	}
	if n := SlotsNeeded(graph(128, nil)); n != 0 {
		t.Errorf("SlotsNeeded(empty) = %d", n)
	}
	if got := Expand(nil); len(got) != 0 {
		t.Errorf("Expand(nil) = %v", got)
	}
}
