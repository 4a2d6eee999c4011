package sdk

import (
	"fmt"
	"slices"
	"testing"
)

// The exactly-once test sink follows SinkWriter.Finish: with checkpoints,
// Finish commits nothing, and the final checkpoint commits what came after
// the last one. TestUnalignedCheckpointsUnderBackpressure once failed with
// duplicates because Finish committed the records an unaligned snapshot
// had also stored as in-flight data: the job was killed after that
// checkpoint completed, and the restored job wrote them again.
func TestCommitSinkFinishCommitsOnlyWithoutCheckpoints(t *testing.T) {
	for _, checkpointing := range []bool{true, false} {
		t.Run(fmt.Sprintf("checkpointing=%v", checkpointing), func(t *testing.T) {
			var log commitLog[int64]
			w := &commitWriter[int64]{log: &log, subtask: 0, attempt: 1, checkpointing: checkpointing}
			w.Write(1)
			if _, err := w.PreCommit(1); err != nil {
				t.Fatal(err)
			}
			w.Write(2) // after checkpoint 1's snapshot, before the end
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			got := log.all()
			if checkpointing {
				// Checkpoint 1 has not completed: nothing is final yet.
				if len(got) != 0 {
					t.Fatalf("Finish committed %v with checkpoints; want nothing before the final checkpoint", got)
				}
				if _, err := w.PreCommit(2); err != nil { // the final checkpoint
					t.Fatal(err)
				}
				if err := w.Commit(2); err != nil {
					t.Fatal(err)
				}
				got = log.all()
			}
			slices.Sort(got)
			if !slices.Equal(got, []int64{1, 2}) {
				t.Fatalf("committed %v, want [1 2]", got)
			}
		})
	}
}
