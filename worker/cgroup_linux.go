//go:build linux

package worker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroups places job processes in cgroup v2 groups of their own under the
// worker's cgroup, to enforce their memory limits (memory.max).
type cgroups struct {
	base string // the worker's cgroup directory; jobs go in base/job-*
}

// setupCgroups finds the worker's cgroup v2 and makes it able to hold job
// groups with the memory controller, or says in one line why it cannot.
// The worker moves itself into a leaf (base/worker) first: cgroup v2
// enables controllers for children only of a group without processes.
func setupCgroups() (*cgroups, string) {
	rel, err := ownCgroup()
	if err != nil {
		return nil, err.Error()
	}
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err.Error()
	}
	base := filepath.Join(mount, rel)
	ctrl, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Sprintf("cannot read the worker's cgroup %s: %v", base, err)
	}
	if !slices.Contains(strings.Fields(string(ctrl)), "memory") {
		return nil, fmt.Sprintf("the memory controller is not delegated to the worker's cgroup %s (run the worker with a delegated cgroup v2, e.g. systemd Delegate=yes)", base)
	}
	sub, _ := os.ReadFile(filepath.Join(base, "cgroup.subtree_control"))
	if !slices.Contains(strings.Fields(string(sub)), "memory") {
		leaf := filepath.Join(base, "worker")
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Sprintf("cgroup %s is not writable: %v", base, err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return nil, fmt.Sprintf("cannot move the worker into %s: %v", leaf, err)
		}
		if err := os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
			return nil, fmt.Sprintf("cannot enable the memory controller in %s (other processes in it?): %v", base, err)
		}
	}
	return &cgroups{base: base}, ""
}

// create makes the group of one job process with the memory limit and
// returns it open, for the process to start in (CLONE_INTO_CGROUP).
func (c *cgroups) create(name string, limit int64) (*os.File, string, error) {
	dir := filepath.Join(c.base, "job-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, "", fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		os.Remove(dir)
		return nil, "", fmt.Errorf("set memory.max in %s: %w", dir, err)
	}
	// Without swap, the limit is the memory the job may use; and the whole
	// group goes at once, never half a job.
	_ = os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0)
	_ = os.WriteFile(filepath.Join(dir, "memory.oom.group"), []byte("1"), 0)
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, "", err
	}
	return f, dir, nil
}

// oomKilled reports whether the kernel killed a process of the group in
// dir for exceeding its memory.max.
func oomKilled(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "memory.events"))
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == "oom_kill" {
			n, _ := strconv.Atoi(v)
			return n > 0
		}
	}
	return false
}

// ownCgroup is the worker's cgroup v2 path ("0::/path" in /proc/self/cgroup).
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("cannot read /proc/self/cgroup: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("the worker is not in a cgroup v2 hierarchy")
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("cannot read /proc/self/mountinfo: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(l, " - ")
		f := strings.Fields(pre)
		if ok && len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return f[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}
