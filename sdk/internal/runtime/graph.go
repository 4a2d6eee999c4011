package runtime

import (
	"strings"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Graph is a job compiled for the runtime: vertices of chained operators
// joined by exchange edges. Every process of a job compiles the same graph
// from the same pipeline, so vertex and edge ids name the same things in
// all of them; the JobGraph sent to the coordinator is its description.
type Graph struct {
	Name           string
	MaxParallelism int
	// BufferTimeout is how long a subtask's output may hold a partial
	// batch while the subtask is busy, or while its source waits less than
	// that (0: the default, 5 ms).
	BufferTimeout time.Duration
	Vertices      []*Vertex // by id
	Edges         []*Edge   // by id
}

// Vertex is a chain of operators fused into one goroutine per subtask.
type Vertex struct {
	ID          int
	Operators   []*Operator // head first
	Parallelism int
	In, Out     []*Edge
}

// Edge joins the tail of one vertex to the head of another through the
// exchange.
type Edge struct {
	ID       int
	From, To *Vertex
	Part     weirv1.Partitioning // never UNSPECIFIED once compiled
	// KeyHash makes, for HASH edges, a func(T) uint64 hashing the key of
	// the edge's record type T; called once per subtask, so each gets its
	// own scratch space.
	KeyHash func() any
	// Side is the producer's output the edge leaves from: 0 its main
	// output, i its side output i-1.
	Side int
	// Input is the consumer's input the edge feeds: 0, or 1 for the second
	// input of a two-input operator.
	Input int
}

// Operator is one logical operator: what the runtime needs to run it, with
// its typed behaviour hidden in the factories and stream types made by the
// code that knew its record types.
type Operator struct {
	UID, Name, Kind string
	Keyed           bool          // keeps keyed state
	TxnTimeout      time.Duration // how long external transactions may stay open
	Out             StreamType    // the main output's type; nil for sinks
	Sides           []StreamType  // side outputs' types (Edge.Side i+1 is Sides[i])
	// Exactly one factory is set. Each builds one subtask's instance;
	// emit is a func(T) over the record type of Out.
	NewSource func(env *Env, emit any) (SourceRun, error)
	NewOp     func(env *Env, emit any) (OpRun, error)
}

// outType is the type of the operator's output side (see Edge.Side).
func (o *Operator) outType(side int) StreamType {
	if side == 0 {
		return o.Out
	}
	return o.Sides[side-1]
}

// IsSource reports whether the vertex's chain starts with a source.
func (v *Vertex) IsSource() bool { return v.head().NewSource != nil }

func (v *Vertex) head() *Operator { return v.Operators[0] }
func (v *Vertex) tail() *Operator { return v.Operators[len(v.Operators)-1] }

// keyed reports whether any operator of the chain keeps keyed state.
func (v *Vertex) keyed() bool {
	for _, o := range v.Operators {
		if o.Keyed {
			return true
		}
	}
	return false
}

// uids lists the chain's operator uids, head first.
func (v *Vertex) uids() []string {
	u := make([]string, len(v.Operators))
	for i, o := range v.Operators {
		u[i] = o.UID
	}
	return u
}

// Name is the vertex's display name, Flink's: its operators' names joined
// by " -> ", after "Source: " for a source chain.
func (v *Vertex) Name() string {
	names := make([]string, len(v.Operators))
	for i, o := range v.Operators {
		names[i] = o.Name
	}
	name := strings.Join(names, " -> ")
	if v.IsSource() {
		name = "Source: " + name
	}
	return name
}

// JobGraph describes the graph for the coordinator.
func (g *Graph) JobGraph() *weirv1.JobGraph {
	jg := &weirv1.JobGraph{Name: g.Name, MaxParallelism: int32(g.MaxParallelism)}
	for _, v := range g.Vertices {
		pv := &weirv1.Vertex{Id: int32(v.ID), Parallelism: int32(v.Parallelism), IsSource: v.IsSource(), Name: v.Name()}
		for _, o := range v.Operators {
			pv.Operators = append(pv.Operators, &weirv1.Operator{Uid: o.UID, Name: o.Name, Kind: o.Kind,
				TransactionTimeoutMs: o.TxnTimeout.Milliseconds()})
		}
		jg.Vertices = append(jg.Vertices, pv)
	}
	for _, e := range g.Edges {
		jg.Edges = append(jg.Edges, &weirv1.Edge{Source: int32(e.From.ID), Target: int32(e.To.ID), Partitioning: e.Part,
			TargetInput: int32(e.Input)})
	}
	return jg
}
