package jobgraph

import (
	"slices"
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func chainGraph(chains ...[]string) *weirv1.JobGraph {
	g := &weirv1.JobGraph{Name: "g"}
	for i, c := range chains {
		v := &weirv1.Vertex{Id: int32(i), Parallelism: 2}
		for _, uid := range c {
			v.Operators = append(v.Operators, &weirv1.Operator{Uid: uid})
		}
		g.Vertices = append(g.Vertices, v)
	}
	return g
}

func TestNotRestored(t *testing.T) {
	file := []*weirv1.StateFile{{}}
	opState := func(uids ...string) []*weirv1.OperatorState {
		var out []*weirv1.OperatorState
		for _, u := range uids {
			out = append(out, &weirv1.OperatorState{Uid: u})
		}
		return out
	}
	// A keyedcount-like savepoint: a generator source with positions,
	// keyed counts chained with a file sink holding pending files.
	keyedcount := &weirv1.CheckpointManifest{Subtasks: []*weirv1.SubtaskSnapshot{
		{Uids: []string{"events"}, Operators: opState("events")},
		{Uids: []string{"events"}, Subtask: 1, Operators: opState("events")},
		{Uids: []string{"count", "sink"}, Files: file, Operators: opState("sink")},
		{Uids: []string{"split"}}, // stateless: nothing to lose
	}}
	for _, tc := range []struct {
		name string
		g    *weirv1.JobGraph
		want []string
	}{
		{"same job", chainGraph([]string{"events"}, []string{"count", "sink"}), nil},
		{"more operators is fine", chainGraph([]string{"events", "map-1"}, []string{"count", "sink"}, []string{"extra"}), nil},
		// wordcount has uids count and sink too, but no "events".
		{"another job's savepoint", chainGraph([]string{"lines", "split"}, []string{"count", "sink"}), []string{"events"}},
		{"keyed state of a missing head", chainGraph([]string{"events"}, []string{"sink"}), []string{"count", "sink"}},
		{"operator state moved out of its chain", chainGraph([]string{"events"}, []string{"count"}, []string{"sink"}), []string{"sink"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NotRestored(tc.g, keyedcount)
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("NotRestored = %q, want %q", got, tc.want)
			}
		})
	}
}
