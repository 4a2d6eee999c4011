package sdk

import (
	"fmt"

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
