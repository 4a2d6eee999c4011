package chaos

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// jobProcessPrefix starts a job process's argv[0] (worker/worker.go names
// it weir-job-<sha256 prefix>).
const jobProcessPrefix = "weir-job-"

// becomeSubreaper makes this process the reaper of its orphaned
// descendants: a job process whose worker died without it is then a child
// of the campaign, where orphans finds it.
func becomeSubreaper() error { return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }

// orphans lists the live job processes that have lost their worker (they
// are this process's children now), reaping those that have exited.
func orphans() []string {
	self := os.Getpid()
	var live []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		// comm (at most 15 bytes) is argv[0]'s base name.
		if comm := s[strings.IndexByte(s, '(')+1 : strings.LastIndexByte(s, ')')]; !strings.HasPrefix(comm, jobProcessPrefix) {
			continue
		}
		if f[0] == "Z" {
			// Exited: reap it. The campaign's own children are reaped by
			// os/exec; none of them is a job process.
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			continue
		}
		live = append(live, fmt.Sprintf("pid %d", pid))
	}
	return live
}

// rssOf is a process's resident set in bytes (0 if it is gone).
func rssOf(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// rssSampler records the largest RSS of every daemon, once a second.
type rssSampler struct {
	t    *topology
	mu   sync.Mutex
	max  map[string]int64
	stop chan struct{}
	done chan struct{}
}

func startRSS(t *topology) *rssSampler {
	s := &rssSampler{t: t, max: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	for name, d := range s.t.daemons() {
		if r := rssOf(d.Pid()); r > 0 {
			s.mu.Lock()
			s.max[name] = max(s.max[name], r)
			s.mu.Unlock()
		}
	}
}

// end stops sampling and returns the maxima by daemon name.
func (s *rssSampler) end() map[string]int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}
