package cluster

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"
)

// Simple is a cluster of one etcd, one coordinator with a file store, and
// workers, each its own process.
type Simple struct {
	Client
	Dir     string
	daemons []*Daemon
	Workers map[string]*Daemon // by worker id
}

// StartSimple starts etcd, a coordinator and n workers of the given slots
// under dir; env is added to the daemons' environment (and so the job
// processes'), coordinatorFlags to the coordinator's command line. It
// returns once every worker has registered.
func StartSimple(weir, dir string, workers, slots int, env, coordinatorFlags []string) (*Simple, error) {
	addrs, err := FreeAddrs(4)
	if err != nil {
		return nil, err
	}
	client, peer, api, httpAddr := addrs[0], addrs[1], addrs[2], addrs[3]
	c := &Simple{Client: Client{Weir: weir, API: api}, Dir: dir, Workers: map[string]*Daemon{}}
	steps := [][]string{
		{"etcd", "etcd", "--data-dir", filepath.Join(dir, "etcd"), "--client", client, "--peer", peer},
		append([]string{"coordinator", "coordinator", "--etcd", client, "--store", "file://" + filepath.Join(dir, "store"), "--api", api, "--http", httpAddr},
			coordinatorFlags...),
	}
	for i := range workers {
		id := fmt.Sprintf("w%d", i+1)
		steps = append(steps, []string{id, "worker", "--etcd", client, "--slots", fmt.Sprint(slots),
			"--data-dir", filepath.Join(dir, id), "--id", id})
	}
	for _, s := range steps {
		d, err := Start(dir, s[0], env, weir, s[1:]...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.daemons = append(c.daemons, d)
		if s[1] == "worker" {
			c.Workers[s[0]] = d
		}
	}
	if err := c.WaitWorkers(workers, time.Minute); err != nil {
		c.Stop()
		return nil, fmt.Errorf("cluster under %s: %w (logs: %s)", dir, err, filepath.Join(dir, "*.log"))
	}
	return c, nil
}

// WaitWorkers waits until `weir workers` lists n workers.
func (c Client) WaitWorkers(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ws []struct{ ID string }
		if out, err := c.CLI(10*time.Second, "workers", "-o", "json"); err == nil && json.Unmarshal([]byte(out), &ws) == nil && len(ws) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d workers did not register within %v", n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill kills a worker with SIGKILL, as a machine failure would.
func (c *Simple) Kill(worker string) error {
	d, ok := c.Workers[worker]
	if !ok {
		return fmt.Errorf("no worker %q", worker)
	}
	d.Kill()
	return nil
}

// Stop stops the daemons in reverse order of start.
func (c *Simple) Stop() {
	for i := len(c.daemons) - 1; i >= 0; i-- {
		c.daemons[i].Stop(10 * time.Second)
	}
	c.daemons = nil
}
