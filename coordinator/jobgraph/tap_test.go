package jobgraph

import (
	"strings"
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestTapTarget(t *testing.T) {
	g := &weirv1.JobGraph{
		Vertices: []*weirv1.Vertex{
			{Id: 0, Name: "Source: gen -> Map", Operators: []*weirv1.Operator{{Uid: "gen", Name: "gen", Kind: "source"}, {Uid: "m", Name: "Map", Kind: "map"}}},
			{Id: 1, Name: "Count -> Sink", Operators: []*weirv1.Operator{{Uid: "count", Name: "Count", Kind: "reduce"}, {Uid: "sink", Name: "Map", Kind: "sink"}}},
		},
		Edges: []*weirv1.Edge{{Source: 0, Target: 1}},
	}
	for _, tc := range []struct{ op, uid, err string }{
		{op: "m", uid: "m"},
		{op: "gen", err: `operator "gen" is chained into "Source: gen -> Map": tail "m"`},
		{op: "Map", err: `several operators are named "Map"`},
		{op: "sink", err: `operator "sink" ends the job (sink)`},
		{op: "x", err: `no operator "x" (uids: gen, m, count, sink)`},
	} {
		uid, err := TapTarget(g, tc.op)
		switch {
		case tc.err == "" && (err != nil || uid != tc.uid):
			t.Errorf("TapTarget(%q) = %q, %v; want %q", tc.op, uid, err, tc.uid)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("TapTarget(%q) error = %v; want %q", tc.op, err, tc.err)
		}
	}
}
