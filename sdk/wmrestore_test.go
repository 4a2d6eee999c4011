package sdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/state"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// restoreEnv is the env of operator uid, the head of its chain, in subtask
// i of q, restored from m as a task would restore it.
func restoreEnv(t *testing.T, m *weirv1.CheckpointManifest, uid string, i, q, maxP int) *runtime.Env {
	t.Helper()
	ts, err := runtime.Restore(m, uid, i, q, maxP)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.NewEnv(runtime.EnvOptions{Subtask: i, Parallelism: q, MaxParallelism: maxP, State: state.NewMemory(),
		Restored: ts, UID: uid})
}

// timerManifest is a checkpoint of a keyed vertex at parallelism p whose
// operator uid, with timers, had watermark wms[j] in subtask j; the items
// are what that subtask's timer service saves, or with old, the bare
// varints earlier versions saved.
func timerManifest(t *testing.T, uid string, maxP int, wms []int64, old bool) *weirv1.CheckpointManifest {
	t.Helper()
	p := len(wms)
	m := &weirv1.CheckpointManifest{CheckpointId: 1, MaxParallelism: int32(maxP)}
	for j, wm := range wms {
		start, end := keygroup.Range(j, p, maxP)
		item := binary.AppendVarint(nil, wm)
		if !old {
			env := runtime.NewEnv(runtime.EnvOptions{Subtask: j, Parallelism: p, MaxParallelism: maxP, State: state.NewMemory(), UID: uid})
			s, err := newTimerService(env, newStateStore(env))
			if err != nil {
				t.Fatal(err)
			}
			s.wm = wm
			items, err := s.snapshot(1)
			if err != nil {
				t.Fatal(err)
			}
			item = items[0]
		}
		m.Subtasks = append(m.Subtasks, &weirv1.SubtaskSnapshot{Subtask: int32(j), Parallelism: int32(p),
			KeyGroupStart: int32(start), KeyGroupEnd: int32(end), Uids: []string{uid},
			Operators: []*weirv1.OperatorState{{Uid: uid, Data: runtime.EncodeItems([][]byte{item})}}})
	}
	return m
}

// TestTimerWatermarkRestore: every subtask of an operator with timers
// resumes at the minimum watermark of the old subtasks whose key groups it
// took over, at the same parallelism and rescaled up or down, never at
// "none"; old checkpoints (a bare varint per subtask) resume at the
// subtask's own at the same parallelism and at the minimum over all when
// rescaled.
func TestTimerWatermarkRestore(t *testing.T) {
	const maxP = 32
	for _, tc := range []struct {
		wms []int64
		q   int
		old bool
	}{
		{wms: []int64{5_000, 3_000}, q: 2},
		{wms: []int64{5_000, 3_000}, q: 3},
		{wms: []int64{5_000, 3_000}, q: 4},
		{wms: []int64{5_000, 3_000, 9_000, 7_000}, q: 2},
		{wms: []int64{5_000, 3_000, 9_000, 7_000}, q: 3},
		{wms: []int64{5_000, 3_000}, q: 2, old: true},
		{wms: []int64{5_000, 3_000}, q: 3, old: true},
		{wms: []int64{5_000, 3_000, 9_000, 7_000}, q: 2, old: true},
	} {
		name := fmt.Sprintf("%d-to-%d", len(tc.wms), tc.q)
		if tc.old {
			name += "-old-format"
		}
		t.Run(name, func(t *testing.T) {
			m := timerManifest(t, "win", maxP, tc.wms, tc.old)
			p := len(tc.wms)
			for i := range tc.q {
				want := int64(math.MaxInt64)
				start, end := keygroup.Range(i, tc.q, maxP)
				for j, wm := range tc.wms {
					s, e := keygroup.Range(j, p, maxP)
					covers := s < end && start < e
					if tc.old {
						covers = p != tc.q || i == j
					}
					if covers {
						want = min(want, wm)
					}
				}
				env := restoreEnv(t, m, "win", i, tc.q, maxP)
				s, err := newTimerService(env, newStateStore(env))
				if err != nil {
					t.Fatal(err)
				}
				if got := (Timers{s}).Watermark(); got != want {
					t.Errorf("subtask %d of %d resumes at watermark %d, want %d", i, tc.q, got, want)
				}
				// What it saves next covers its own key groups.
				items, _ := s.snapshot(2)
				w, err := decodeSavedWatermark(items[0])
				if err != nil || !w.ranged || w.start != start || w.end != end || w.wm != want {
					t.Errorf("subtask %d saves %+v (%v), want [%d, %d) at %d", i, w, err, start, end, want)
				}
			}
		})
	}
}

func TestSavedWatermarkFormat(t *testing.T) {
	for _, w := range []savedWatermark{
		{wm: 0}, {wm: -1}, {wm: 1}, {wm: math.MinInt64}, {wm: math.MaxInt64},
		{wm: 1_700_000_000_000, start: 0, end: 128, ranged: true},
		{wm: math.MinInt64, start: 96, end: 128, ranged: true},
		{wm: -5, start: 1, end: 2, ranged: true},
	} {
		got, err := decodeSavedWatermark(w.encode())
		if err != nil || got != w {
			t.Errorf("%+v encodes as %x, which decodes as %+v (%v)", w, w.encode(), got, err)
		}
	}
	for _, b := range [][]byte{nil, {}, {0x80}, {savedWMFormat, 0, 0, 0}, {savedWMFormat, 3, 1, 0}, {2, 0, 1, 0}, {savedWMFormat, 0, 1, 0, 0}} {
		if w, err := decodeSavedWatermark(b); !errors.Is(err, errCorruptWatermark) {
			t.Errorf("%x decodes as %+v, %v; want an error", b, w, err)
		}
	}
}

// TestSplitWatermarksRestore: a restored split holds the reader's
// watermark at what it had, not at "none", until its records move it on;
// Split reads what to save.
func TestSplitWatermarksRestore(t *testing.T) {
	ws := BoundedOutOfOrder(time.Second).WithIdleness(time.Minute)
	now := time.Unix(1000, 0)
	w := NewSplitWatermarks(ws)
	w.Restore("a", 9_000, now)
	w.Restore("b", 4_000, now)
	if ts, idle := w.Watermark(now); idle || ts != 4_000 {
		t.Fatalf("restored watermark %d (idle %v), want 4000", ts, idle)
	}
	// A record older than the restored watermark does not move b back.
	w.Observe("b", 2_000, now)
	if ts, _ := w.Split("b"); ts != 4_000 {
		t.Fatalf("b at %d after an old record, want 4000", ts)
	}
	w.Observe("b", 8_000, now)
	if ts, _ := w.Watermark(now); ts != 8_000-1_000-1 {
		t.Fatalf("watermark %d, want 6999", ts)
	}
	if ts, ok := w.Split("a"); !ok || ts != 9_000 {
		t.Fatalf("a saves %d (%v), want 9000", ts, ok)
	}
	if _, ok := w.Split("c"); ok {
		t.Fatal("an unknown split has a watermark")
	}
	// A restored split with no record for the idleness stops holding it.
	w.Observe("b", 20_000, now.Add(2*time.Minute))
	if ts, idle := w.Watermark(now.Add(2 * time.Minute)); idle || ts != 20_000-1_000-1 {
		t.Fatalf("watermark %d (idle %v) with a quiet a, want 18999", ts, idle)
	}
}

// wmEvent is a keyed record with an event time.
type wmEvent struct {
	Key string
	TS  int64
}

// phasedSource emits phase 1, then waits (to be killed); restored, it
// checks that phase 1 is in the checkpoint, waits for release and emits
// phase 2. Its position is checkpointed.
type phasedSource struct {
	phase1, phase2 []wmEvent
	next           int64
	restored       bool
	release        *atomic.Bool
}

func (s *phasedSource) Poll(emit func(wmEvent)) (Poll, error) {
	if !s.restored {
		for ; s.next < int64(len(s.phase1)); s.next++ {
			emit(s.phase1[s.next])
		}
		return Poll{Wait: time.Millisecond}, nil
	}
	if s.next != int64(len(s.phase1)) {
		return Poll{}, fmt.Errorf("restored at %d: the checkpoint does not hold all %d records of phase 1", s.next, len(s.phase1))
	}
	if !s.release.Load() {
		return Poll{Wait: time.Millisecond}, nil
	}
	for _, e := range s.phase2 {
		emit(e)
	}
	return Poll{Done: true}, nil
}

func (s *phasedSource) SnapshotSplits() ([][]byte, error) {
	return [][]byte{binary.AppendVarint(nil, s.next)}, nil
}

func (s *phasedSource) Close() error { return nil }

// TestRescaleKeepsWatermark: a job with tumbling windows is checkpointed
// after its watermark passed 100 s and restored at the same parallelism,
// rescaled up (2 to 3, 2 to 4) and down (4 to 2). Every subtask reports
// the restored watermark before any new record arrives, and records for
// a window that closed before the checkpoint go to Late() in every new
// subtask, not into new windows.
func TestRescaleKeepsWatermark(t *testing.T) {
	const keys = 40
	var phase1, late, onTime []wmEvent
	for i := range keys {
		phase1 = append(phase1, wmEvent{fmt.Sprintf("k%d", i), 60_000 + int64(i)*1_000})
		late = append(late, wmEvent{fmt.Sprintf("k%d", i), 50_000})
		onTime = append(onTime, wmEvent{fmt.Sprintf("k%d", i), 200_000})
	}
	phase1 = append(phase1, wmEvent{"k0", 100_000})
	const restoredWM = 100_000 - 1 // the bound is 0
	for _, tc := range []struct{ from, to int }{{2, 2}, {2, 3}, {2, 4}, {4, 2}} {
		t.Run(fmt.Sprintf("%d-to-%d", tc.from, tc.to), func(t *testing.T) {
			var release atomic.Bool
			var results bag[Pane[string, int64]]
			var lateOut bag[wmEvent]
			attempt := 0
			build := func(p *Pipeline) {
				attempt++
				par := tc.from
				if attempt > 1 {
					par = tc.to
				}
				p.SetMaxParallelism(32)
				src := NewSource(p, "Phased", func(ti TaskInfo) (SourceReader[wmEvent], error) {
					s := &phasedSource{phase1: phase1, phase2: append(slices.Clone(late), onTime...), release: &release}
					if items, ok := ti.Restored(); ok {
						s.restored = true
						for _, it := range items {
							s.next, _ = binary.Varint(it)
						}
					}
					return s, nil
				}, WithUID("src"), WithParallelism(1))
				ts := AssignTimestamps(src, func(e wmEvent) int64 { return e.TS }, BoundedOutOfOrder(0),
					WithUID("ts"), WithParallelism(1))
				w := WindowAggregate(Window(KeyBy(ts, func(e wmEvent) string { return e.Key }), Tumbling(time.Second)),
					Count[wmEvent](), WithUID("win"), WithParallelism(par))
				results.sinkTo(w.Results(), WithUID("results"), WithParallelism(par))
				lateOut.sinkTo(w.Late(), WithUID("late"), WithParallelism(par))
			}
			c := newCkCluster(t.TempDir(), 20*time.Millisecond, build)
			var wg sync.WaitGroup
			var reportErr error
			c.Started = func(attempt int64, d *runtime.Deployment) {
				if attempt == 1 {
					return
				}
				wg.Go(func() {
					defer release.Store(true)
					// The source, the windows and the two sinks.
					reportErr = waitRestoredWatermarks(d, 1+3*tc.to, restoredWM)
				})
			}
			// Killed after two checkpoints: the second holds phase 1 and
			// its watermark (the first may come before the first poll).
			if finished, err := c.RunAttempt(t.Context(), 2); err != nil || finished {
				t.Fatalf("first attempt: finished %v, err %v", finished, err)
			}
			if finished, err := c.RunAttempt(t.Context(), 0); err != nil || !finished {
				t.Fatalf("restored attempt: finished %v, err %v", finished, err)
			}
			wg.Wait()
			if reportErr != nil {
				t.Error(reportErr)
			}
			gotLate := lateOut.items()
			slices.SortFunc(gotLate, func(a, b wmEvent) int { return cmpStr(a.Key, b.Key) })
			wantLate := slices.Clone(late)
			slices.SortFunc(wantLate, func(a, b wmEvent) int { return cmpStr(a.Key, b.Key) })
			if !slices.Equal(gotLate, wantLate) {
				t.Errorf("late output %v, want the %d records at 50 s", gotLate, len(late))
			}
			onTimeKeys := map[string]bool{}
			for _, p := range results.items() {
				if p.Start == 50_000 {
					t.Errorf("a too-late record opened window %+v", p)
				}
				if p.Start == 200_000 {
					onTimeKeys[p.Key] = true
				}
			}
			if len(onTimeKeys) != keys {
				t.Errorf("%d keys had a window at 200 s, want %d", len(onTimeKeys), keys)
			}
		})
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// waitRestoredWatermarks waits until each of the n subtasks of the
// restored job reports want as its watermark, in its status and in its
// metrics report, while the source holds back every new record.
func waitRestoredWatermarks(d *runtime.Deployment, n int, want int64) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := time.Now()
		st := d.Watermarks(now)
		ok := len(st) == n
		for _, s := range st {
			ok = ok && s.Known && s.Watermark == want
		}
		pm := d.ProcessMetrics(now)
		for _, tm := range pm.Tasks {
			ok = ok && tm.WatermarkUnixMs != nil && *tm.WatermarkUnixMs == want
		}
		if ok {
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("before any new record, the restored subtasks report %+v, want watermark %d in each of %d", st, want, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// splitSource reads named splits, one record each, keeping per-split
// watermarks; restored, it emits nothing until released. Its items are a
// split's name and watermark.
type splitSource struct {
	wm      *SplitWatermarks
	fresh   []wmEvent // to emit, one per split
	release *atomic.Bool
}

func (s *splitSource) Poll(emit func(wmEvent)) (Poll, error) {
	for _, e := range s.fresh {
		emit(e)
		s.wm.Observe(e.Key, e.TS, time.Now())
	}
	s.fresh = nil
	if s.release != nil && s.release.Load() {
		return Poll{Done: true}, nil
	}
	return Poll{Wait: time.Millisecond}, nil
}

func (s *splitSource) Watermark() (int64, bool) { return s.wm.Watermark(time.Now()) }

func (s *splitSource) SnapshotSplits() ([][]byte, error) {
	var items [][]byte
	for name := range s.wm.splits {
		wm, _ := s.wm.Split(name)
		items = append(items, binary.AppendVarint([]byte(name), wm))
	}
	return items, nil
}

func (s *splitSource) Close() error { return nil }

// TestSplitWatermarksMoveWithSplits: a source with per-split watermarks
// restored at another parallelism resumes, in each subtask, at the minimum
// over the watermarks of the splits it took over, and reports it (and
// sends it downstream) before reading anything.
func TestSplitWatermarksMoveWithSplits(t *testing.T) {
	splits := map[string]int64{"a": 10_000, "b": 20_000, "c": 30_000}
	names := []string{"a", "b", "c"}
	ws := BoundedOutOfOrder(time.Second)
	var release atomic.Bool
	var mu sync.Mutex
	want := map[int]int64{} // restored source subtask: its splits' minimum
	attempt := 0
	build := func(p *Pipeline) {
		attempt++
		par := 2
		if attempt > 1 {
			par = 3
		}
		src := NewSource(p, "Splits", func(ti TaskInfo) (SourceReader[wmEvent], error) {
			s := &splitSource{wm: NewSplitWatermarks(ws)}
			items, ok := ti.Restored()
			if !ok {
				for k, n := range names {
					if k%ti.Parallelism() == ti.Subtask() {
						s.fresh = append(s.fresh, wmEvent{n, splits[n]})
						s.wm.Add(n, time.Now())
					}
				}
				return s, nil
			}
			s.release = &release
			lo := int64(math.MaxInt64)
			for _, it := range items {
				name := string(it[:1])
				wm, _ := binary.Varint(it[1:])
				if wm != splits[name]-1_001 {
					return nil, fmt.Errorf("split %s restored at %d, want %d", name, wm, splits[name]-1_001)
				}
				s.wm.Restore(name, wm, time.Now())
				lo = min(lo, wm)
			}
			if len(items) > 0 {
				mu.Lock()
				want[ti.Subtask()] = lo
				mu.Unlock()
			}
			return s, nil
		}, WithUID("splits"), WithParallelism(par))
		var out bag[wmEvent]
		out.sinkTo(WithTimestamps(src, func(e wmEvent) int64 { return e.TS }), WithUID("out"), WithParallelism(1))
	}
	c := newCkCluster(t.TempDir(), 20*time.Millisecond, build)
	var wg sync.WaitGroup
	var reportErr error
	c.Started = func(attempt int64, d *runtime.Deployment) {
		if attempt == 1 {
			return
		}
		wg.Go(func() {
			defer release.Store(true)
			deadline := time.Now().Add(10 * time.Second)
			for {
				st := d.Watermarks(time.Now())
				mu.Lock()
				ok := len(st) == 3+1 && len(want) == 3
				for ref, s := range st {
					w := splits["a"] - 1_001 // the sink: the minimum
					if ref.Vertex == 0 {
						w = want[ref.Subtask]
					}
					ok = ok && s.Known && s.Watermark == w
				}
				mu.Unlock()
				if ok {
					return
				}
				if time.Now().After(deadline) {
					reportErr = fmt.Errorf("restored subtasks report %+v before reading; sources want %v", st, want)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	if finished, err := c.RunAttempt(t.Context(), 2); err != nil || finished {
		t.Fatalf("first attempt: finished %v, err %v", finished, err)
	}
	if finished, err := c.RunAttempt(t.Context(), 0); err != nil || !finished {
		t.Fatalf("restored attempt: finished %v, err %v", finished, err)
	}
	wg.Wait()
	if reportErr != nil {
		t.Fatal(reportErr)
	}
}

// FuzzDecodeRestoredItems covers the decoders of the operator-state items a
// restore reads besides keyed state: a saved watermark and a generator's
// split. What decodes encodes back to the same bytes, so nothing is read
// that a checkpoint did not say; anything else is refused with an error.
func FuzzDecodeRestoredItems(f *testing.F) {
	f.Add(savedWatermark{wm: -5}.encode())
	f.Add(savedWatermark{wm: 1 << 40, start: 3, end: 64, ranged: true}.encode())
	f.Add(genSplit{next: 7, step: 2}.encode())
	f.Add([]byte{savedWMFormat, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, err := decodeSavedWatermark(b); err == nil {
			if !bytes.Equal(w.encode(), b) {
				t.Fatalf("saved watermark %+v does not encode back to %x", w, b)
			}
			if w.ranged && (w.start >= w.end || w.end > keygroup.MaxLimit) {
				t.Fatalf("accepted the key-group range [%d, %d)", w.start, w.end)
			}
		}
		if sp, err := decodeGenSplit(b); err == nil {
			if sp.step <= 0 || !bytes.Equal(sp.encode(), b) {
				t.Fatalf("split %+v accepted from %x", sp, b)
			}
		}
	})
}
