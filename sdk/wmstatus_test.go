package sdk

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/exchange"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// heldSource emits its events, then waits until release is set.
type heldSource struct {
	evs     []event
	release *atomic.Bool
}

func (h *heldSource) Poll(emit func(event)) (Poll, error) {
	for _, e := range h.evs {
		emit(e)
	}
	h.evs = nil
	if h.release.Load() {
		return Poll{Done: true}, nil
	}
	return Poll{Wait: time.Millisecond}, nil
}
func (h *heldSource) Close() error { return nil }

// TestWatermarkStatus: while a job runs, every subtask reports its input
// watermark and its lag behind the wall clock; a subtask whose input ended
// reports the final watermark with no lag, also in its metrics.
func TestWatermarkStatus(t *testing.T) {
	var release atomic.Bool
	p := NewPipeline("wm", 1)
	src := NewSource(p, "Held", func(TaskInfo) (SourceReader[event], error) {
		return &heldSource{evs: []event{{"a", 5_000}, {"b", 9_000}}, release: &release}, nil
	})
	w := WindowAggregate(Window(KeyBy(AssignTimestamps(src, eventTS, BoundedOutOfOrder(time.Second)), eventKey),
		Tumbling(time.Second)), Count[event]())
	var out bag[Pane[string, int64]]
	out.sinkTo(w.Results())
	pl, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	net := exchange.NewNetwork("wm", 1, exchange.Options{}, testLogger())
	defer net.Close()
	net.SetLocalAddr("local")
	d := &runtime.Deployment{JobID: "wm", Attempt: 1, Net: net, Self: "local", Logger: testLogger(),
		Route: func(runtime.SubtaskRef) string { return "local" }}
	var refs []runtime.SubtaskRef
	for _, v := range pl.Vertices {
		refs = append(refs, runtime.SubtaskRef{Vertex: v.ID})
	}
	done := make(chan error, 1)
	go func() { done <- pl.Run(t.Context(), d, refs, func(runtime.SubtaskRef, weirv1.TaskState, error) {}) }()

	// 9 s minus the bound, minus 1 ms; sent at a buffer flush.
	const want = 9_000 - 1_000 - 1
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := time.Now()
		st := d.Watermarks(now)
		all := len(st) == len(refs)
		for _, s := range st {
			all = all && s.Known && s.Watermark == want
		}
		if all {
			for ref, s := range st {
				if lag := now.Sub(time.UnixMilli(want)); s.Lag != lag {
					t.Errorf("subtask %v: lag %v, want %v", ref, s.Lag, lag)
				}
			}
			break
		}
		if now.After(deadline) {
			t.Fatalf("watermarks never reached %d: %+v", want, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	release.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for ref, s := range d.Watermarks(time.Now()) {
		if s != (runtime.WatermarkStatus{Watermark: MaxWatermark, Known: true}) {
			t.Errorf("subtask %v after the end: %+v", ref, s)
		}
	}
	// Reported as the final watermark, not as "none": the coordinator
	// takes a subtask without one as unknown.
	for _, tm := range d.ProcessMetrics(time.Now()).Tasks {
		if tm.WatermarkUnixMs == nil || *tm.WatermarkUnixMs != MaxWatermark {
			t.Errorf("subtask %d of vertex %d reports watermark %v after the end, want max int64", tm.Subtask, tm.VertexId, tm.WatermarkUnixMs)
		}
	}
}
