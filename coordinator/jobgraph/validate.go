package jobgraph

import (
	"errors"
	"fmt"
	"strings"

	"github.com/weir-run/weir/internal/keygroup"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// ErrInvalid is wrapped by every error Validate and TopoOrder return.
var ErrInvalid = errors.New("jobgraph: invalid graph")

// ValidationError lists every problem found in a graph, in a deterministic
// order. All of them are reported at once so that a user fixes their job in
// one round trip instead of one resubmission per mistake.
//
// It unwraps to ErrInvalid. Problems are human sentences that name the vertex,
// operator or edge concerned; callers may show them one per line.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	switch len(e.Problems) {
	case 0:
		return ErrInvalid.Error()
	case 1:
		return ErrInvalid.Error() + ": " + e.Problems[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", ErrInvalid, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// problems accumulates sentences; its zero value is ready to use.
type problems []string

func (p *problems) addf(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// Validate checks everything the coordinator relies on before it expands and
// schedules a graph. It returns nil, or a *ValidationError (wrapping
// ErrInvalid) listing every problem: graph-wide settings first, then vertices
// in the order given, then edges in the order given, then whole-graph
// properties (sources, unconnected vertices, cycles).
func Validate(g *weirv1.JobGraph) error {
	if g == nil {
		return (problems{"graph is nil"}).err()
	}
	var ps problems

	maxPar := g.GetMaxParallelism()
	maxParOK := false
	switch {
	case maxPar < 1:
		ps.addf("max parallelism %d is below 1", maxPar)
	case maxPar > keygroup.MaxLimit:
		ps.addf("max parallelism %d is above %d", maxPar, keygroup.MaxLimit)
	default:
		maxParOK = true
	}

	if len(g.GetVertices()) == 0 {
		ps.addf("graph has no vertices")
	}
	ix := newIndex(g)
	validateVertices(&ps, g, ix, maxPar, maxParOK)
	validateEdges(&ps, g, ix)

	if len(g.GetVertices()) > 0 && !ix.anySource {
		ps.addf("graph has no source vertex")
	}
	for _, v := range g.GetVertices() {
		if v == nil || v.GetIsSource() || ix.first[v.GetId()] != v {
			continue
		}
		if ix.inputs[v.GetId()] == 0 {
			ps.addf("%s is not a source but has no input edge", vertexLabel(v))
		}
	}
	for _, c := range ix.cycles() {
		ps.addf("cycle: %s", formatPath(c))
	}
	return ps.err()
}

func validateVertices(ps *problems, g *weirv1.JobGraph, ix *index, maxPar int32, maxParOK bool) {
	type uidSite struct {
		vertex int32
	}
	uids := make(map[string]uidSite)
	dupReported := make(map[int32]bool)
	for i, v := range g.GetVertices() {
		if v == nil {
			ps.addf("vertex at position %d is nil", i)
			continue
		}
		id := v.GetId()
		if ix.first[id] != v && !dupReported[id] {
			dupReported[id] = true
			ps.addf("vertex ids must be unique: %d appears %s", id, times(ix.idCount[id]))
		}
		label := vertexLabel(v)
		if p := v.GetParallelism(); p < 1 {
			ps.addf("%s: parallelism %d is below 1", label, p)
		} else if maxParOK && p > maxPar {
			ps.addf("%s: parallelism %d exceeds max parallelism %d", label, p, maxPar)
		}
		ops := v.GetOperators()
		if len(ops) == 0 {
			ps.addf("%s has no operators", label)
		}
		for j, op := range ops {
			pos := fmt.Sprintf("operator %d of %d", j+1, len(ops))
			if op == nil {
				ps.addf("%s: %s is nil", label, pos)
				continue
			}
			uid := op.GetUid()
			if uid == "" {
				if op.GetName() != "" {
					pos += fmt.Sprintf(" (%q)", op.GetName())
				}
				// Without a uid, savepoint state cannot be mapped back to the
				// operator after a code change.
				ps.addf("%s: %s has an empty uid", label, pos)
				continue
			}
			if prev, ok := uids[uid]; ok {
				if prev.vertex == id {
					ps.addf("duplicate operator uid %q twice in vertex %d", uid, id)
				} else {
					ps.addf("duplicate operator uid %q in vertex %d and vertex %d", uid, prev.vertex, id)
				}
				continue
			}
			uids[uid] = uidSite{vertex: id}
		}
	}
}

func validateEdges(ps *problems, g *weirv1.JobGraph, ix *index) {
	for i, e := range g.GetEdges() {
		if e == nil {
			ps.addf("edge at position %d is nil", i)
			continue
		}
		src, dst := ix.first[e.GetSource()], ix.first[e.GetTarget()]
		label := fmt.Sprintf("edge %d -> %d", e.GetSource(), e.GetTarget())
		if src == nil {
			ps.addf("%s: source vertex %d does not exist", label, e.GetSource())
		}
		if dst == nil {
			ps.addf("%s: target vertex %d does not exist", label, e.GetTarget())
		}
		switch part := e.GetPartitioning(); {
		case part == weirv1.Partitioning_PARTITIONING_UNSPECIFIED:
			ps.addf("%s: partitioning is unspecified", label)
		case weirv1.Partitioning_name[int32(part)] == "":
			ps.addf("%s: partitioning %d is unknown", label, int32(part))
		}
		if in := e.GetTargetInput(); in < 0 {
			ps.addf("%s: target input %d is negative", label, in)
		}
		if src == nil || dst == nil {
			continue
		}
		if dst.GetIsSource() {
			ps.addf("%s: source %s cannot have an incoming edge", label, vertexLabel(dst))
		}
		sp, dp := src.GetParallelism(), dst.GetParallelism()
		if e.GetPartitioning() == weirv1.Partitioning_PARTITIONING_FORWARD && sp >= 1 && dp >= 1 && sp != dp {
			ps.addf("forward edge %d -> %d joins parallelism %d to %d (forward needs equal parallelism)",
				e.GetSource(), e.GetTarget(), sp, dp)
		}
	}
}

// vertexLabel names a vertex the way users see it on the status page.
func vertexLabel(v *weirv1.Vertex) string {
	if v.GetName() == "" {
		return fmt.Sprintf("vertex %d", v.GetId())
	}
	return fmt.Sprintf("vertex %d %q", v.GetId(), v.GetName())
}

func times(n int) string {
	if n == 2 {
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

func formatPath(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, " -> ")
}
