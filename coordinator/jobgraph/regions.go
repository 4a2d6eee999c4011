package jobgraph

import (
	"slices"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Regions splits a graph into its pipelined regions: the connected
// components of the vertices, edges taken in either direction. Every
// exchange is pipelined, so a failure propagates along edges (an upstream
// subtask loses its consumer, a downstream one its input) and never beyond
// them: a region is the smallest set of vertices that must restart together,
// as in Flink's RestartPipelinedRegionFailoverStrategy.
//
// Each region lists its vertex ids ascending, and regions are ordered by
// their smallest id, so a region's index is stable for a given graph and can
// name the region on the wire. It assumes Validate passed; edges naming
// missing vertices are ignored.
func Regions(g *weirv1.JobGraph) [][]int32 {
	parent := map[int32]int32{}
	var find func(int32) int32
	find = func(v int32) int32 {
		p := parent[v]
		if p == v {
			return v
		}
		r := find(p)
		parent[v] = r
		return r
	}
	for _, v := range g.GetVertices() {
		parent[v.GetId()] = v.GetId()
	}
	for _, e := range g.GetEdges() {
		_, okS := parent[e.GetSource()]
		_, okT := parent[e.GetTarget()]
		if !okS || !okT {
			continue
		}
		a, b := find(e.GetSource()), find(e.GetTarget())
		// The smaller id becomes the root, so a root is its region's smallest id.
		parent[max(a, b)] = min(a, b)
	}
	members := map[int32][]int32{}
	for v := range parent {
		r := find(v)
		members[r] = append(members[r], v)
	}
	roots := make([]int32, 0, len(members))
	for r := range members {
		roots = append(roots, r)
	}
	slices.Sort(roots)
	out := make([][]int32, len(roots))
	for i, r := range roots {
		slices.Sort(members[r])
		out[i] = members[r]
	}
	return out
}
