package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Client runs weir CLI commands against a cluster's coordinators.
type Client struct {
	Weir string // the weir binary
	API  string // --coordinator: one address or several, comma-separated
}

// CLI runs a weir client command and returns its stdout.
func (c Client) CLI(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd, stderr := c.command(ctx, args...)
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("weir %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// command is the weir client command args against c's coordinators, its
// stderr collected.
func (c Client) command(ctx context.Context, args ...string) (*exec.Cmd, *strings.Builder) {
	// The address goes right after the subcommand: after "--" it would be
	// the job's argument.
	full := append([]string{args[0], "--coordinator", c.API}, args[1:]...)
	cmd := exec.CommandContext(ctx, c.Weir, full...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// JobStatus is the part of `weir status -o json` the harnesses read.
type JobStatus struct {
	State    string `json:"state"`
	Error    string `json:"error"`
	Attempt  int64  `json:"attempt"`
	Restarts int32  `json:"restarts"`
	Tasks    []struct {
		Worker string `json:"worker"`
		PID    int32  `json:"pid"`
		State  string `json:"state"`
		// Region is the pipelined region the task is in; Attempt the
		// attempt it runs (regions restart alone).
		Region  int32 `json:"region"`
		Attempt int64 `json:"attempt"`
	} `json:"tasks"`
}

// AllRunning reports whether the job and each of its tasks is RUNNING.
func (s JobStatus) AllRunning() bool {
	if s.State != "RUNNING" || len(s.Tasks) == 0 {
		return false
	}
	for _, t := range s.Tasks {
		if t.State != "RUNNING" {
			return false
		}
	}
	return true
}

// Status is `weir status ID`.
func (c Client) Status(id string) (JobStatus, error) {
	var s JobStatus
	out, err := c.CLI(10*time.Second, "status", id, "-o", "json")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// Checkpoint is one row of `weir checkpoints -o json`.
type Checkpoint struct {
	ID          int64  `json:"id"`
	Status      string `json:"status"`
	DurationMs  int64  `json:"duration_ms"`
	SizeBytes   int64  `json:"size_bytes"`
	Incremental int64  `json:"incremental_bytes"`
	AlignmentMs int64  `json:"alignment_ms"`
}

// Checkpoints is `weir checkpoints ID`, newest first.
func (c Client) Checkpoints(id string) ([]Checkpoint, error) {
	var cps []Checkpoint
	out, err := c.CLI(10*time.Second, "checkpoints", id, "-o", "json")
	if err != nil {
		return nil, err
	}
	return cps, json.Unmarshal([]byte(out), &cps)
}

// Submit starts a job detached with the given `weir run` flags and returns
// its id.
func (c Client) Submit(runFlags []string, bin string, args ...string) (string, error) {
	full := append(append([]string{"run", "--detach"}, runFlags...), bin, "--")
	out, err := c.CLI(2*time.Minute, append(full, args...)...)
	if err != nil {
		return "", err
	}
	return lastLine(out), nil
}

// Run submits a job with the given `weir run` flags and follows it to its
// end as a user does, with an attached `weir run`: one client process asks
// for the job's state over its own connection. (Polling with `weir status`
// would start a process for every look, and on a small machine those take
// CPU from the job being measured.) It returns the job's id; the error says
// how the job ended if not FINISHED. A job that does not end within timeout
// is cancelled.
func (c Client) Run(timeout time.Duration, runFlags []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append(append([]string{"run"}, runFlags...), bin, "--"), args...)
	cmd, stderr := c.command(ctx, full...)
	err := cmd.Run()
	// `weir run` says "submitted job ID" on stderr before it follows the job.
	id := ""
	for l := range strings.Lines(stderr.String()) {
		if rest, ok := strings.CutPrefix(l, "submitted job "); ok {
			id = strings.TrimSpace(rest)
			break
		}
	}
	switch {
	case err == nil && id == "":
		return "", fmt.Errorf("weir run printed no job id: %s", strings.TrimSpace(stderr.String()))
	case err != nil && ctx.Err() != nil && id != "":
		c.CLI(10*time.Second, "cancel", id)
		return id, fmt.Errorf("job %s did not finish within %v", id, timeout)
	case err != nil:
		return id, fmt.Errorf("weir run: %w: %s", err, lastLine(stderr.String()))
	}
	return id, nil
}

// lastLine is s's last non-empty line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Wait polls the job until it ends; onPoll sees every status. A job that
// does not end within timeout is cancelled.
func (c Client) Wait(id string, timeout time.Duration, onPoll func(JobStatus)) (JobStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.Status(id)
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
			c.CLI(10*time.Second, "cancel", id)
			return s, fmt.Errorf("job %s did not finish within %v (state %s)", id, timeout, s.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
