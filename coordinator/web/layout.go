package web

import (
	"fmt"
	"sort"
)

// Graph is a job graph laid out left to right, in SVG user units.
type Graph struct {
	Width  float64    `json:"width"`
	Height float64    `json:"height"`
	Nodes  []Node     `json:"nodes"`
	Edges  []EdgePath `json:"edges"`
}

type Node struct {
	VertexID int32   `json:"vertex_id"`
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	W        float64 `json:"w"`
	H        float64 `json:"h"`
	Layer    int     `json:"layer"`
}

type EdgePath struct {
	From   int32   `json:"from"`
	To     int32   `json:"to"`
	D      string  `json:"d"` // SVG path data
	Label  string  `json:"label"`
	LabelX float64 `json:"label_x"`
	LabelY float64 `json:"label_y"`
}

// Layout geometry: node boxes and the gaps between layers and rows.
const (
	nodeW    = 220.0
	nodeH    = 92.0
	layerGap = 90.0
	rowGap   = 28.0
	margin   = 16.0
)

// Layout places vertices in layers by their longest path from a source and
// stacks each layer's vertices in id order, centred vertically: simple,
// stable between refreshes, and right for the short pipelines jobs are.
func Layout(vertices []int32, edges []Edge) Graph {
	layer := make(map[int32]int, len(vertices))
	for _, v := range vertices {
		layer[v] = 0
	}
	// Longest path by relaxation; a DAG settles within len(vertices) rounds.
	for range vertices {
		changed := false
		for _, e := range edges {
			if l := layer[e.From] + 1; l > layer[e.To] {
				layer[e.To], changed = l, true
			}
		}
		if !changed {
			break
		}
	}
	byLayer := map[int][]int32{}
	layers := 0
	for _, v := range vertices {
		byLayer[layer[v]] = append(byLayer[layer[v]], v)
		layers = max(layers, layer[v]+1)
	}
	rows := 0
	for _, vs := range byLayer {
		sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
		rows = max(rows, len(vs))
	}
	g := Graph{
		Width:  2*margin + float64(layers)*nodeW + float64(max(layers-1, 0))*layerGap,
		Height: 2*margin + float64(rows)*nodeH + float64(max(rows-1, 0))*rowGap,
	}
	pos := map[int32]Node{}
	for l := 0; l < layers; l++ {
		vs := byLayer[l]
		colH := float64(len(vs))*nodeH + float64(max(len(vs)-1, 0))*rowGap
		y0 := (g.Height - colH) / 2
		for i, v := range vs {
			n := Node{VertexID: v, Layer: l, W: nodeW, H: nodeH,
				X: margin + float64(l)*(nodeW+layerGap), Y: y0 + float64(i)*(nodeH+rowGap)}
			pos[v] = n
			g.Nodes = append(g.Nodes, n)
		}
	}
	for _, e := range edges {
		a, b := pos[e.From], pos[e.To]
		x1, y1 := a.X+a.W, a.Y+a.H/2
		x2, y2 := b.X, b.Y+b.H/2
		mx := (x1 + x2) / 2
		g.Edges = append(g.Edges, EdgePath{From: e.From, To: e.To, Label: e.Partitioning,
			D:      fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, mx, y1, mx, y2, x2-6, y2),
			LabelX: mx, LabelY: (y1+y2)/2 - 8})
	}
	return g
}
