package watermark

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"pgregory.net/rapid"
)

// TestValve runs the scripts in testdata. Commands:
//
//	new channels=N [from=T]
//	wm ch=C ts=T
//	idle ch=C
//	end ch=C
//
// Each event prints the Status (or "-" for none) and the valve's state.
func TestValve(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var v *Valve
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var ch int
			if d.Cmd != "new" {
				d.ScanArgs(t, "ch", &ch)
			}
			var s Status
			switch d.Cmd {
			case "new":
				var n int
				d.ScanArgs(t, "channels", &n)
				v = New(n)
				if d.HasArg("from") {
					var from int64
					d.ScanArgs(t, "from", &from)
					v.StartAt(from)
				}
				return v.String() + "\n"
			case "wm":
				var ts int64
				d.ScanArgs(t, "ts", &ts)
				s = v.Watermark(ch, ts)
			case "idle":
				s = v.Idle(ch)
			case "end":
				s = v.End(ch)
			default:
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			var parts []string
			if s.Advanced {
				parts = append(parts, "advance "+fmtTS(s.Watermark))
			}
			if s.IdleChanged {
				parts = append(parts, fmt.Sprintf("idle=%v", s.Idle))
			}
			if len(parts) == 0 {
				parts = []string{"-"}
			}
			return strings.Join(parts, " ") + "\n" + v.String() + "\n"
		})
	})
}

// TestValveProperty checks, on random event sequences, that the output
// never goes back, and that it is the minimum over the channels that never
// went idle whenever none did.
func TestValveProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 4).Draw(t, "n")
		v := New(n)
		wms := make([]int64, n)
		for i := range wms {
			wms[i] = Min
		}
		everIdle := false
		ended := make([]bool, n)
		for range rapid.IntRange(0, 40).Draw(t, "steps") {
			ch := rapid.IntRange(0, n-1).Draw(t, "ch")
			before := v.Current()
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0:
				v.Idle(ch)
				everIdle = everIdle || !ended[ch]
			case 1:
				v.End(ch)
				ended[ch], wms[ch] = true, Max
			default:
				ts := rapid.Int64Range(0, 100).Draw(t, "ts")
				v.Watermark(ch, ts)
				if !ended[ch] {
					wms[ch] = max(wms[ch], ts)
				}
			}
			if v.Current() < before {
				t.Fatalf("watermark went back from %d to %d", before, v.Current())
			}
			if !everIdle {
				lo := int64(Max)
				for _, w := range wms {
					lo = min(lo, w)
				}
				if v.Current() != lo {
					t.Fatalf("watermark %d, want min %d (%v)", v.Current(), lo, v)
				}
			}
		}
	})
}
