package align

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// epoch is t=0s in the scripts.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// TestAligner runs the scripts in testdata. Commands:
//
//	new channels=N
//	barrier ch=C id=N [t=D]
//	end ch=C [t=D]
//
// Each event prints its Decision (or "ignored" for the zero Decision), then
// the aligner's state: the checkpoint being aligned and the blocked channels.
func TestAligner(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			return
		}
		var a *Aligner
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "new" && a == nil {
				d.Fatalf(t, "no aligner: use new first")
			}
			var ch int
			switch d.Cmd {
			case "new":
				var n int
				d.ScanArgs(t, "channels", &n)
				a = New(n)
				return describe(a)
			case "barrier":
				var id int64
				d.ScanArgs(t, "ch", &ch)
				d.ScanArgs(t, "id", &id)
				return format(a.Barrier(ch, id, scanTime(t, d), d.HasArg("unaligned"))) + describe(a)
			case "timeout":
				return format(a.Timeout(scanTime(t, d))) + describe(a)
			case "end":
				d.ScanArgs(t, "ch", &ch)
				return format(a.End(ch, scanTime(t, d))) + describe(a)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
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

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func format(d Decision) string {
	var parts []string
	if d.Abandoned > 0 {
		parts = append(parts, fmt.Sprintf("abandoned=%d", d.Abandoned))
	}
	if d.Block {
		parts = append(parts, fmt.Sprintf("block id=%d", d.ID))
	}
	if d.Aligned {
		parts = append(parts, fmt.Sprintf("aligned id=%d alignment=%s", d.ID, d.Alignment))
	}
	if d.Unaligned {
		parts = append(parts, fmt.Sprintf("unaligned id=%d alignment=%s", d.ID, d.Alignment))
	}
	if len(d.Record) > 0 {
		parts = append(parts, "record="+ints(d.Record))
	}
	if d.Complete {
		parts = append(parts, fmt.Sprintf("complete id=%d", d.ID))
	}
	if len(d.Unblock) > 0 {
		parts = append(parts, "unblock="+ints(d.Unblock))
	}
	if len(parts) == 0 && d.ID != 0 {
		return fmt.Sprintf("noted id=%d\n", d.ID)
	}
	if len(parts) == 0 {
		return "ignored\n"
	}
	return strings.Join(parts, " ") + "\n"
}

// describe reads the state through the API plus the unexported fields a
// caller cannot see, so scripts show what is held back.
func describe(a *Aligner) string {
	var b strings.Builder
	if id, ok := a.Aligning(); ok {
		var s []string
		for ch, seen := range a.seen {
			if seen && !a.ended[ch] {
				s = append(s, strconv.Itoa(ch))
			}
		}
		if a.Unaligned() {
			fmt.Fprintf(&b, "unaligned id=%d delivered=%s", id, strings.Join(s, ","))
		} else {
			fmt.Fprintf(&b, "aligning id=%d blocked=%s", id, strings.Join(s, ","))
		}
	} else {
		b.WriteString("idle")
	}
	fmt.Fprintf(&b, " last=%d live=%d\n", a.last, a.live)
	return b.String()
}

func TestNewPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(0) did not panic")
		}
	}()
	New(0)
}

func TestChannelOutOfRangePanics(t *testing.T) {
	a := New(2)
	defer func() {
		if recover() == nil {
			t.Fatal("Barrier on channel 2 of 2 did not panic")
		}
	}()
	a.Barrier(2, 1, epoch, false)
}
