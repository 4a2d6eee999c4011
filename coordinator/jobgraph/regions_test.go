package jobgraph

import (
	"slices"
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestRegions(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *weirv1.JobGraph
		want [][]int32
	}{
		{"empty", graph(8, nil), [][]int32{}},
		{"one pipeline", wordcount(), [][]int32{{1, 2, 3}}},
		{"two pipelines", graph(8, []*weirv1.Vertex{
			src(1, "a", 1, "a"), vtx(2, "b", 2, "b"), src(3, "c", 1, "c"), vtx(4, "d", 2, "d"),
		}, edge(1, 2, hash), edge(3, 4, hash)), [][]int32{{1, 2}, {3, 4}}},
		{"interleaved ids and a lone vertex", graph(8, []*weirv1.Vertex{
			src(5, "a", 1, "a"), src(2, "b", 1, "b"), vtx(9, "c", 1, "c"), vtx(1, "d", 1, "d"), src(7, "e", 1, "e"),
		}, edge(5, 1, forward), edge(2, 9, forward)), [][]int32{{1, 5}, {2, 9}, {7}}},
		{"a join connects two sources", graph(8, []*weirv1.Vertex{
			src(1, "l", 1, "l"), src(2, "r", 1, "r"), vtx(3, "join", 1, "j"), src(4, "x", 1, "x"), vtx(5, "y", 1, "y"),
		}, edge(1, 3, hash), &weirv1.Edge{Source: 2, Target: 3, Partitioning: hash, TargetInput: 1}, edge(4, 5, hash)),
			[][]int32{{1, 2, 3}, {4, 5}}},
		{"edges towards a smaller id merge through the root", graph(8, []*weirv1.Vertex{
			src(4, "a", 1, "a"), vtx(3, "b", 1, "b"), src(2, "c", 1, "c"), vtx(1, "d", 1, "d"),
		}, edge(4, 1, hash), edge(2, 3, hash), edge(2, 1, hash)), [][]int32{{1, 2, 3, 4}}},
		{"dangling edge ignored", graph(8, []*weirv1.Vertex{src(1, "a", 1, "a")}, edge(1, 7, hash)), [][]int32{{1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Regions(tc.g)
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("Regions = %v, want %v", got, tc.want)
			}
		})
	}
}
