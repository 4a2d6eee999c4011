package worker

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/weir-run/weir/internal/taskenv"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A job process's environment is built, not inherited: the worker's own
// holds what a job must not see (its TLS key paths, tokens, cloud
// credentials other than the store's). What passes:
//
//   - passVars and the variables starting with one of passPrefixes, from
//     the worker's environment, where set;
//   - HOME and TMPDIR, pointing into the job's private directory;
//   - the task variables (taskenv.Task.Env).
//
// AWS_* passes because a job process reads and writes its checkpoints in
// the object store itself, with the worker's store credentials (see
// docs/security.md, "Not yet protected").
var (
	passVars     = []string{"PATH", "TZ", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR", taskenv.CPUProfileDir}
	passPrefixes = []string{"LC_", "AWS_"}
)

// jobEnv is the environment of a job process whose private directory is
// dir, given the worker's environment and the task's variables.
func jobEnv(worker []string, dir string, task []string) []string {
	env := []string{"HOME=" + dir, "TMPDIR=" + filepath.Join(dir, "tmp")}
	for _, kv := range worker {
		k, _, ok := strings.Cut(kv, "=")
		if ok && passes(k) {
			env = append(env, kv)
		}
	}
	// The store's shared credentials and config files are found through
	// HOME, which is the job's now: name the worker's explicitly.
	if home := lookup(worker, "HOME"); home != "" {
		for _, f := range []struct{ env, name string }{
			{"AWS_SHARED_CREDENTIALS_FILE", "credentials"}, {"AWS_CONFIG_FILE", "config"},
		} {
			p := filepath.Join(home, ".aws", f.name)
			if lookup(worker, f.env) == "" && exists(p) {
				env = append(env, f.env+"="+p)
			}
		}
	}
	return append(env, task...)
}

// DefaultGOGC is a job process's GOGC unless its job sets one (weir run
// --gogc). A stream job's live heap is mostly its buffers and state cache,
// small next to what it allocates per record: at Go's 100 the collector ran
// often enough that a q8 run measured about 25% less CPU per event at 400,
// and 26 to 40% more throughput per core; rechecked on 2026-12-06 with
// weirbench --gogc (q8, p=1, 1M events, one run each on a loaded machine):
// 1.06M, 1.19M and 1.28M events per core at 100, 200 and 400. The heap may
// then grow to five times the live data, so it is the default only where
// GOMEMLIMIT caps the heap (the job has a memory limit or sets one, or the
// worker has memory for its slots, as it has by default): without a cap a
// process keeps Go's own 100, and garbage a peer makes it allocate (a
// stream of huge frames refused) is collected soon.
const DefaultGOGC = 400

// memLimitShare is the part of a process's memory limit (weir run --memory)
// its Go heap may use before the collector works harder (GOMEMLIMIT): the
// rest is for goroutine stacks and the runtime's own memory, so that the
// process collects harder rather than hits the cgroup's memory.max and is
// killed.
const memLimitShare = 0.9

// goRuntimeEnv is the GOGC and GOMEMLIMIT of a job process: the job's own
// (gogc, gomemlimit, from weir run) where set, else a share of its memory
// limit (weir run --memory) or, without one, of its slots' memory (the
// worker's --memory split among its slots), and under such a cap
// DefaultGOGC (Go's defaults without one). The worker's own GOGC and
// GOMEMLIMIT never pass (jobEnv): they tune the worker, not the job.
func goRuntimeEnv(gogc int32, gomemlimit, memoryLimit, slotsMemory int64) []string {
	if memoryLimit == 0 {
		memoryLimit = slotsMemory
	}
	var env []string
	switch {
	case gogc > 0:
		env = append(env, "GOGC="+strconv.Itoa(int(gogc)))
	case gogc < 0:
		env = append(env, "GOGC=off")
	case gomemlimit > 0 || (gomemlimit == 0 && memoryLimit > 0):
		env = append(env, "GOGC="+strconv.Itoa(DefaultGOGC))
	}
	switch {
	case gomemlimit > 0:
		env = append(env, "GOMEMLIMIT="+strconv.FormatInt(gomemlimit, 10))
	case gomemlimit == 0 && memoryLimit > 0:
		env = append(env, "GOMEMLIMIT="+strconv.FormatInt(int64(float64(memoryLimit)*memLimitShare), 10))
	}
	return env
}

// slotsMemory is the memory of the slots a process with these subtasks
// occupies: with slot sharing a slot hosts one subtask of each vertex, so
// as many slots as its largest vertex has subtasks here.
func (c Config) slotsMemory(subtasks []*weirv1.SubtaskRef) int64 {
	if c.Memory <= 0 || c.Slots < 1 {
		return 0
	}
	per := map[int32]int64{}
	var slots int64
	for _, s := range subtasks {
		per[s.VertexId]++
		slots = max(slots, per[s.VertexId])
	}
	return c.Memory / int64(c.Slots) * max(slots, 1)
}

func passes(k string) bool {
	for _, v := range passVars {
		if k == v {
			return true
		}
	}
	for _, p := range passPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// lookup is k's value in env, or "".
func lookup(env []string, k string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
