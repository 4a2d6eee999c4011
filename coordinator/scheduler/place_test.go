package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
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

// scanPlace is Place's rule written as plainly as it reads: for each slot,
// scan for the worker with the most free slots, ties to the smaller ID, then
// the earlier position. Place must agree with it.
func scanPlace(need int, workers []Worker) []string {
	free := make([]int, len(workers))
	for i, w := range workers {
		free[i] = max(w.Free, 0)
	}
	var out []string
	for range need {
		best := -1
		for i, w := range workers {
			if free[i] == 0 {
				continue
			}
			if best < 0 || free[i] > free[best] || (free[i] == free[best] && w.ID < workers[best].ID) {
				best = i
			}
		}
		out = append(out, workers[best].ID)
		free[best]--
	}
	return out
}

func TestPlaceAgreesWithTheScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		workers := make([]Worker, r.IntN(12))
		total := 0
		for i := range workers {
			// Few distinct IDs and counts: ties, duplicates and negatives.
			workers[i] = Worker{ID: fmt.Sprintf("w%d", r.IntN(5)), Free: r.IntN(6) - 1}
			total += max(workers[i].Free, 0)
		}
		need := r.IntN(total + 1)
		got, err := Place(need, workers)
		if err != nil {
			t.Fatalf("Place(%d, %v): %v", need, workers, err)
		}
		if want := scanPlace(need, workers); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Place(%d, %v) = %v, the scan says %v", need, workers, got, want)
		}
	}
}

func BenchmarkPlace10000On1000(b *testing.B) {
	workers := make([]Worker, 1000)
	for i := range workers {
		workers[i] = Worker{ID: fmt.Sprintf("w%04d", i), Free: 10}
	}
	for b.Loop() {
		if _, err := Place(10000, workers); err != nil {
			b.Fatal(err)
		}
	}
}
