package checkpoint

import (
	"errors"
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

// TestMachine runs the scripts in testdata. Commands (t=D is the time
// since epoch, 0s if absent; reason=X takes one word, or else the input
// block is the reason):
//
//	new [interval=D] [timeout=D] [min-pause=D] [max-concurrent=N] [retained=N]
//	start tasks=v0/0,v0/1,... [t=D]
//	stop [reason=X] [t=D]
//	tick [t=D]
//	hurry [taken=N] [t=D]                       Hurry
//	savepoint [t=D]
//	id N [savepoint] [t=D]                      IDAllocated
//	id-failed [savepoint] [reason=X] [t=D]      IDFailed
//	ack N vV/S [bytes=N] [uploaded=N] [align=N] [t=D]
//	decline N vV/S [reason=X] [t=D]
//	finished vV/S [t=D]                         Finished, with a finished snapshot
//	stored N [loc=X] [t=D]                      loc defaults to chk-N
//	store-failed N [reason=X] [t=D]
//	restored N [loc=X] [savepoint]
//	latest
//	quiet                                       Quiet
//	history
//
// Events print their result (ack, savepoint), the actions returned, one per
// line, then the coordinator's state.
func TestMachine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			return // e.g. rapid's failure files
		}
		var c *Machine
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "new" && c == nil {
				d.Fatalf(t, "no coordinator: use new first")
			}
			now := scanTime(t, d)
			var b strings.Builder
			var acts []Action
			switch d.Cmd {
			case "new":
				var cfg Config
				cfg.Interval = scanDuration(t, d, "interval")
				cfg.Timeout = scanDuration(t, d, "timeout")
				cfg.MinPause = scanDuration(t, d, "min-pause")
				d.MaybeScanArgs(t, "max-concurrent", &cfg.MaxConcurrent)
				d.MaybeScanArgs(t, "retained", &cfg.Retained)
				c = New(cfg)
				return describe(c)
			case "start":
				var tasks []TaskID
				var list string
				d.ScanArgs(t, "tasks", &list)
				for _, s := range strings.Split(list, ",") {
					tasks = append(tasks, parseTask(t, d, s))
				}
				acts = c.Start(tasks, now)
			case "stop":
				acts = c.Stop(textArg(d, "reason"), now)
			case "tick":
				acts = c.Tick(now)
			case "hurry":
				var taken int64
				d.MaybeScanArgs(t, "taken", &taken)
				acts = c.Hurry(taken, now)
			case "savepoint":
				var err error
				acts, err = c.RequestSavepoint(now)
				if err != nil {
					fmt.Fprintf(&b, "error: %v", err)
					for _, s := range []error{ErrNotRunning, ErrSavepointPending} {
						if errors.Is(err, s) {
							fmt.Fprintf(&b, " (is %q)", s)
						}
					}
					b.WriteString("\n")
				}
			case "id":
				acts = c.IDAllocated(posInt(t, d, 0), d.HasArg("savepoint"), now)
			case "id-failed":
				acts = c.IDFailed(d.HasArg("savepoint"), textArg(d, "reason"), now)
			case "ack":
				ack := &weirv1.CheckpointAck{}
				d.MaybeScanArgs(t, "bytes", &ack.StateBytes)
				d.MaybeScanArgs(t, "uploaded", &ack.UploadedBytes)
				d.MaybeScanArgs(t, "align", &ack.AlignmentMs)
				task := parseTask(t, d, posArg(t, d, 1))
				ack.CheckpointId = posInt(t, d, 0)
				ack.Snapshot = &weirv1.SubtaskSnapshot{VertexId: task.Vertex, Subtask: task.Subtask}
				var res AckResult
				res, acts = c.Ack(ack.CheckpointId, task, ack, now)
				fmt.Fprintf(&b, "ack: %s\n", res)
			case "finished":
				task := parseTask(t, d, posArg(t, d, 0))
				ack := &weirv1.CheckpointAck{Snapshot: &weirv1.SubtaskSnapshot{VertexId: task.Vertex, Subtask: task.Subtask, Finished: true}}
				acts = c.Finished(task, ack, now)
			case "decline":
				acts = c.Decline(posInt(t, d, 0), parseTask(t, d, posArg(t, d, 1)), textArg(d, "reason"), now)
			case "stored":
				id := posInt(t, d, 0)
				loc := fmt.Sprintf("chk-%d", id)
				d.MaybeScanArgs(t, "loc", &loc)
				acts = c.Stored(id, loc, now)
			case "store-failed":
				acts = c.StoreFailed(posInt(t, d, 0), textArg(d, "reason"), now)
			case "restored":
				id := posInt(t, d, 0)
				loc := fmt.Sprintf("chk-%d", id)
				d.MaybeScanArgs(t, "loc", &loc)
				info := &weirv1.CheckpointInfo{Savepoint: d.HasArg("savepoint"), TriggerUnixMs: epoch.UnixMilli(), SizeBytes: 1000}
				c.Restored(id, loc, info)
				info.SizeBytes = -1 // the coordinator keeps a copy
				return describe(c)
			case "quiet":
				if id, ok := c.Quiet(); ok {
					return fmt.Sprintf("quiet after %d\n", id)
				}
				return "not quiet\n"
			case "latest":
				id, loc, ok := c.Latest()
				if !ok {
					return "none\n"
				}
				return fmt.Sprintf("%d %s\n", id, loc)
			case "history":
				for _, h := range c.History() {
					b.WriteString(formatInfo(h) + "\n")
				}
				if b.Len() == 0 {
					return "empty\n"
				}
				return b.String()
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			if len(acts) == 0 {
				b.WriteString("(no actions)\n")
			}
			for _, a := range acts {
				b.WriteString(formatAction(a) + "\n")
			}
			b.WriteString(describe(c))
			return b.String()
		})
	})
}

func formatAction(a Action) string {
	sp := func(s bool) string {
		if s {
			return " savepoint"
		}
		return ""
	}
	switch a := a.(type) {
	case AllocateID:
		return "allocate-id" + sp(a.Savepoint)
	case Trigger:
		return fmt.Sprintf("trigger %d ts=%s%s", a.ID, a.Timestamp.Sub(epoch), sp(a.Savepoint))
	case Complete:
		var acks []string
		for _, ack := range a.Acks {
			s := TaskID{ack.GetSnapshot().GetVertexId(), ack.GetSnapshot().GetSubtask()}.String()
			if ack.GetSnapshot().GetFinished() {
				s += "(finished)"
			}
			acks = append(acks, s)
		}
		return fmt.Sprintf("complete %d%s acks=%s", a.ID, sp(a.Savepoint), strings.Join(acks, ","))
	case Notify:
		return fmt.Sprintf("notify %d", a.ID)
	case Abort:
		return fmt.Sprintf("abort %d%s: %s", a.ID, sp(a.Savepoint), a.Reason)
	case Discard:
		return fmt.Sprintf("discard %d loc=%s", a.ID, a.Location)
	}
	return fmt.Sprintf("%T", a)
}

func formatInfo(h *weirv1.CheckpointInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", h.GetId(), strings.TrimPrefix(h.GetStatus().String(), "CHECKPOINT_STATUS_"))
	if h.GetSavepoint() {
		b.WriteString(" savepoint")
	}
	fmt.Fprintf(&b, " trigger=%s duration=%s size=%d incremental=%d align=%dms",
		time.UnixMilli(h.GetTriggerUnixMs()).Sub(epoch), time.Duration(h.GetDurationMs())*time.Millisecond,
		h.GetSizeBytes(), h.GetIncrementalBytes(), h.GetAlignmentMs())
	if h.GetLocation() != "" {
		fmt.Fprintf(&b, " loc=%s", h.GetLocation())
	}
	if h.GetFailure() != "" {
		fmt.Fprintf(&b, " failure=%q", h.GetFailure())
	}
	return b.String()
}

// describe prints the state, reading unexported fields so scripts show what
// the coordinator holds.
func describe(c *Machine) string {
	var b strings.Builder
	if c.running {
		b.WriteString("running")
	} else {
		b.WriteString("stopped")
	}
	fmt.Fprintf(&b, " last-id=%d", c.lastID)
	if w, ok := c.NextWake(); ok {
		fmt.Fprintf(&b, " wake=%s", w.Sub(epoch))
	}
	b.WriteString("\n")
	if len(c.finished) > 0 {
		var s []string
		for _, t := range c.tasks {
			if c.finished[t] != nil {
				s = append(s, t.String())
			}
		}
		fmt.Fprintf(&b, "finished: %s\n", strings.Join(s, ","))
	}
	if len(c.pending) > 0 {
		var s []string
		for _, p := range c.pending {
			e := fmt.Sprintf("%d", p.id)
			if p.savepoint {
				e += " savepoint"
			}
			e += fmt.Sprintf(" acked=%d/%d", p.nacked, len(p.acks))
			if p.storing {
				e += " storing"
			}
			s = append(s, e)
		}
		fmt.Fprintf(&b, "pending: %s\n", strings.Join(s, ", "))
	}
	var alloc []string
	if c.allocPeriodic {
		alloc = append(alloc, "periodic")
	}
	if c.allocSavepoint {
		alloc = append(alloc, "savepoint")
	}
	if len(alloc) > 0 {
		fmt.Fprintf(&b, "allocating: %s\n", strings.Join(alloc, ", "))
	}
	if c.hurryOnFail {
		fmt.Fprintf(&b, "hurry if it fails: taken=%d\n", c.hurryTaken)
	}
	if len(c.completed) > 0 {
		var s []string
		for _, e := range c.completed {
			sp := ""
			if e.savepoint {
				sp = " savepoint"
			}
			s = append(s, fmt.Sprintf("%d%s", e.id, sp))
		}
		fmt.Fprintf(&b, "completed: %s\n", strings.Join(s, ", "))
	}
	return b.String()
}

func scanTime(t *testing.T, d *datadriven.TestData) time.Time {
	return epoch.Add(scanDuration(t, d, "t"))
}

func scanDuration(t *testing.T, d *datadriven.TestData, key string) time.Duration {
	arg, ok := d.Arg(key)
	if !ok {
		return 0
	}
	dur, err := time.ParseDuration(arg.SingleVal(t))
	if err != nil {
		d.Fatalf(t, "%s: %v", key, err)
	}
	return dur
}

// textArg reads key=value, or else the input block.
func textArg(d *datadriven.TestData, key string) string {
	arg, ok := d.Arg(key)
	if !ok || len(arg.Vals) == 0 || arg.Vals[0] == "" {
		return strings.TrimSpace(d.Input)
	}
	return arg.Vals[0]
}

// posArg returns the i-th argument, a bare word such as an id or a task.
func posArg(t *testing.T, d *datadriven.TestData, i int) string {
	if i >= len(d.CmdArgs) || len(d.CmdArgs[i].Vals) != 0 {
		d.Fatalf(t, "argument %d must be a bare word", i)
	}
	return d.CmdArgs[i].Key
}

func posInt(t *testing.T, d *datadriven.TestData, i int) int64 {
	v, err := strconv.ParseInt(posArg(t, d, i), 10, 64)
	if err != nil {
		d.Fatalf(t, "argument %d: %v", i, err)
	}
	return v
}

func parseTask(t *testing.T, d *datadriven.TestData, s string) TaskID {
	var v, st int32
	if _, err := fmt.Sscanf(s, "v%d/%d", &v, &st); err != nil {
		d.Fatalf(t, "task %q: want vV/S", s)
	}
	return TaskID{Vertex: v, Subtask: st}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	err := Config{Interval: -1, Timeout: -1, MinPause: -1, MaxConcurrent: -1, Retained: -1}.Validate()
	if err == nil || strings.Count(err.Error(), "negative") != 5 {
		t.Errorf("negative config: %v", err)
	}
	got := Config{Interval: -time.Second, MinPause: -1}.withDefaults()
	want := Config{Timeout: DefaultTimeout, MaxConcurrent: DefaultMaxConcurrent, Retained: DefaultRetained}
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

func TestAckResultString(t *testing.T) {
	for r, want := range map[AckResult]string{AckSuccess: "success", AckDuplicate: "duplicate", AckUnknown: "unknown", AckDiscarded: "discarded", 9: "AckResult(9)"} {
		if got := r.String(); got != want {
			t.Errorf("%d: %q, want %q", int(r), got, want)
		}
	}
}

// TestHistoryBounded checks that a long-running job's history stays at the
// limit and that History hands out copies.
func TestHistoryBounded(t *testing.T) {
	c := New(Config{Interval: time.Second, Retained: 2})
	now := epoch
	task := TaskID{0, 0}
	c.Start([]TaskID{task}, now)
	for i := int64(1); i <= 3*historyLimit; i++ {
		now = now.Add(time.Second)
		if acts := c.Tick(now); len(acts) != 1 {
			t.Fatalf("tick %d: %v", i, acts)
		}
		c.IDAllocated(i, false, now)
		if i%2 == 0 {
			c.Decline(i, task, "no", now)
			continue
		}
		c.Ack(i, task, &weirv1.CheckpointAck{}, now)
		c.Stored(i, "x", now)
	}
	h := c.History()
	if len(h) != historyLimit || h[0].GetId() != 3*historyLimit {
		t.Fatalf("history has %d entries from %d", len(h), h[0].GetId())
	}
	if len(c.completed) != 2 {
		t.Fatalf("completed has %d entries", len(c.completed))
	}
	h[0].Id = -1
	if c.History()[0].GetId() == -1 {
		t.Fatal("History returned the coordinator's own message")
	}
	if res, _ := c.Ack(1, task, nil, now); res != AckUnknown {
		t.Fatalf("ack for a forgotten checkpoint: %s", res)
	}
}
