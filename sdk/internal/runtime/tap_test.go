package runtime

import (
	"testing"
	"time"
)

func TestTapBudgetRefillsEachWindow(t *testing.T) {
	s := &tapState{rate: 100}
	t0 := time.Unix(10, 0)
	if s.allow(t0) != 10 {
		t.Fatal("a fresh tap has a tenth of its rate")
	}
	s.left = 0
	if s.allow(t0.Add(99*time.Millisecond)) != 0 || s.allow(t0.Add(101*time.Millisecond)) != 10 {
		t.Fatal("the budget refills after 100 ms, not before")
	}
	if slow := (&tapState{rate: 3}); slow.allow(t0) != 1 {
		t.Fatal("a slow tap still samples")
	}
}

func TestRenderTapFallsBackToText(t *testing.T) {
	if r := renderTap(struct {
		Key   string
		Value int64
	}{"k", 2}, SubtaskRef{1, 2}, time.Unix(0, 0)); r.Json != `{"Key":"k","Value":2}` || r.Subtask != 2 {
		t.Fatalf("struct: %+v", r)
	}
	if r := renderTap(make(chan int), SubtaskRef{}, time.Unix(0, 0)); r.Json != "" || r.Text == "" {
		t.Fatalf("channel: %+v", r)
	}
}
