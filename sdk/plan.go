package sdk

import (
	"fmt"
	"strings"

	"github.com/weir-run/weir/internal/keygroup"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// plan is the pipeline after chaining: vertices of fused operators joined by
// exchange edges. Every process of a job computes the same plan from the same
// pipeline, and the JobGraph sent to the coordinator is its description.
type plan struct {
	name           string
	maxParallelism int
	vertices       []*vertex
	edges          []*edge
}

type vertex struct {
	id          int
	nodes       []*node // head first
	parallelism int
	in, out     []*edge
}

type edge struct {
	id       int
	from, to *vertex
	link     *link
	part     weirv1.Partitioning
}

func (v *vertex) head() *node { return v.nodes[0] }

// keyed reports whether any operator of the chain keeps keyed state.
func (v *vertex) keyed() bool {
	for _, n := range v.nodes {
		if n.keyed {
			return true
		}
	}
	return false
}

// uids lists the chain's operator uids, head first.
func (v *vertex) uids() []string {
	u := make([]string, len(v.nodes))
	for i, n := range v.nodes {
		u[i] = n.uid
	}
	return u
}
func (v *vertex) tail() *node { return v.nodes[len(v.nodes)-1] }

// name is the vertex's display name, Flink's: its operators' names joined
// by " -> ", after "Source: " for a source chain.
func (v *vertex) name() string {
	names := make([]string, len(v.nodes))
	for i, n := range v.nodes {
		names[i] = n.name
	}
	name := strings.Join(names, " -> ")
	if v.head().newSource != nil {
		name = "Source: " + name
	}
	return name
}

// buildPlan resolves parallelism and partitioning and fuses chains.
func (p *Pipeline) buildPlan() (*plan, error) {
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
		if n.newSource == nil && len(n.inputs) == 0 {
			return nil, fmt.Errorf("sdk: operator %q has no input", n.name)
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
	pl := &plan{name: p.name, maxParallelism: p.maxParallelism}
	if pl.maxParallelism == 0 {
		pl.maxParallelism = keygroup.DefaultMaxParallelism(maxP)
	}
	if pl.maxParallelism < maxP || pl.maxParallelism > keygroup.MaxLimit {
		return nil, fmt.Errorf("sdk: max parallelism %d must be between the largest operator parallelism (%d) and %d", pl.maxParallelism, maxP, keygroup.MaxLimit)
	}
	vertexOf := make(map[*node]*vertex)
	for _, n := range p.nodes {
		if in := chainPredecessor(n); in != nil {
			v := vertexOf[in]
			v.nodes = append(v.nodes, n)
			vertexOf[n] = v
			continue
		}
		v := &vertex{id: len(pl.vertices), nodes: []*node{n}, parallelism: n.parallelism}
		pl.vertices = append(pl.vertices, v)
		vertexOf[n] = v
	}
	for _, n := range p.nodes {
		for _, l := range n.inputs {
			from, to := vertexOf[l.from], vertexOf[n]
			if from == to {
				continue
			}
			e := &edge{id: len(pl.edges), from: from, to: to, link: l, part: l.part}
			pl.edges = append(pl.edges, e)
			from.out = append(from.out, e)
			to.in = append(to.in, e)
		}
	}
	return pl, nil
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

// jobGraph describes the plan for the coordinator.
func (pl *plan) jobGraph() *weirv1.JobGraph {
	g := &weirv1.JobGraph{Name: pl.name, MaxParallelism: int32(pl.maxParallelism)}
	for _, v := range pl.vertices {
		pv := &weirv1.Vertex{Id: int32(v.id), Parallelism: int32(v.parallelism), IsSource: v.head().newSource != nil,
			Name: v.name()}
		for _, n := range v.nodes {
			pv.Operators = append(pv.Operators, &weirv1.Operator{Uid: n.uid, Name: n.name, Kind: n.kind,
				TransactionTimeoutMs: n.txnTimeout.Milliseconds()})
		}
		g.Vertices = append(g.Vertices, pv)
	}
	for _, e := range pl.edges {
		g.Edges = append(g.Edges, &weirv1.Edge{Source: int32(e.from.id), Target: int32(e.to.id), Partitioning: e.part,
			TargetInput: int32(e.link.input)})
	}
	return g
}
