package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEtcdOutageKillsNothing: etcd unavailable for longer than the leases
// (frozen with SIGSTOP, as a hung or partitioned member) only pauses the
// leader's decisions; the running job keeps its attempt, and checkpoints
// complete again once etcd is back; the daemons log the outage.
func TestEtcdOutageKillsNothing(t *testing.T) {
	c := startCluster(t, 2, 2)
	id := runDetached(t, c.api, "-p", "2", "--checkpoint-interval", "500ms", bins.keyedcount, "--",
		"--events", "1000000000", "--keys", "50", "--rate", "2000", "--output", t.TempDir())
	waitFor(t, 30*time.Second, "a completed checkpoint", func() bool {
		return len(completed(checkpointsOf(t, c.api, id))) >= 1
	})
	c.etcdD.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(12 * time.Second) // past --worker-timeout (5 s) and the leader's lease (2 s)
	c.etcdD.cmd.Process.Signal(syscall.SIGCONT)
	before := len(completed(checkpointsOf(t, c.api, id)))
	waitFor(t, 30*time.Second, "checkpoints completing again", func() bool {
		return len(completed(checkpointsOf(t, c.api, id))) > before+1
	})
	if st := jobStatusOf(t, c.api, id); st.Attempt != 1 || st.State != "RUNNING" {
		log := c.coord.out.String()
		var lines []string
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") || strings.Contains(l, "job state") || strings.Contains(l, "lost") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("after the etcd outage the job is %s at attempt %d, want RUNNING at attempt 1; coordinator:\n%s",
			st.State, st.Attempt, strings.Join(lines, "\n"))
	}
	// The daemons said why nothing was decided meanwhile.
	for name, d := range map[string]*daemon{"coordinator": c.coord, "worker w1": c.workers["w1"]} {
		waitFor(t, 15*time.Second, "the "+name+" to log the etcd outage and its end", func() bool {
			log := d.out.String()
			return strings.Contains(log, "etcd unreachable") && strings.Contains(log, "etcd reachable again")
		})
	}
	weir(t, 30*time.Second, "cancel", "--coordinator", c.api, id)
}
