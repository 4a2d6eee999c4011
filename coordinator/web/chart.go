package web

import (
	"fmt"
	"strings"
)

// Spark is a sparkline's geometry: the line and the area under it.
type Spark struct {
	W, H       float64
	Line, Area string
	Max        float64
}

// Sparkline fits values into a w×h box, newest at the right. With fewer
// than two values it is empty.
func Sparkline(values []float64, w, h float64) Spark {
	s := Spark{W: w, H: h}
	if len(values) < 2 {
		return s
	}
	for _, v := range values {
		s.Max = max(s.Max, v)
	}
	top := s.Max
	if top == 0 {
		top = 1
	}
	var b strings.Builder
	step := w / float64(len(values)-1)
	for i, v := range values {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&b, "%s%.1f,%.1f ", cmd, float64(i)*step, h-2-(h-4)*v/top)
	}
	s.Line = strings.TrimSpace(b.String())
	s.Area = fmt.Sprintf("%s L%.1f,%.1f L0.0,%.1f Z", s.Line, w, h, h)
	return s
}

// Bar is one bar of a bar chart.
type Bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

// Bars lays out one bar per checkpoint (oldest left) scaled to the
// longest duration, at most n of the newest.
func Bars(cps []Checkpoint, n int, w, h float64) []Bar {
	if len(cps) > n {
		cps = cps[len(cps)-n:]
	}
	if len(cps) == 0 {
		return nil
	}
	top := int64(1)
	for _, c := range cps {
		top = max(top, c.DurationMs)
	}
	slot := w / float64(n)
	bw := max(slot*0.7, 2)
	out := make([]Bar, len(cps))
	for i, c := range cps {
		bh := max((h-2)*float64(c.DurationMs)/float64(top), 2)
		out[i] = Bar{X: float64(i)*slot + (slot-bw)/2, Y: h - bh, W: bw, H: bh, Class: strings.ToLower(c.Status),
			Title: fmt.Sprintf("#%d %s · %d ms", c.ID, strings.ToLower(c.Status), c.DurationMs)}
	}
	return out
}
