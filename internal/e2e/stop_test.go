package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopSavepointTellsTheTruth: `weir stop --savepoint` while a job
// process is SIGKILLed at several delays into the stop. Whatever the race
// gives, what the command says is what the job does: exit 0 and "stopped"
// only for a job that is CANCELED with its savepoint completed; exit 3
// ("no savepoint was taken") for a job that restarts and keeps RUNNING;
// exit 4 for a savepoint taken without a stop. Every outcome is checked
// against the job's state as the coordinator reports it afterwards.
func TestStopSavepointTellsTheTruth(t *testing.T) {
	api := startLocal(t, 2, 4)
	outcomes := map[int]int{}
	for _, delay := range []time.Duration{0, 10 * time.Millisecond, 40 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		id := runDetached(t, api, "-p", "2", "--checkpoint-interval", "300ms", bins.keyedcount, "--",
			"--events", "100000000", "--keys", "50000", "--rate", "20000", "--output", t.TempDir())
		waitFor(t, 30*time.Second, "the job to run", func() bool { return jobStatusOf(t, api, id).State == "RUNNING" })
		waitFor(t, 30*time.Second, "a completed checkpoint", func() bool { return len(completed(checkpointsOf(t, api, id))) > 0 })
		pids := taskPids(t, api, id)
		if len(pids) == 0 {
			t.Fatalf("job %s has no task process", id)
		}
		type result struct {
			stdout, stderr string
			code           int
		}
		done := make(chan result, 1)
		go func() {
			stdout, stderr, code := weir(t, 60*time.Second, "stop", "--coordinator", api, "--savepoint", id)
			done <- result{stdout, stderr, code}
		}()
		time.Sleep(delay)
		syscall.Kill(pids[0], syscall.SIGKILL)
		r := <-done
		outcomes[r.code]++
		t.Logf("kill %v into the stop: exit %d, stderr %q", delay, r.code, r.stderr)
		say := "delay " + delay.String() + ": exit " + strconv.Itoa(r.code) + ", stderr " + strconv.Quote(r.stderr)
		switch r.code {
		case 0:
			if !strings.Contains(r.stderr, "job "+id+" stopped\n") {
				t.Fatalf("%s: exit 0 without saying the job stopped", say)
			}
			if st := jobStatusOf(t, api, id).State; st != "CANCELED" {
				t.Fatalf("%s: said stopped, but the job is %s", say, st)
			}
			// The savepoint is complete: its manifest is written last.
			loc := strings.TrimSpace(r.stdout)
			if _, err := os.Stat(strings.TrimPrefix(loc, "file://")); !strings.HasPrefix(loc, "file://") || err != nil {
				t.Fatalf("%s: savepoint %q has no manifest: %v", say, loc, err)
			}
		case 3:
			if r.stdout != "" || !strings.Contains(r.stderr, "no savepoint was taken") || strings.Contains(r.stderr, "stopped") {
				t.Fatalf("%s: exit 3 must say no savepoint was taken, print no location and not claim a stop (stdout %q)", say, r.stdout)
			}
			if strings.Contains(r.stderr, "keeps running") || strings.Contains(r.stderr, "RESTARTING") {
				// As said: the job comes back and runs, it was not stopped.
				waitFor(t, 30*time.Second, "the job to run again", func() bool { return jobStatusOf(t, api, id).State == "RUNNING" })
			}
			if st := jobStatusOf(t, api, id).State; st == "CANCELED" || st == "CANCELING" {
				t.Fatalf("%s: no savepoint, yet the job is %s", say, st)
			}
			weir(t, 10*time.Second, "cancel", "--coordinator", api, id)
		case 4:
			if !strings.Contains(r.stderr, "was taken, but job "+id) {
				t.Fatalf("%s: exit 4 without saying the savepoint was taken but the job did not stop", say)
			}
			if st := jobStatusOf(t, api, id).State; st == "CANCELED" {
				t.Fatalf("%s: said not stopped, but the job is CANCELED", say)
			}
			weir(t, 10*time.Second, "cancel", "--coordinator", api, id)
		default:
			t.Fatalf("%s", say)
		}
		waitFor(t, 30*time.Second, "the job to end", func() bool {
			st := jobStatusOf(t, api, id).State
			return st == "CANCELED" || st == "FAILED" || st == "FINISHED"
		})
	}
	t.Logf("outcomes by exit code: %v", outcomes)
}
