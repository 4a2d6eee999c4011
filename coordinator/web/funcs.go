package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// funcs are the templates' formatting helpers.
var funcs = template.FuncMap{
	"rate":      fmtRate,
	"bytes":     fmtBytes,
	"dur":       fmtDur,
	"ms":        func(ms int64) string { return fmtDur(time.Duration(ms) * time.Millisecond) },
	"pct":       func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"pctw":      func(f float64) string { return fmt.Sprintf("%.1f", min(max(f, 0), 1)*100) },
	"count":     fmtCount,
	"lower":     strings.ToLower,
	"clock":     func(t time.Time) string { return t.Local().Format("15:04:05") },
	"unixms":    func(ms int64) string { return time.UnixMilli(ms).Local().Format("15:04:05.000") },
	"spark":     Sparkline,
	"bars":      Bars,
	"node":      nodeOf,
	"last":      func(cps []Checkpoint) []Checkpoint { return lastN(cps, 12) },
	"completed": lastCompleted,
	"maxdur":    maxDuration,
	"add":       func(a, b float64) float64 { return a + b },
	"sub":       func(a, b float64) float64 { return a - b },
	"trunc":     truncate,
	"sumslots":  sumSlots,
	"running":   running,
	"iter":      func(n int) []struct{} { return make([]struct{}, n) },
	"subi":      func(a, b int) int { return a - b },
	"divf":      func(a, b int) float64 { return float64(a) / float64(b) },
	"nsms":      func(ns int64) int64 { return ns / 1e6 },
	"deref":     func(p *int64) int64 { return *p },
	"half":      func(f float64) float64 { return f / 2 },
	"barw":      func(f float64, w float64) float64 { return min(max(f, 0), 1) * w },
}

func fmtRate(f float64) string { return fmtCount(f) + "/s" }

// fmtCount writes a count with a k/M/G suffix and three significant digits.
func fmtCount(v any) string {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case int64:
		f = float64(n)
	case int32:
		f = float64(n)
	case int:
		f = float64(n)
	}
	switch {
	case f >= 1e9:
		return fmt.Sprintf("%.3gG", f/1e9)
	case f >= 1e6:
		return fmt.Sprintf("%.3gM", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.3gk", f/1e3)
	case f == float64(int64(f)):
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%.1f", f)
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func nodeOf(g Graph, id int32) Node {
	for _, n := range g.Nodes {
		if n.VertexID == id {
			return n
		}
	}
	return Node{}
}

func lastN(cps []Checkpoint, n int) []Checkpoint {
	out := make([]Checkpoint, 0, n)
	for i := len(cps) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, cps[i])
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sumSlots(ws []WorkerRow) [2]int {
	var t [2]int
	for _, w := range ws {
		t[0] += w.Used
		t[1] += w.Slots
	}
	return t
}

func running(js []JobRow) int {
	n := 0
	for _, j := range js {
		if j.State == "RUNNING" {
			n++
		}
	}
	return n
}

// lastCompleted is the newest completed checkpoint, or nil, for {{with}}.
func lastCompleted(cps []Checkpoint) any {
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Status == "COMPLETED" {
			return cps[i]
		}
	}
	return nil
}

// maxDuration is the longest of the newest n checkpoints, the bar chart's
// scale.
func maxDuration(cps []Checkpoint, n int) int64 {
	if len(cps) > n {
		cps = cps[len(cps)-n:]
	}
	var m int64
	for _, c := range cps {
		m = max(m, c.DurationMs)
	}
	return m
}
