package jobgraph

import (
	"slices"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// NotRestored lists, sorted, the uids of the operators whose state in the
// savepoint (or checkpoint) m the job graph g would not restore, by the
// rules the job's restore follows: a subtask's snapshot belongs to the
// vertex whose chain starts with the snapshot's head uid (its keyed state
// with it, named here by that head uid), and an operator's state within it
// to the operator of that uid. Without an empty answer a restore would drop
// state without a word, so the coordinator refuses it unless told to
// (Flink's --allowNonRestoredState).
func NotRestored(g *weirv1.JobGraph, m *weirv1.CheckpointManifest) []string {
	chains := map[string]map[string]bool{} // head uid -> the chain's uids
	for _, v := range g.GetVertices() {
		if len(v.GetOperators()) == 0 {
			continue
		}
		uids := map[string]bool{}
		for _, op := range v.GetOperators() {
			uids[op.GetUid()] = true
		}
		chains[v.GetOperators()[0].GetUid()] = uids
	}
	lost := map[string]bool{}
	for _, s := range m.GetSubtasks() {
		if len(s.GetUids()) == 0 {
			continue
		}
		chain, ok := chains[s.GetUids()[0]]
		if len(s.GetFiles()) > 0 && !ok {
			lost[s.GetUids()[0]] = true
		}
		for _, op := range s.GetOperators() {
			if !chain[op.GetUid()] {
				lost[op.GetUid()] = true
			}
		}
	}
	out := make([]string, 0, len(lost))
	for uid := range lost {
		out = append(out, uid)
	}
	slices.Sort(out)
	return out
}
