package jobgraph

import (
	"fmt"
	"slices"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// index is the graph's adjacency, built once so every check is linear and so
// problems in one part (a dangling edge, a duplicate id) do not hide problems
// in another.
type index struct {
	// first is the first vertex listed with each id; later duplicates are
	// reported and otherwise ignored.
	first   map[int32]*weirv1.Vertex
	idCount map[int32]int
	// inputs counts edges targeting each id, whether or not their source
	// exists, so a dangling edge is reported once and not also as a missing
	// input.
	inputs    map[int32]int
	anySource bool
	// ids holds the distinct vertex ids, ascending.
	ids []int32
	// adj holds, for edges whose both ends exist, the distinct targets of
	// each source, ascending. Parallel edges (a two-input operator reading
	// one stream twice) collapse into one.
	adj map[int32][]int32
}

func newIndex(g *weirv1.JobGraph) *index {
	ix := &index{
		first:   make(map[int32]*weirv1.Vertex),
		idCount: make(map[int32]int),
		inputs:  make(map[int32]int),
		adj:     make(map[int32][]int32),
	}
	for _, v := range g.GetVertices() {
		if v == nil {
			continue
		}
		id := v.GetId()
		ix.idCount[id]++
		if _, ok := ix.first[id]; !ok {
			ix.first[id] = v
			ix.ids = append(ix.ids, id)
		}
		if v.GetIsSource() {
			ix.anySource = true
		}
	}
	slices.Sort(ix.ids)
	for _, e := range g.GetEdges() {
		if e == nil {
			continue
		}
		ix.inputs[e.GetTarget()]++
		if ix.first[e.GetSource()] == nil || ix.first[e.GetTarget()] == nil {
			continue
		}
		ix.adj[e.GetSource()] = append(ix.adj[e.GetSource()], e.GetTarget())
	}
	for src, ts := range ix.adj {
		slices.Sort(ts)
		ix.adj[src] = slices.Compact(ts)
	}
	return ix
}

// cycles returns one cycle per strongly connected component that has one,
// ordered by the component's smallest vertex id. Each cycle starts and ends at
// that smallest id and is the shortest way around, visiting lower ids first,
// so the report is stable and as short as it can be.
func (ix *index) cycles() [][]int32 {
	var (
		order   = make(map[int32]int, len(ix.ids))
		low     = make(map[int32]int, len(ix.ids))
		onStack = make(map[int32]bool)
		stack   []int32
		sccs    [][]int32
	)
	// Tarjan's algorithm; recursion depth is bounded by the vertex count,
	// which Go's growable stacks handle for any graph a user can describe.
	var visit func(v int32)
	visit = func(v int32) {
		order[v] = len(order)
		low[v] = order[v]
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range ix.adj[v] {
			if _, seen := order[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], order[w])
			}
		}
		if low[v] != order[v] {
			return
		}
		var scc []int32
		for {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[w] = false
			scc = append(scc, w)
			if w == v {
				break
			}
		}
		sccs = append(sccs, scc)
	}
	for _, v := range ix.ids {
		if _, seen := order[v]; !seen {
			visit(v)
		}
	}

	var out [][]int32
	for _, scc := range sccs {
		start := slices.Min(scc)
		if len(scc) == 1 && !slices.Contains(ix.adj[start], start) {
			continue
		}
		members := make(map[int32]bool, len(scc))
		for _, v := range scc {
			members[v] = true
		}
		out = append(out, ix.shortestCycle(start, members))
	}
	slices.SortFunc(out, func(a, b []int32) int { return int(a[0]) - int(b[0]) })
	return out
}

// shortestCycle finds, by breadth-first search inside one strongly connected
// component, the shortest path from start back to itself.
func (ix *index) shortestCycle(start int32, members map[int32]bool) []int32 {
	parent := map[int32]int32{}
	queue := []int32{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, w := range ix.adj[u] {
			if !members[w] {
				continue
			}
			if w == start {
				path := []int32{start}
				for x := u; x != start; x = parent[x] {
					path = append(path, x)
				}
				slices.Reverse(path[1:])
				return append(path, start)
			}
			if _, seen := parent[w]; !seen {
				parent[w] = u
				queue = append(queue, w)
			}
		}
	}
	// Unreachable for a real component; fall back to naming it.
	return []int32{start, start}
}

// TopoOrder returns the distinct vertex ids in an order where every edge goes
// from an earlier to a later vertex; among vertices that are ready at the same
// time the smaller id comes first, so the order is deterministic. It fails
// (wrapping ErrInvalid) only on what makes an order impossible or ambiguous:
// duplicate ids, edges to missing vertices and cycles. Use Validate for the
// full check.
func TopoOrder(g *weirv1.JobGraph) ([]int32, error) {
	if g == nil {
		return nil, (problems{"graph is nil"}).err()
	}
	ix := newIndex(g)
	var ps problems
	for _, id := range ix.ids {
		if n := ix.idCount[id]; n > 1 {
			ps.addf("vertex ids must be unique: %d appears %s", id, times(n))
		}
	}
	for _, e := range g.GetEdges() {
		if e == nil {
			continue
		}
		label := fmt.Sprintf("edge %d -> %d", e.GetSource(), e.GetTarget())
		if ix.first[e.GetSource()] == nil {
			ps.addf("%s: source vertex %d does not exist", label, e.GetSource())
		}
		if ix.first[e.GetTarget()] == nil {
			ps.addf("%s: target vertex %d does not exist", label, e.GetTarget())
		}
	}
	for _, c := range ix.cycles() {
		ps.addf("cycle: %s", formatPath(c))
	}
	if err := ps.err(); err != nil {
		return nil, err
	}

	indeg := make(map[int32]int, len(ix.ids))
	for _, ts := range ix.adj {
		for _, t := range ts {
			indeg[t]++
		}
	}
	var ready []int32 // kept sorted ascending
	for _, id := range ix.ids {
		if indeg[id] == 0 {
			ready = append(ready, id)
		}
	}
	order := make([]int32, 0, len(ix.ids))
	for len(ready) > 0 {
		v := ready[0]
		ready = ready[1:]
		order = append(order, v)
		for _, w := range ix.adj[v] {
			if indeg[w]--; indeg[w] == 0 {
				i, _ := slices.BinarySearch(ready, w)
				ready = slices.Insert(ready, i, w)
			}
		}
	}
	return order, nil
}
