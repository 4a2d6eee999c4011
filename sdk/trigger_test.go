package sdk

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestTriggerStateMachine runs testdata/trigger/*.txt. Commands:
//
//	spec [early-every=N] [early-after=D] [lateness=MS] [mode=accumulating|discarding|retracting]
//	window start=S end=E        (resets the window's trigger state)
//	record wm=W [now=MS]
//	event-time ts=T
//	proc-time now=MS wm=W
//
// Each event prints the action and the trigger state after it; a firing
// counts as an emitted pane.
func TestTriggerStateMachine(t *testing.T) {
	datadriven.Walk(t, "testdata/trigger", func(t *testing.T, path string) {
		var spec triggerSpec
		var w TimeWindow
		var st trigState
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var a action
			switch d.Cmd {
			case "spec":
				spec = triggerSpec{}
				for _, arg := range d.CmdArgs {
					switch arg.Key {
					case "early-every":
						var n int
						arg.Scan(t, 0, &n)
						spec.Trigger = spec.EarlyEvery(n)
					case "early-after":
						dur, err := time.ParseDuration(arg.Vals[0])
						if err != nil {
							d.Fatalf(t, "%v", err)
						}
						spec.Trigger = spec.EarlyAfter(dur)
					case "lateness":
						arg.Scan(t, 0, &spec.lateness)
					case "mode":
						spec.mode = map[string]Accumulation{"accumulating": Accumulating, "discarding": Discarding, "retracting": Retracting}[arg.Vals[0]]
					}
				}
				return fmt.Sprintf("stateful=%v\n", spec.stateful())
			case "window":
				d.ScanArgs(t, "start", &w.Start)
				d.ScanArgs(t, "end", &w.End)
				st = trigState{}
				return fmt.Sprintf("cleanup at %d\n", spec.cleanupTime(w))
			case "record":
				var wm, now int64
				d.ScanArgs(t, "wm", &wm)
				d.MaybeScanArgs(t, "now", &now)
				a = spec.record(&st, w, wm, now)
			case "event-time":
				var ts int64
				d.ScanArgs(t, "ts", &ts)
				a = spec.eventTime(&st, w, ts)
			case "proc-time":
				var now, wm int64
				d.ScanArgs(t, "now", &now)
				d.ScanArgs(t, "wm", &wm)
				a = spec.procTime(&st, w, now, wm)
			default:
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			var parts []string
			if a.fire {
				parts = append(parts, "fire "+a.timing.String())
				st.fires++ // the operator counts the panes it emits
			}
			if a.procAt > 0 {
				parts = append(parts, fmt.Sprintf("proc-timer %d", a.procAt))
			}
			if a.cleanupSet {
				parts = append(parts, fmt.Sprintf("cleanup-timer %d", a.cleanupAt))
			}
			if a.cleanup {
				parts = append(parts, "cleanup")
			}
			if len(parts) == 0 {
				parts = []string{"-"}
			}
			return fmt.Sprintf("%s\nstate count=%d fires=%d proc-at=%d\n", strings.Join(parts, ", "), st.count, st.fires, st.procAt)
		})
	})
}

// FuzzDecodeTrigState: the trigger-state decoder never panics and reads
// back what encode wrote.
func FuzzDecodeTrigState(f *testing.F) {
	f.Add(trigState{count: 3, fires: 1, procAt: 99, prev: [][]byte{[]byte("x")}}.encode(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeTrigState(b)
		if err != nil {
			return
		}
		again, err := decodeTrigState(st.encode(nil))
		if err != nil || again.count != st.count || again.fires != st.fires || again.procAt != st.procAt || len(again.prev) != len(st.prev) {
			t.Fatalf("round trip: %+v -> %+v (%v)", st, again, err)
		}
	})
}

// FuzzDecodeWindows covers the session-set and namespace decoders.
func FuzzDecodeWindows(f *testing.F) {
	f.Add(encodeSessions(nil, []session{{TimeWindow{1, 5}, TimeWindow{2, 5}}, {TimeWindow{-10, 7}, TimeWindow{-10, 7}}}))
	f.Add(appendNS(nil, TimeWindow{3, 9}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ws, err := decodeSessions(b, nil); err == nil {
			again, err := decodeSessions(encodeSessions(nil, ws), nil)
			if err != nil || !slices.Equal(again, ws) {
				t.Fatalf("round trip: %v -> %v (%v)", ws, again, err)
			}
		}
		if w, err := decodeNS(b); err == nil {
			if string(appendNS(nil, w)) != string(b) {
				t.Fatalf("namespace %v does not encode back to %x", w, b)
			}
		}
		if d, ts, ns, err := decodeTimerSuffix(b); err == nil {
			if string(timerSuffix(nil, d, ts, ns)) != string(b) {
				t.Fatalf("timer %v %d %x does not encode back to %x", d, ts, ns, b)
			}
		}
	})
}
