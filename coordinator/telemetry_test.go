package coordinator

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobmaster"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func testJob() *jobDriver {
	g := &weirv1.JobGraph{Name: "g", MaxParallelism: 8, Vertices: []*weirv1.Vertex{
		{Id: 0, Name: "Source: gen", Parallelism: 2, IsSource: true, Operators: []*weirv1.Operator{{Uid: "gen"}}},
		{Id: 1, Name: "Sink", Parallelism: 2, Operators: []*weirv1.Operator{{Uid: "sink"}}},
	}, Edges: []*weirv1.Edge{{Source: 0, Target: 1, Partitioning: weirv1.Partitioning_PARTITIONING_HASH}}}
	rec := &weirv1.JobStatus{Id: "j1", Spec: &weirv1.JobSpec{Graph: g, Parallelism: 2}}
	return newJob(rec, jobmaster.New(nil, time.Now()))
}

// A checkpoint is one span with a child per acknowledging task, itself
// split into align, sync and upload as the ack reports them.
func TestCheckpointSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := &Coordinator{}
	var err error
	if c.inst, err = newInstruments(c, mp, tp); err != nil {
		t.Fatal(err)
	}
	s := &leaderState{c: c}
	j := testJob()
	t0 := time.Unix(1000, 0)
	s.checkpointTriggered(j, checkpoint.Trigger{ID: 3, Timestamp: t0})
	ackAt := t0.Add(time.Second)
	s.checkpointAcked(j, &weirv1.CheckpointAck{JobId: "j1", CheckpointId: 3, Snapshot: &weirv1.SubtaskSnapshot{VertexId: 1, Subtask: 1},
		AlignmentMs: 5, SyncMicros: 2000, AsyncMs: 10}, ackAt)
	s.checkpointFinished(j, 3, "")

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		spans[sp.Name()] = sp
	}
	if len(spans) != 5 {
		t.Fatalf("ended spans %v, want checkpoint, checkpoint task, align, sync, upload", keys(spans))
	}
	root, task := spans["checkpoint"], spans["checkpoint task"]
	if task.Parent().SpanID() != root.SpanContext().SpanID() || !root.StartTime().Equal(t0) {
		t.Fatalf("task span's parent %v, root %v starting %v", task.Parent().SpanID(), root.SpanContext().SpanID(), root.StartTime())
	}
	start := ackAt.Add(-17 * time.Millisecond)
	for _, want := range []struct {
		name       string
		start, end time.Time
	}{
		{"align", start, start.Add(5 * time.Millisecond)},
		{"sync", start.Add(5 * time.Millisecond), start.Add(7 * time.Millisecond)},
		{"upload", start.Add(7 * time.Millisecond), ackAt},
	} {
		sp := spans[want.name]
		if sp.Parent().SpanID() != task.SpanContext().SpanID() || !sp.StartTime().Equal(want.start) || !sp.EndTime().Equal(want.end) {
			t.Errorf("%s span %v..%v, want %v..%v under the task", want.name, sp.StartTime(), sp.EndTime(), want.start, want.end)
		}
	}
	if len(j.checkpointTraces) != 0 {
		t.Errorf("finished checkpoint still traced: %v", j.checkpointTraces)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "weir.checkpoint.task.duration" {
				op, _ := h.DataPoints[0].Attributes.Value("operator")
				found = h.DataPoints[0].Count == 1 && op.AsString() == "Sink"
			}
		}
	}
	if !found {
		t.Error("no task duration recorded for operator Sink")
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// Rates come from a subtask's last two reports; counters survive restarts.
func TestJobMetricsRates(t *testing.T) {
	m := newJobMetrics()
	t0 := time.Unix(100, 0)
	wm := int64(5000)
	report := func(at time.Time, in, out, elapsed, idle, bp int64) {
		m.onReport("w1", &weirv1.ProcessMetrics{Tasks: []*weirv1.TaskMetrics{{VertexId: 1, Subtask: 0, RecordsIn: in, RecordsOut: out,
			ElapsedNs: elapsed, IdleNs: idle, BackpressuredNs: bp, WatermarkUnixMs: &wm}}}, at)
	}
	report(t0, 100, 50, 1e9, 0, 0)
	report(t0.Add(2*time.Second), 300, 250, 3e9, 1e9, 5e8)
	r := m.rates(1)
	if r.inRate != 100 || r.outRate != 100 || r.busy != 0.25 || r.backpressured != 0.25 {
		t.Fatalf("rates = %+v", r)
	}
	if wm, ok := m.watermark(1, 1, nil); !ok || wm != 5000 {
		t.Fatalf("watermark = %d, %v; want 5000", wm, ok)
	}
	m.newAttempt()
	report(t0.Add(3*time.Second), 7, 0, 1e9, 0, 0)
	if in, out := m.records(1); in != 307 || out != 250 {
		t.Fatalf("records after a restart = %d, %d; want 307, 250", in, out)
	}
}

// A vertex's watermark is the minimum over all its subtasks, and unknown
// while any of them has none: not the minimum over those that reported.
// A finished subtask counts as the final watermark, and a vertex whose
// subtasks all ended reports that.
func TestVertexWatermark(t *testing.T) {
	m := newJobMetrics()
	report := func(subtask int32, wm *int64) {
		m.onReport("w1", &weirv1.ProcessMetrics{Tasks: []*weirv1.TaskMetrics{{VertexId: 1, Subtask: subtask, WatermarkUnixMs: wm}}}, time.Now())
	}
	at := func(v int64) *int64 { return &v }
	none := func(int32) bool { return false }
	check := func(what string, finished func(int32) bool, wantWM int64, wantOK bool) {
		t.Helper()
		if wm, ok := m.watermark(1, 3, finished); ok != wantOK || (ok && wm != wantWM) {
			t.Errorf("%s: watermark %d, known %v; want %d, %v", what, wm, ok, wantWM, wantOK)
		}
	}
	check("no reports", none, 0, false)
	report(0, at(9_000))
	report(1, at(7_000))
	check("subtask 2 never reported", none, 0, false)
	report(2, nil)
	check("subtask 2 has no watermark", none, 0, false)
	report(2, at(8_000))
	check("all three", none, 7_000, true)
	report(1, at(watermarkEnded))
	check("subtask 1 ended", none, 8_000, true)
	report(2, nil)
	check("subtask 2 finished without a final report", func(i int32) bool { return i == 2 }, 9_000, true)
	report(0, at(watermarkEnded))
	check("every input ended", func(i int32) bool { return i == 2 }, watermarkEnded, true)
}
