package e2e

import (
	"flag"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

var backpressureBench = flag.Bool("backpressure-bench", false, "run TestCheckpointDurationsUnderBackpressure, which compares aligned and unaligned checkpoints for minutes")

// backpressuredCount submits keyedcount with its count as the bottleneck,
// so the exchange into it stays full: barriers queue behind records.
func backpressuredCount(t *testing.T, c *cluster, events, keys int, slow, alignedTimeout string) (id, out string) {
	out = filepath.Join(c.dir, "out-"+alignedTimeout)
	id = runDetached(t, c.api, "-p", "4", "--checkpoint-interval", "1s", "--aligned-timeout", alignedTimeout, bins.keyedcount, "--",
		"--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--slow", slow, "--output", out)
	return id, out
}

func unalignedDone(cps []checkpointJSON) int {
	n := 0
	for _, c := range completed(cps) {
		if c.Unaligned {
			n++
		}
	}
	return n
}

// TestUnalignedCheckpointsUnderBackpressure: with --aligned-timeout 2s a
// job whose count is its bottleneck keeps completing checkpoints (they
// turn unaligned and store the records in flight), and after two worker
// kills, each restoring one, its output is exact.
func TestUnalignedCheckpointsUnderBackpressure(t *testing.T) {
	c := startCluster(t, 2, 2)
	const events, keys = 400_000, 1000
	id, out := backpressuredCount(t, c, events, keys, "20ms", "2s")
	var cps []checkpointJSON
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("checkpoints: %+v", cps)
		}
	})
	for kill := range 2 {
		waitFor(t, 60*time.Second, "a new completed unaligned checkpoint", func() bool {
			cps = checkpointsOf(t, c.api, id)
			return unalignedDone(cps) > kill
		})
		w := c.killWorkerOf(id, 2)
		t.Logf("kill %d: worker %s", kill+1, w)
		waitFor(t, 30*time.Second, "the job to run again", func() bool { return jobStatusOf(t, c.api, id).State == "RUNNING" })
	}
	waitFinished(t, c.api, id, 3*time.Minute)
	checkCounts(t, out, keys, events/keys)
	var inFlight int64
	for _, cp := range completed(checkpointsOf(t, c.api, id)) {
		inFlight += cp.InFlightBytes
	}
	if inFlight == 0 {
		t.Fatal("no completed checkpoint stored in-flight records")
	}
	if st := jobStatusOf(t, c.api, id); st.Attempt < 3 {
		t.Fatalf("attempt %d: the kills did not restart the job", st.Attempt)
	}
}

// TestCheckpointDurationsUnderBackpressure is a benchmark (run with
// -backpressure-bench): the same backpressured job (its count sleeps 50 ms
// per 100 events) with aligned checkpoints only, with --aligned-timeout 2s
// and with 0s, each for a minute at a 1 s interval; it logs how many
// checkpoints completed and their durations.
func TestCheckpointDurationsUnderBackpressure(t *testing.T) {
	if !*backpressureBench {
		t.Skip("a benchmark: run with -backpressure-bench")
	}
	c := startCluster(t, 2, 2)
	for _, timeout := range []string{"-1s", "2s", "0s"} {
		id, _ := backpressuredCount(t, c, 100_000_000, 1000, "50ms", timeout)
		time.Sleep(time.Minute)
		cps := checkpointsOf(t, c.api, id)
		var durs []int64
		unaligned := 0
		for _, cp := range completed(cps) {
			durs = append(durs, cp.DurationMs)
			if cp.Unaligned {
				unaligned++
			}
		}
		slices.Sort(durs)
		p := func(q float64) int64 {
			if len(durs) == 0 {
				return 0
			}
			return durs[int(q*float64(len(durs)-1))]
		}
		t.Logf("--aligned-timeout %s: %d checkpoints triggered, %d completed (%d unaligned) in 60 s; duration p50 %d ms, max %d ms",
			timeout, len(cps), len(durs), unaligned, p(0.5), p(1))
		if _, stderr, code := weir(t, 30*time.Second, "cancel", "--coordinator", c.api, id); code != 0 {
			t.Fatalf("weir cancel: %s", stderr)
		}
	}
}
