package sdk

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPartialCodec: both kinds of what a combiner sends survive the
// exchange's encoding, keys longer than a one-byte length included.
func TestPartialCodec(t *testing.T) {
	c := partialCodec[string, mrec, mAgg]{k: CodecFor[string](), v: CodecFor[mrec](), a: CodecFor[mAgg]()}
	for _, p := range []mPartial{
		{Key: "a", Raw: true, V: mrec{Key: "a", TS: -5, V: 3, ID: 7}},
		{Key: "a", Pane: TimeWindow{-100, 200}, Acc: mAgg{S: 4, N: 2}},
		{Key: strings.Repeat("k", 300), Pane: TimeWindow{0, 1}, Acc: mAgg{S: 1, N: 1}},
		{Key: "", Pane: TimeWindow{5, 10}},
	} {
		b := c.Append([]byte("x"), p)
		got, err := c.Decode(b[1:])
		if err != nil {
			t.Fatalf("decode %+v: %v", p, err)
		}
		if got.Raw != p.Raw || !p.Raw && got.Key != p.Key || got.Pane != p.Pane || got.V != p.V || got.Acc != p.Acc {
			t.Errorf("round trip of %+v gave %+v", p, got)
		}
	}
	if _, err := c.Decode(nil); err == nil {
		t.Error("an empty record decoded")
	}
}

// quietSource: subtask 1 emits key b's records, 100 ms of event time apart,
// 20 s of event time at once and then one a poll; subtask 0 emits one
// record of key a and then nothing. Both end on release.
type quietSource struct {
	sub     int
	ts      int64
	sent    bool
	release *atomic.Bool
}

func (s *quietSource) Poll(emit func(event)) (Poll, error) {
	if s.release.Load() {
		return Poll{Done: true}, nil
	}
	if s.sub == 0 && !s.sent {
		emit(event{"a", 5_000})
		s.sent = true
	}
	for s.sub == 1 {
		emit(event{"b", s.ts})
		s.ts += 100
		if s.ts > 20_000 {
			break
		}
	}
	return Poll{Wait: time.Millisecond}, nil
}

func (s *quietSource) Close() error { return nil }

// TestCombinerIdleOutput: a combiner whose subtask turns idle sends what it
// holds first. The window operator's watermark then moves on with the other
// subtask alone, past the held record's window; had the partial come later
// (at the end of input) it would have come too late and key a's window
// would be missing.
func TestCombinerIdleOutput(t *testing.T) {
	var release atomic.Bool
	p := NewPipeline("idle", 2)
	src := NewSource(p, "Quiet", func(ti TaskInfo) (SourceReader[event], error) {
		return &quietSource{sub: ti.Subtask(), release: &release}, nil
	})
	ts := AssignTimestamps(src, eventTS, BoundedOutOfOrder(0).WithIdleness(20*time.Millisecond))
	w := WindowAggregate(Window(KeyBy(ts, eventKey), Tumbling(time.Second)), Count[event]())
	if w.results.n.inputs[0].from.Kind != "combine" {
		t.Fatal("the window has no combiner")
	}
	var out bag[Pane[string, int64]]
	out.sinkTo(w.Results())
	done := make(chan error, 1)
	go func() { done <- runPipeline(t.Context(), p) }()
	// Key b's last window fires once key a's subtask is idle.
	deadline := time.Now().Add(20 * time.Second)
	for !slices.ContainsFunc(out.items(), func(p Pane[string, int64]) bool { return p.Key == "b" && p.End == 20_000 }) {
		if time.Now().After(deadline) {
			t.Fatalf("key b's last window never fired: %v", out.items())
		}
		time.Sleep(5 * time.Millisecond)
	}
	release.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := Pane[string, int64]{Key: "a", Start: 5_000, End: 6_000, Timing: OnTime, Value: 1}
	if !slices.Contains(out.items(), want) {
		t.Errorf("no pane %+v in %v", want, out.items())
	}
}
