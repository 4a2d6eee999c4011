package align

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestPropertyAlignment drives random barrier and end sequences over 1..5
// channels, as a task runtime would: a blocked channel delivers nothing until
// it is unblocked (though it may end). Ids tend to grow, with repeats and
// stragglers mixed in. It checks the aligner against what the channels
// delivered, which the test tracks on its own:
//   - Aligned(x) happens only when every live channel delivered barrier x,
//     and an alignment still in progress is never one every live channel has
//     delivered;
//   - a channel is blocked only for the alignment in progress: never after
//     the alignment it was blocked for completed or was abandoned;
//   - aligned and abandoned ids strictly increase;
//   - with unaligned barriers and timeouts mixed in: a checkpoint is
//     snapshotted once (Aligned or Unaligned), Unaligned records exactly
//     the live channels that have not delivered it, an unaligned alignment
//     blocks nothing, and Complete comes only after its Unaligned, once
//     every live channel delivered it.
func TestPropertyAlignment(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 5).Draw(t, "channels")
		a := New(n)
		now := epoch
		ended := make([]bool, n)
		blocked := make([]int64, n) // id a channel is blocked for, 0 if none
		delivered := make([]map[int64]bool, n)
		for i := range delivered {
			delivered[i] = map[int64]bool{}
		}
		var top, lastDone int64 // highest id sent; last aligned or abandoned
		snapshotted := map[int64]bool{}

		for range rapid.IntRange(0, 80).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 100).Draw(t, "ms")) * time.Millisecond)
			ch := rapid.IntRange(0, n-1).Draw(t, "ch")
			var d Decision
			kind := rapid.IntRange(0, 11).Draw(t, "kind")
			if kind == 10 {
				d = a.Timeout(now)
				if d.Block || d.Aligned || d.Abandoned != 0 || (d.ID != 0) != d.Unaligned {
					t.Fatalf("Timeout returned %+v", d)
				}
			} else if kind == 0 {
				d = a.End(ch, now)
				if d.Block || d.Abandoned != 0 {
					t.Fatalf("End returned %+v", d)
				}
				ended[ch] = true
			} else {
				if blocked[ch] != 0 {
					continue // the runtime does not read a blocked channel
				}
				id := max(top+rapid.Int64Range(-2, 2).Draw(t, "delta"), 1)
				top = max(top, id)
				d = a.Barrier(ch, id, now, kind == 11)
				if !ended[ch] {
					delivered[ch][id] = true
				}
				if (d.Block || d.Aligned) && d.ID != id {
					t.Fatalf("barrier %d on %d: decision about %d", id, ch, d.ID)
				}
				if d.Block {
					blocked[ch] = id
				}
				if slices.Contains(d.Unblock, ch) {
					t.Fatalf("Unblock %v lists the barrier's own channel %d", d.Unblock, ch)
				}
			}
			if !slices.IsSorted(d.Unblock) {
				t.Fatalf("Unblock %v is not sorted", d.Unblock)
			}
			if d.Abandoned != 0 {
				if d.Abandoned <= lastDone || d.Abandoned >= d.ID {
					t.Fatalf("abandoned %d after %d, for %d", d.Abandoned, lastDone, d.ID)
				}
				lastDone = d.Abandoned
			}
			for _, c := range d.Unblock {
				if blocked[c] == 0 {
					t.Fatalf("unblocking channel %d, which is not blocked", c)
				}
				blocked[c] = 0
			}
			if d.Unaligned {
				if d.Aligned || snapshotted[d.ID] || d.ID <= lastDone {
					t.Fatalf("unaligned snapshot of %d: %+v; snapshotted before: %v; last done %d", d.ID, d, snapshotted[d.ID], lastDone)
				}
				snapshotted[d.ID] = true
				var missing []int
				for c := range n {
					if !ended[c] && !delivered[c][d.ID] {
						missing = append(missing, c)
					}
				}
				if !slices.Equal(missing, d.Record) {
					t.Fatalf("unaligned %d records %v, want the live channels without its barrier %v", d.ID, d.Record, missing)
				}
			}
			if d.Complete {
				if !snapshotted[d.ID] || d.Aligned || d.ID <= lastDone {
					t.Fatalf("complete %d: %+v (snapshotted %v, last done %d)", d.ID, d, snapshotted[d.ID], lastDone)
				}
				lastDone = d.ID
				for c := range n {
					if !ended[c] && !delivered[c][d.ID] {
						t.Fatalf("complete %d but live channel %d did not deliver it", d.ID, c)
					}
				}
			}
			if a.Unaligned() {
				for c, b := range blocked {
					if b != 0 {
						t.Fatalf("channel %d blocked for %d during unaligned alignment", c, b)
					}
				}
			}
			if d.Aligned {
				if snapshotted[d.ID] {
					t.Fatalf("aligned %d, already snapshotted", d.ID)
				}
				snapshotted[d.ID] = true
				if d.ID <= lastDone {
					t.Fatalf("aligned %d after %d", d.ID, lastDone)
				}
				lastDone = d.ID
				for c := range n {
					if !ended[c] && !delivered[c][d.ID] {
						t.Fatalf("aligned %d but live channel %d did not deliver it", d.ID, c)
					}
				}
				if d.Alignment < 0 {
					t.Fatalf("negative alignment %v", d.Alignment)
				}
			}
			cur, aligning := a.Aligning()
			for c, b := range blocked {
				if b != 0 && (!aligning || b != cur) {
					t.Fatalf("channel %d still blocked for %d; aligning %d (%v)", c, b, cur, aligning)
				}
			}
			if aligning {
				all := true
				for c := range n {
					if !ended[c] && !delivered[c][cur] {
						all = false
					}
				}
				if all {
					t.Fatalf("every live channel delivered %d but it is not aligned", cur)
				}
				if cur <= lastDone {
					t.Fatalf("aligning %d after %d was done", cur, lastDone)
				}
			}
		}
	})
}
