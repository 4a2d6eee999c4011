// Command windowdemo shows early, on-time and late firings with retractions
// on a tiny scripted stream of parking-bay readings.
//
//	windowdemo
//
// The bay's readings are counted in 10 s tumbling windows that fire early
// after every 2 readings, on time when the watermark passes the window's
// end, and late for readings up to 5 s behind it. Accumulation is
// retracting: every pane after the first is preceded by the withdrawal of
// the previous one, so a downstream sum of (value, -value for retractions)
// is always the current count. Readings later than that land in the late
// side output. The source sets its watermark after every reading (the
// largest time seen minus 1 ms), so the run is deterministic; the panes are
// printed per window at the end, the dropped readings after them.
package main

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/weir-run/weir/sdk"
)

func main() { sdk.Main(build) }

// reading is one sensor event of a bay at TS (unix ms).
type reading struct {
	Bay string
	TS  int64
}

// script is the input, in arrival order.
var script = []int64{
	1_000, 2_000, // [0s,10s): EARLY after 2
	3_000,  // one more, no firing yet
	12_000, // watermark 11.999s: [0s,10s) fires ON_TIME with 3
	4_000,  // late but within 5s: a LATE pane of 4
	13_000, // [10s,20s): EARLY after 2 (12s, 13s)
	21_000, // watermark 20.999s: [10s,20s) ON_TIME; [0s,10s) is dropped
	5_000,  // too late for [0s,10s): the late side output
	22_000, // [20s,30s): EARLY after 2 (21s, 22s); ON_TIME at the end
}

func build(p *sdk.Pipeline, _ []string) error {
	readings := sdk.WithTimestamps(sdk.NewSource(p, "Script", func(sdk.TaskInfo) (sdk.SourceReader[reading], error) {
		return &scriptReader{wm: -1 << 63}, nil
	}, sdk.WithParallelism(1), sdk.WithUID("script")), func(r reading) int64 { return r.TS })
	counts := sdk.WindowAggregate(
		sdk.Window(sdk.KeyBy(readings, func(r reading) string { return r.Bay }), sdk.Tumbling(10*time.Second),
			sdk.WithTrigger(sdk.AtWatermark().EarlyEvery(2)), sdk.AllowedLateness(5*time.Second),
			sdk.WithAccumulation(sdk.Retracting)),
		sdk.Count[reading](), sdk.WithUID("counts"), sdk.WithParallelism(1))
	var out printer
	sdk.NewSink(counts.Results(), "Panes", func(sdk.TaskInfo) (sdk.SinkWriter[sdk.Pane[string, int64]], error) {
		return &paneWriter{out: &out}, nil
	}, sdk.WithUID("panes"), sdk.WithParallelism(1))
	sdk.NewSink(counts.Late(), "Dropped", func(sdk.TaskInfo) (sdk.SinkWriter[reading], error) {
		return &lateWriter{out: &out}, nil
	}, sdk.WithUID("dropped"), sdk.WithParallelism(1))
	return nil
}

// scriptReader emits one reading per poll and watermarks it: a
// sdk.WatermarkSource, so each reading's lateness does not depend on timing.
type scriptReader struct {
	next int
	wm   int64
}

func (s *scriptReader) Poll(emit func(reading)) (sdk.Poll, error) {
	if s.next == len(script) {
		return sdk.Poll{Done: true}, nil
	}
	ts := script[s.next]
	s.next++
	emit(reading{Bay: "b7", TS: ts})
	s.wm = max(s.wm, ts-1)
	return sdk.Poll{}, nil
}

func (s *scriptReader) Watermark() (int64, bool) { return s.wm, false }
func (s *scriptReader) Close() error             { return nil }

// printer prints the panes per window, in emission order, then the
// dropped readings, once both sinks (one subtask each) finished.
type printer struct {
	mu       sync.Mutex
	panes    []sdk.Pane[string, int64]
	dropped  []reading
	finished int
}

func (p *printer) finish() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished++; p.finished < 2 {
		return nil
	}
	// Stable: a window's panes keep their order.
	slices.SortStableFunc(p.panes, func(a, b sdk.Pane[string, int64]) int { return int(a.Start - b.Start) })
	for _, pn := range p.panes {
		kind := "pane"
		if pn.Retraction {
			kind = "retract"
		}
		fmt.Printf("%s [%ds,%ds) %-7s %-8v #%d count=%d\n", pn.Key, pn.Start/1000, pn.End/1000, kind, pn.Timing, pn.Index, pn.Value)
	}
	for _, r := range p.dropped {
		fmt.Printf("%s dropped: reading at %ds\n", r.Bay, r.TS/1000)
	}
	return nil
}

type paneWriter struct{ out *printer }

func (w *paneWriter) Write(pn sdk.Pane[string, int64]) error {
	w.out.mu.Lock()
	defer w.out.mu.Unlock()
	w.out.panes = append(w.out.panes, pn)
	return nil
}
func (w *paneWriter) Finish() error { return w.out.finish() }
func (w *paneWriter) Close() error  { return nil }

type lateWriter struct{ out *printer }

func (w *lateWriter) Write(r reading) error {
	w.out.mu.Lock()
	defer w.out.mu.Unlock()
	w.out.dropped = append(w.out.dropped, r)
	return nil
}
func (w *lateWriter) Finish() error { return w.out.finish() }
func (w *lateWriter) Close() error  { return nil }
