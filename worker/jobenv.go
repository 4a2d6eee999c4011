package worker

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/weir-run/weir/internal/taskenv"
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
