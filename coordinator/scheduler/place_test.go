package scheduler

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestPlace runs testdata/place.txt:
//
//	place need=<n>
//	<worker id> <free>
//	...
//
// and prints one "slot i -> worker" line per slot, or the error.
func TestPlace(t *testing.T) {
	datadriven.RunTest(t, "testdata/place.txt", func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "place":
			var need int
			d.ScanArgs(t, "need", &need)
			var workers []Worker
			for _, line := range strings.Split(d.Input, "\n") {
				fields := strings.Fields(line)
				if len(fields) == 0 {
					continue
				}
				if len(fields) != 2 {
					d.Fatalf(t, "want \"<id> <free>\", got %q", line)
				}
				free, err := strconv.Atoi(fields[1])
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				workers = append(workers, Worker{ID: fields[0], Free: free})
			}
			before := fmt.Sprint(workers)
			slots, err := Place(need, workers)
			if fmt.Sprint(workers) != before {
				t.Errorf("Place modified its input: %s -> %v", before, workers)
			}
			if err != nil {
				if !errors.Is(err, ErrNotEnoughSlots) {
					t.Errorf("error does not wrap ErrNotEnoughSlots: %v", err)
				}
				return "error: " + err.Error()
			}
			if len(slots) == 0 {
				return "(no slots)"
			}
			var b strings.Builder
			for i, w := range slots {
				fmt.Fprintf(&b, "slot %d -> %s\n", i, w)
			}
			return b.String()
		default:
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		}
	})
}
