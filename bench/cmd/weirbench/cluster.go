package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// cluster is a weir cluster of separate processes on this machine: an etcd,
// a coordinator and workers, as one would run on several machines.
type cluster struct {
	weir    string // the weir binary
	api     string
	dir     string
	env     []string
	daemons []*daemon
	workers map[string]*daemon // by worker id
}

type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startCluster starts etcd, a coordinator and n workers of the given slots
// under dir; env is added to the workers' environment (and so their job
// processes'), coordinatorFlags to the coordinator's command line.
func startCluster(weir, dir string, workers, slots int, env, coordinatorFlags []string) (*cluster, error) {
	c := &cluster{weir: weir, dir: dir, env: env, workers: map[string]*daemon{}}
	addrs := make([]string, 4)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	client, peer, api, httpAddr := addrs[0], addrs[1], addrs[2], addrs[3]
	c.api = api
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
		d, err := c.start(s[0], s[1:]...)
		if err != nil {
			c.stop()
			return nil, err
		}
		if s[1] == "worker" {
			c.workers[s[0]] = d
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ws []struct{ ID string }
		if out, err := c.cli(10*time.Second, "workers", "-o", "json"); err == nil && json.Unmarshal([]byte(out), &ws) == nil && len(ws) == workers {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("cluster under %s: %d workers did not register within a minute (logs: %s)", dir, workers, filepath.Join(dir, "*.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *cluster) start(name string, args ...string) (*daemon, error) {
	log, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.weir, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), c.env...)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(d.done) }()
	c.daemons = append(c.daemons, d)
	return d, nil
}

// kill kills a worker with SIGKILL, as a machine failure would.
func (c *cluster) kill(worker string) error {
	d, ok := c.workers[worker]
	if !ok {
		return fmt.Errorf("no worker %q", worker)
	}
	return d.cmd.Process.Signal(syscall.SIGKILL)
}

// stop stops the daemons in reverse order of start.
func (c *cluster) stop() {
	for i := len(c.daemons) - 1; i >= 0; i-- {
		d := c.daemons[i]
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	c.daemons = nil
}

// cli runs a weir client command against the cluster and returns stdout.
func (c *cluster) cli(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The address goes right after the subcommand: after "--" it would be
	// the job's argument.
	full := append([]string{args[0], "--coordinator", c.api}, args[1:]...)
	cmd := exec.CommandContext(ctx, c.weir, full...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("weir %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// jobStatus is the part of `weir status -o json` the harness reads.
type jobStatus struct {
	State    string `json:"state"`
	Error    string `json:"error"`
	Attempt  int64  `json:"attempt"`
	Restarts int32  `json:"restarts"`
	Tasks    []struct {
		Worker string `json:"worker"`
		PID    int32  `json:"pid"`
		State  string `json:"state"`
	} `json:"tasks"`
}

func (c *cluster) status(id string) (jobStatus, error) {
	var s jobStatus
	out, err := c.cli(10*time.Second, "status", id, "-o", "json")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// checkpoint is one row of `weir checkpoints -o json`.
type checkpoint struct {
	ID          int64  `json:"id"`
	Status      string `json:"status"`
	DurationMs  int64  `json:"duration_ms"`
	SizeBytes   int64  `json:"size_bytes"`
	Incremental int64  `json:"incremental_bytes"`
	AlignmentMs int64  `json:"alignment_ms"`
}

func (c *cluster) checkpoints(id string) ([]checkpoint, error) {
	var cps []checkpoint
	out, err := c.cli(10*time.Second, "checkpoints", id, "-o", "json")
	if err != nil {
		return nil, err
	}
	return cps, json.Unmarshal([]byte(out), &cps)
}

// submit starts a job and returns its id.
func (c *cluster) submit(name, bin string, p int, checkpointEvery time.Duration, args ...string) (string, error) {
	out, err := c.cli(2*time.Minute, append([]string{"run", "--detach", "--name", name, "-p", fmt.Sprint(p),
		"--checkpoint-interval", checkpointEvery.String(), bin, "--"}, args...)...)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// wait polls the job until it ends; onPoll sees every status.
func (c *cluster) wait(id string, timeout time.Duration, onPoll func(jobStatus)) (jobStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.status(id)
		if err == nil {
			if onPoll != nil {
				onPoll(s)
			}
			switch s.State {
			case "FINISHED":
				return s, nil
			case "FAILED", "CANCELED":
				return s, fmt.Errorf("job %s ended %s: %s", id, s.State, s.Error)
			}
		}
		if time.Now().After(deadline) {
			c.cli(10*time.Second, "cancel", id)
			return s, fmt.Errorf("job %s did not finish within %v (state %s)", id, timeout, s.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
