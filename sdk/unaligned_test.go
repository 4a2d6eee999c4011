package sdk

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// unalignedStats counts what the subtasks' acks say about their snapshots.
type unalignedStats struct {
	mu                  sync.Mutex
	aligned, unaligned  int
	inFlightRecords     int64
	unalignedCheckpoint map[int64]bool
}

func (s *unalignedStats) onAck(a *weirv1.CheckpointAck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Unaligned {
		s.unaligned++
		if s.unalignedCheckpoint == nil {
			s.unalignedCheckpoint = map[int64]bool{}
		}
		s.unalignedCheckpoint[a.CheckpointId] = true
	} else {
		s.aligned++
	}
	s.inFlightRecords += a.GetSnapshot().GetInFlight().GetRecords()
}

// backpressuredJob is a job whose sink is slow: a generator at
// parallelism 2, keyed into a count per key (state) and into a slow map
// feeding an exactly-once sink, so the channels into the slow map stay
// full and barriers queue behind records.
func backpressuredJob(n int64, counts *commitLog[KV[int64, int64]], values *commitLog[int64]) func(p *Pipeline) {
	return func(p *Pipeline) {
		keyed := KeyBy(genSeq(p, n, WithUID("gen")), func(v int64) int64 { return v % 13 })
		commitSink(Aggregate(keyed, Count[int64](), EmitFinal(), WithUID("count")), counts, WithUID("counts"))
		slow := KeyedProcess(keyed, func(st *StateStore) (func(k, v int64, emit func(int64)) error, error) {
			seen := NewValueState[int64](st, "seen")
			return func(k, v int64, emit func(int64)) error {
				if v%64 == 0 {
					time.Sleep(200 * time.Microsecond)
				}
				n, _, err := seen.Get()
				if err != nil {
					return err
				}
				emit(v)
				return seen.Set(n + 1)
			}, nil
		}, WithUID("slow"))
		commitSink(slow, values, WithUID("values"))
	}
}

// Unaligned checkpoints under backpressure: every checkpoint is taken
// unaligned, stores the records in flight, and a job killed after every
// few completed checkpoints still gives exact output: the in-flight
// records are processed again after each restore, exactly once.
func TestUnalignedCheckpointsUnderBackpressure(t *testing.T) {
	for _, timeout := range []time.Duration{0, 5 * time.Millisecond} {
		t.Run(fmt.Sprintf("aligned-timeout=%v", timeout), func(t *testing.T) {
			const n = 60_000
			var counts commitLog[KV[int64, int64]]
			var values commitLog[int64]
			var stats unalignedStats
			c := newCkCluster(t.TempDir(), 10*time.Millisecond, backpressuredJob(n, &counts, &values))
			c.AlignedTimeout = &timeout
			c.OnAck = stats.onAck
			// Far longer than any checkpoint here takes, even on a loaded
			// machine: one that runs out has lost a barrier.
			c.CheckpointTimeout = 5 * time.Second
			killed := 0
			for {
				finished, err := c.RunAttempt(t.Context(), 3)
				if err != nil {
					t.Fatal(err)
				}
				if finished {
					break
				}
				if killed++; killed > 40 {
					t.Fatal("the job was killed 40 times without finishing")
				}
			}
			got := values.all()
			slices.Sort(got)
			checkOutput(t, got, seqUpTo(n))
			want := map[int64]int64{}
			for i := range int64(n) {
				want[i%13]++
			}
			gotCounts := map[int64]int64{}
			for _, kv := range counts.all() {
				gotCounts[kv.Key] += kv.Value
			}
			if fmt.Sprint(gotCounts) != fmt.Sprint(want) {
				t.Fatalf("counts per key %v, want %v", gotCounts, want)
			}
			stats.mu.Lock()
			defer stats.mu.Unlock()
			t.Logf("%d kills; acks: %d unaligned (%d checkpoints), %d aligned; %d in-flight records stored",
				killed, stats.unaligned, len(stats.unalignedCheckpoint), stats.aligned, stats.inFlightRecords)
			if killed == 0 {
				t.Error("the job was never killed: nothing was restored")
			}
			// A checkpoint turned unaligned completes: none is given up,
			// but for one when the job ends (triggered as a subtask ends,
			// which the in-process cluster does not stand in for).
			if c.Abandoned > 1 {
				t.Errorf("%d checkpoints never completed", c.Abandoned)
			}
			if stats.inFlightRecords == 0 {
				t.Error("no unaligned snapshot stored in-flight records: the test did not backpressure")
			}
		})
	}
}
