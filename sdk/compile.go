package sdk

import (
	"fmt"
	"slices"
	"strings"

	"github.com/weir-run/weir/internal/keygroup"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"github.com/weir-run/weir/sdk/internal/runtime"
)

// compile turns the pipeline into the runtime's graph: it resolves
// parallelism and partitioning and fuses chains of operators into vertices
// joined by exchange edges. Every process of a job compiles the same graph
// from the same pipeline, so ids agree between processes.
func (p *Pipeline) compile() (*runtime.Graph, error) {
	if p.err != nil {
		return nil, p.err
	}
	if len(p.nodes) == 0 {
		return nil, fmt.Errorf("sdk: the pipeline is empty: add a source and a sink")
	}
	maxP := 0
	for _, n := range p.nodes {
		if n.parallelism == 0 {
			n.parallelism = p.parallelism
		}
		maxP = max(maxP, n.parallelism)
		for _, l := range n.inputs {
			if l.part == weirv1.Partitioning_PARTITIONING_UNSPECIFIED {
				l.part = weirv1.Partitioning_PARTITIONING_FORWARD
			}
		}
		if n.NewSource == nil && len(n.inputs) == 0 {
			return nil, fmt.Errorf("sdk: operator %q has no input", n.Name)
		}
	}
	// Forward needs equal parallelism; elsewhere Flink's default applies.
	for _, n := range p.nodes {
		for _, l := range n.inputs {
			if l.part == weirv1.Partitioning_PARTITIONING_FORWARD && l.from.parallelism != n.parallelism {
				l.part = weirv1.Partitioning_PARTITIONING_REBALANCE
			}
		}
	}
	p.fuseFanOuts()
	g := &runtime.Graph{Name: p.name, MaxParallelism: p.maxParallelism, BufferTimeout: p.bufferTimeout}
	if g.MaxParallelism == 0 {
		g.MaxParallelism = keygroup.DefaultMaxParallelism(maxP)
	}
	if g.MaxParallelism < maxP || g.MaxParallelism > keygroup.MaxLimit {
		return nil, fmt.Errorf("sdk: max parallelism %d must be between the largest operator parallelism (%d) and %d", g.MaxParallelism, maxP, keygroup.MaxLimit)
	}
	vertexOf := make(map[*node]*runtime.Vertex)
	for _, n := range p.nodes {
		if in := chainPredecessor(n); in != nil {
			v := vertexOf[in]
			v.Operators = append(v.Operators, n.Operator)
			vertexOf[n] = v
			continue
		}
		v := &runtime.Vertex{ID: len(g.Vertices), Operators: []*runtime.Operator{n.Operator}, Parallelism: n.parallelism}
		g.Vertices = append(g.Vertices, v)
		vertexOf[n] = v
	}
	for _, n := range p.nodes {
		for _, l := range n.inputs {
			from, to := vertexOf[l.from], vertexOf[n]
			if from == to {
				continue
			}
			e := &runtime.Edge{ID: len(g.Edges), From: from, To: to, Part: l.part, KeyHash: l.keyHash, Side: l.side, Input: l.input}
			g.Edges = append(g.Edges, e)
			from.Out = append(from.Out, e)
			to.In = append(to.In, e)
		}
	}
	return g, nil
}

// chainPredecessor returns the operator n fuses behind, if any: the only
// producer of its only input, joined by a forward link, with nothing else
// consuming that producer's output.
func chainPredecessor(n *node) *node {
	if n.startChain || len(n.inputs) != 1 {
		return nil
	}
	l := n.inputs[0]
	if l.part != weirv1.Partitioning_PARTITIONING_FORWARD || len(l.from.outputs) != 1 || l.side != 0 ||
		l.from.parallelism != n.parallelism {
		return nil
	}
	return l.from
}

// fuseFanOuts chains fan-outs, as Flink chains an operator with several
// chained outputs. A node whose every consumer is a stateless per-record
// operator (Map, Filter, FlatMap) linked forward at its parallelism, none
// of them chained to by its own consumers, gets one operator in their
// place: it runs them all in the producer's chain (behind a source, in a
// chain of its own: inSourceChain), and each one's output leaves it as one
// of its outputs (the first's as the main output, the others' as side
// outputs). Otherwise a fan-out ends the chain and every record crosses an
// in-memory channel per consumer, to be filtered there: q3's and q8's
// source feeds two FlatMaps keeping 2% and 6% of the events.
// The fused operator has the first consumer's uid; the others keep no
// state for their uids to find.
func (p *Pipeline) fuseFanOuts() {
	into := map[*node]*node{} // a fused consumer -> its fan-out node
	nodes := make([]*node, 0, len(p.nodes))
	for _, n := range p.nodes {
		if f := into[n]; f != nil {
			if f.id == n.id { // the first consumer, whose id f has
				nodes = append(nodes, f)
			}
			continue
		}
		nodes = append(nodes, n)
		if kids := fusableFanOut(n); kids != nil {
			f := fanOut(n, kids)
			for _, k := range kids {
				into[k] = f
			}
		}
	}
	p.nodes = nodes
}

// inSourceChain reports whether n chains into a source. A source's chain
// keeps its output batches while the source waits (Graph.BufferTimeout), so
// a fan-out's sparse outputs would wait there for the deadline: fused
// behind a source, q3's half-load latency rose from 0.2 / 3 ms (p50 / p99)
// to 4 / 16-24 ms. The fan-out runs in a subtask of its own there, fed by
// one channel instead of one per consumer, which flushes whenever its
// input runs dry (0.2 / 3.8 ms).
func inSourceChain(n *node) bool {
	for ; n != nil; n = chainPredecessor(n) {
		if n.NewSource != nil {
			return true
		}
	}
	return false
}

// fusableFanOut returns n's consumers if fuseFanOuts may fuse them.
func fusableFanOut(n *node) []*node {
	if len(n.outputs) < 2 || n.tee == nil {
		return nil
	}
	kids := make([]*node, 0, len(n.outputs))
	for _, l := range n.outputs {
		k := l.to
		if l.side != 0 || l.part != weirv1.Partitioning_PARTITIONING_FORWARD || !k.stateless || k.startChain ||
			len(k.inputs) != 1 || k.parallelism != n.parallelism || len(k.Sides) > 0 || slices.Contains(kids, k) {
			return nil
		}
		for _, o := range k.outputs {
			if chainPredecessor(o.to) == k {
				return nil // fusing would break the chain behind k
			}
		}
		kids = append(kids, k)
	}
	return kids
}

// fanOut makes the node that runs kids, n's consumers, in n's chain, and
// moves their links to it.
func fanOut(n *node, kids []*node) *node {
	names := make([]string, len(kids))
	newOps := make([]func(*runtime.Env, any) (runtime.OpRun, error), len(kids))
	for i, k := range kids {
		names[i], newOps[i] = k.Name, k.NewOp
	}
	f := &node{Operator: &runtime.Operator{Kind: "fanout", Name: strings.Join(names, " | "), UID: kids[0].UID, Out: kids[0].Out},
		id: kids[0].id, parallelism: n.parallelism, startChain: inSourceChain(n)}
	in := &link{from: n, to: f, part: weirv1.Partitioning_PARTITIONING_FORWARD}
	n.outputs, f.inputs = []*link{in}, []*link{in}
	for i, k := range kids {
		if i > 0 {
			f.Sides = append(f.Sides, k.Out)
		}
		for _, l := range k.outputs {
			l.from, l.side = f, i
			f.outputs = append(f.outputs, l)
		}
	}
	tee := n.tee
	f.NewOp = func(env *runtime.Env, emit any) (runtime.OpRun, error) {
		emits := append([]any{emit}, env.Sides()...)
		ins := make([]any, len(newOps))
		for i, newOp := range newOps {
			run, err := newOp(env, emits[i])
			if err != nil {
				return runtime.OpRun{}, err
			}
			ins[i] = run.In
		}
		return runtime.OpRun{In: tee(ins)}, nil
	}
	return f
}
