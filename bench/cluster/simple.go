package cluster

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
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

// SimpleConfig is the cluster StartSimple starts.
type SimpleConfig struct {
	Workers, Slots int
	// Env is added to the daemons' environment (and so the job
	// processes').
	Env []string
	// CoordinatorFlags are added to the coordinator's command line.
	CoordinatorFlags []string
	// PinWorkers confines worker i, and so the job processes it starts, to
	// the i-th CPU this process may run on (taskset): each worker has a
	// core of its own, as if it were a machine of its own, and its Go
	// runtimes see one CPU. It needs as many CPUs as workers.
	PinWorkers bool
}

// StartSimple starts etcd, a coordinator and cfg's workers under dir. It
// returns once every worker has registered.
func StartSimple(weir, dir string, cfg SimpleConfig) (*Simple, error) {
	var cpus []int
	if cfg.PinWorkers {
		var err error
		if cpus, err = pinnableCPUs(cfg.Workers); err != nil {
			return nil, err
		}
	}
	addrs, err := FreeAddrs(4)
	if err != nil {
		return nil, err
	}
	client, peer, api, httpAddr := addrs[0], addrs[1], addrs[2], addrs[3]
	c := &Simple{Client: Client{Weir: weir, API: api}, Dir: dir, Workers: map[string]*Daemon{}}
	type step struct {
		name string
		args []string // of weir
		cpu  int      // -1: any
	}
	steps := []step{
		{"etcd", []string{"etcd", "--data-dir", filepath.Join(dir, "etcd"), "--client", client, "--peer", peer}, -1},
		{"coordinator", append([]string{"coordinator", "--etcd", client, "--store", "file://" + filepath.Join(dir, "store"), "--api", api, "--http", httpAddr},
			cfg.CoordinatorFlags...), -1},
	}
	for i := range cfg.Workers {
		id := fmt.Sprintf("w%d", i+1)
		s := step{id, []string{"worker", "--etcd", client, "--slots", fmt.Sprint(cfg.Slots), "--data-dir", filepath.Join(dir, id), "--id", id}, -1}
		if cpus != nil {
			s.cpu = cpus[i]
		}
		steps = append(steps, s)
	}
	for _, s := range steps {
		bin, args := weir, s.args
		if s.cpu >= 0 {
			bin, args = "taskset", append([]string{"--cpu-list", strconv.Itoa(s.cpu), weir}, args...)
		}
		d, err := Start(dir, s.name, cfg.Env, bin, args...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.daemons = append(c.daemons, d)
		if s.args[0] == "worker" {
			c.Workers[s.name] = d
		}
	}
	if err := c.WaitWorkers(cfg.Workers, time.Minute); err != nil {
		c.Stop()
		return nil, fmt.Errorf("cluster under %s: %w (logs: %s)", dir, err, filepath.Join(dir, "*.log"))
	}
	return c, nil
}

// CanPinWorkers says why n workers cannot each be confined to a CPU of
// their own here (SimpleConfig.PinWorkers), or nil if they can.
func CanPinWorkers(n int) error {
	_, err := pinnableCPUs(n)
	return err
}

// pinnableCPUs lists the CPUs n workers may each be confined to, or says
// why they cannot be.
func pinnableCPUs(n int) ([]int, error) {
	cpus, err := usableCPUs()
	if err != nil {
		return nil, err
	}
	if len(cpus) < n {
		return nil, fmt.Errorf("pinning %d workers to a CPU each needs %d CPUs; this process may use %d", n, n, len(cpus))
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return nil, fmt.Errorf("pinning workers to CPUs needs taskset (Debian's util-linux): %w", err)
	}
	return cpus, nil
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
