package jobgraph

import weirv1 "github.com/weir-run/weir/proto/weir/v1"

// Subtask is one parallel instance of a vertex: the unit that is deployed,
// reports state and owns a key-group range.
type Subtask struct {
	VertexID int32
	Index    int32
}

// Expand lists every subtask of a graph, vertices in the order the graph
// lists them and, within a vertex, by index. It assumes Validate passed: a
// vertex with parallelism below 1 contributes nothing.
func Expand(g *weirv1.JobGraph) []Subtask {
	n := 0
	for _, v := range g.GetVertices() {
		n += int(max(v.GetParallelism(), 0))
	}
	out := make([]Subtask, 0, n)
	for _, v := range g.GetVertices() {
		for i := int32(0); i < v.GetParallelism(); i++ {
			out = append(out, Subtask{VertexID: v.GetId(), Index: i})
		}
	}
	return out
}

// SlotsNeeded is the number of slots a job occupies under Flink's default
// slot sharing, where slot i hosts subtask i of every vertex: the widest
// vertex's parallelism. Sharing keeps a whole pipeline slice in one slot, so
// forward exchanges stay in-process and a job's footprint does not grow with
// its number of operators.
func SlotsNeeded(g *weirv1.JobGraph) int {
	n := 0
	for _, v := range g.GetVertices() {
		n = max(n, int(v.GetParallelism()))
	}
	return n
}

// SlotOf is the shared slot that hosts s.
func SlotOf(s Subtask) int { return int(s.Index) }
