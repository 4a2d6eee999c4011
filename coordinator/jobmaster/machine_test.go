package jobmaster

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// epoch is t=0s in the scripts.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// TestMachine runs the scripts in testdata. Commands:
//
//	new [max-restarts=N] [initial=D] [max=D] [multiplier=F] [strategy=S]
//	    [delay=D] [jitter=F] [reset=D] [interval=D] [rand=F,...] [t=D]
//	    a fresh machine; without policy arguments the default policy. S is
//	    none, fixed-delay, exponential-delay or failure-rate; rand lists
//	    the values the jitter source returns, the last one repeating
//	restore state=S [attempt=N] [restarts=N] [err=X] [message=X] [policy args]
//	    a machine restored from a snapshot; S is e.g. RUNNING
//	event <kind> [err=X | reason=X] t=D
//	    kind is start, scheduled, no-slots, all-running, all-finished,
//	    task-failed, cancel, attempt-stopped, reattached, tick,
//	    region-failed region=N or region-stopped region=N; an input block, if
//	    any, is the err or reason text (for text with spaces); task-failed
//	    and region-failed take [permanent]
//	tick t=D
//	    shorthand for event tick
//
// Each prints the actions returned, one per line, then the machine.
func TestMachine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			return // e.g. rapid's failure files
		}
		var m *Machine
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "new":
				m = New(scanPolicy(t, d), scanTime(t, d), scanRand(t, d)...)
				return describe(m)
			case "restore":
				var st Snapshot
				var state string
				d.ScanArgs(t, "state", &state)
				v, ok := weirv1.JobState_value["JOB_STATE_"+state]
				if !ok {
					d.Fatalf(t, "unknown state %q", state)
				}
				st.State = State(v)
				d.MaybeScanArgs(t, "attempt", &st.Attempt)
				d.MaybeScanArgs(t, "restarts", &st.Restarts)
				st.Error = textArg(t, d, "err")
				st.Message = textArg(t, d, "message")
				m = Restore(st, scanPolicy(t, d), scanRand(t, d)...)
				return describe(m)
			case "event", "tick":
				if m == nil {
					d.Fatalf(t, "no machine: use new or restore first")
				}
				kind := "tick"
				if d.Cmd == "event" {
					if len(d.CmdArgs) == 0 {
						d.Fatalf(t, "event needs a kind")
					}
					kind = d.CmdArgs[0].Key
				}
				ev := parseEvent(t, d, kind)
				acts := m.Step(ev, scanTime(t, d))
				var b strings.Builder
				if len(acts) == 0 {
					b.WriteString("(no actions)\n")
				}
				for _, a := range acts {
					b.WriteString(formatAction(a) + "\n")
				}
				b.WriteString(describe(m))
				return b.String()
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
				return ""
			}
		})
	})
}

func parseEvent(t *testing.T, d *datadriven.TestData, kind string) Event {
	switch kind {
	case "start":
		return Start{}
	case "scheduled":
		return Scheduled{}
	case "no-slots":
		return NoSlots{Reason: textArg(t, d, "reason")}
	case "all-running":
		return AllRunning{}
	case "all-finished":
		return AllFinished{}
	case "task-failed":
		return TaskFailed{Err: textArg(t, d, "err"), Permanent: d.HasArg("permanent")}
	case "cancel":
		return CancelRequested{}
	case "attempt-stopped":
		return AttemptStopped{}
	case "tick":
		return Tick{}
	case "reattached":
		return Reattached{}
	case "region-failed":
		var r int32
		d.ScanArgs(t, "region", &r)
		return RegionFailed{Region: r, Err: textArg(t, d, "err"), Permanent: d.HasArg("permanent")}
	case "region-stopped":
		var r int32
		d.ScanArgs(t, "region", &r)
		return RegionStopped{Region: r}
	}
	d.Fatalf(t, "unknown event %q", kind)
	return nil
}

// textArg reads key=value (unquoting "value"), or else the input block.
func textArg(t *testing.T, d *datadriven.TestData, key string) string {
	arg, ok := d.Arg(key)
	if !ok || len(arg.Vals) == 0 || arg.Vals[0] == "" {
		return strings.TrimSpace(d.Input)
	}
	v := arg.Vals[0]
	if u, err := strconv.Unquote(v); err == nil {
		v = u
	}
	return v
}

func scanTime(t *testing.T, d *datadriven.TestData) time.Time {
	arg, ok := d.Arg("t")
	if !ok {
		return epoch
	}
	dur, err := time.ParseDuration(arg.SingleVal(t))
	if err != nil {
		d.Fatalf(t, "t: %v", err)
	}
	return epoch.Add(dur)
}

// scanPolicy returns nil (the default policy) when no policy argument is
// given; otherwise unset fields are zero, as in a proto from the user.
func scanPolicy(t *testing.T, d *datadriven.TestData) *weirv1.RestartPolicy {
	var p weirv1.RestartPolicy
	set := false
	if d.MaybeScanArgs(t, "max-restarts", &p.MaxRestarts) {
		set = true
	}
	for key, dst := range map[string]*int64{"initial": &p.InitialBackoffMs, "max": &p.MaxBackoffMs} {
		if arg, ok := d.Arg(key); ok {
			dur, err := time.ParseDuration(arg.SingleVal(t))
			if err != nil {
				d.Fatalf(t, "%s: %v", key, err)
			}
			*dst = dur.Milliseconds()
			set = true
		}
	}
	if d.MaybeScanArgs(t, "multiplier", &p.Multiplier) {
		set = true
	}
	for key, dst := range map[string]*int64{"delay": &p.DelayMs, "reset": &p.ResetThresholdMs, "interval": &p.FailureIntervalMs} {
		if arg, ok := d.Arg(key); ok {
			dur, err := time.ParseDuration(arg.SingleVal(t))
			if err != nil {
				d.Fatalf(t, "%s: %v", key, err)
			}
			*dst = dur.Milliseconds()
			set = true
		}
	}
	if d.MaybeScanArgs(t, "jitter", &p.Jitter) {
		set = true
	}
	var strategy string
	if d.MaybeScanArgs(t, "strategy", &strategy) {
		v, ok := weirv1.RestartStrategy_value["RESTART_STRATEGY_"+strings.ToUpper(strings.ReplaceAll(strategy, "-", "_"))]
		if !ok {
			d.Fatalf(t, "unknown strategy %q", strategy)
		}
		p.Strategy = weirv1.RestartStrategy(v)
		set = true
	}
	if !set {
		return nil
	}
	return &p
}

// scanRand reads rand=F1,F2,...: the jitter source returns them in turn,
// repeating the last.
func scanRand(t *testing.T, d *datadriven.TestData) []Option {
	arg, ok := d.Arg("rand")
	if !ok {
		return nil
	}
	var vals []float64
	for _, v := range arg.Vals {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			d.Fatalf(t, "rand: %v", err)
		}
		vals = append(vals, f)
	}
	i := 0
	return []Option{WithRand(func() float64 {
		f := vals[min(i, len(vals)-1)]
		i++
		return f
	})}
}

func formatAction(a Action) string {
	switch a := a.(type) {
	case Deploy:
		return fmt.Sprintf("deploy attempt=%d", a.Attempt)
	case StopAttempt:
		return fmt.Sprintf("stop-attempt attempt=%d", a.Attempt)
	case Persist:
		return "persist"
	case StopRegion:
		return fmt.Sprintf("stop-region region=%d", a.Region)
	case DeployRegion:
		return fmt.Sprintf("deploy-region region=%d attempt=%d", a.Region, a.Attempt)
	}
	return fmt.Sprintf("%T", a)
}

func describe(m *Machine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s attempt=%d restarts=%d",
		strings.TrimPrefix(m.State().String(), "JOB_STATE_"), m.Attempt(), m.Restarts())
	if w, ok := m.NextWake(); ok {
		fmt.Fprintf(&b, " wake=%s", w.Sub(epoch))
	}
	b.WriteString("\n")
	if s := m.Message(); s != "" {
		fmt.Fprintf(&b, "message: %s\n", s)
	}
	if s := m.Err(); s != "" {
		fmt.Fprintf(&b, "err: %s\n", s)
	}
	return b.String()
}
