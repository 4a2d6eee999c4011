package web

import (
	"strings"
	"testing"
)

func TestLayoutLayersByLongestPath(t *testing.T) {
	// 0 -> 1 -> 3 and 0 -> 2 -> 3, plus a shortcut 0 -> 3: vertex 3 sits in
	// layer 2, after both middles, which share layer 1.
	g := Layout([]int32{0, 1, 2, 3}, []Edge{{0, 1, "FORWARD"}, {0, 2, "HASH"}, {1, 3, "HASH"}, {2, 3, "REBALANCE"}, {0, 3, "BROADCAST"}})
	layers := map[int32]int{}
	xs := map[int32]float64{}
	for _, n := range g.Nodes {
		layers[n.VertexID] = n.Layer
		xs[n.VertexID] = n.X
	}
	if want := map[int32]int{0: 0, 1: 1, 2: 1, 3: 2}; !equalMaps(layers, want) {
		t.Fatalf("layers = %v, want %v", layers, want)
	}
	if xs[1] != xs[2] || !(xs[0] < xs[1] && xs[1] < xs[3]) {
		t.Fatalf("x positions %v do not follow the layers", xs)
	}
	if w := 2*margin + 3*nodeW + 2*layerGap; g.Width != w {
		t.Fatalf("width = %v, want %v", g.Width, w)
	}
	if h := 2*margin + 2*nodeH + rowGap; g.Height != h {
		t.Fatalf("height = %v, want %v", g.Height, h)
	}
	if len(g.Edges) != 5 || g.Edges[1].Label != "HASH" || !strings.HasPrefix(g.Edges[1].D, "M") {
		t.Fatalf("edges = %+v", g.Edges)
	}
}

func TestLayoutCentresShortLayers(t *testing.T) {
	g := Layout([]int32{0, 1, 2}, []Edge{{0, 2, "HASH"}, {1, 2, "HASH"}})
	n := map[int32]Node{}
	for _, x := range g.Nodes {
		n[x.VertexID] = x
	}
	// The join target is centred between its two inputs.
	if mid := (n[0].Y + n[1].Y) / 2; n[2].Y != mid {
		t.Fatalf("target y = %v, want %v (between %v and %v)", n[2].Y, mid, n[0].Y, n[1].Y)
	}
}

func TestSparkline(t *testing.T) {
	s := Sparkline([]float64{0, 5, 10}, 100, 20)
	if s.Line != "M0.0,18.0 L50.0,10.0 L100.0,2.0" || s.Max != 10 {
		t.Fatalf("line = %q, max %v", s.Line, s.Max)
	}
	if s.Area != s.Line+" L100.0,20.0 L0.0,20.0 Z" {
		t.Fatalf("area = %q", s.Area)
	}
	if empty := Sparkline([]float64{3}, 100, 20); empty.Line != "" {
		t.Fatalf("one value drew %q", empty.Line)
	}
}

func TestBarsScaleToTheLongest(t *testing.T) {
	bars := Bars([]Checkpoint{{ID: 1, Status: "COMPLETED", DurationMs: 50}, {ID: 2, Status: "FAILED", DurationMs: 100}}, 4, 100, 42)
	if len(bars) != 2 || bars[1].H != 40 || bars[0].H != 20 || bars[1].Class != "failed" || bars[0].X >= bars[1].X {
		t.Fatalf("bars = %+v", bars)
	}
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
