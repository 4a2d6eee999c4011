package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"sync"
)

// The job's secrets (weir run --secret NAME), which a job process receives
// in its assignment and keeps in memory only: never in its environment, its
// arguments or a file, where other programs or a core dump's reader would
// find them more easily.
var secrets struct {
	sync.RWMutex
	m map[string][]byte
}

// SetSecrets sets the secrets Secret answers from. A task-mode process
// sets them from its assignment; tests and local runs may set their own.
func SetSecrets(m map[string][]byte) {
	secrets.Lock()
	defer secrets.Unlock()
	secrets.m = maps.Clone(m)
}

// ErrNoSecret is Secret's error for a name the job was not given.
var ErrNoSecret = errors.New("no such secret")

// Secret returns a copy of the value of the secret name.
func Secret(name string) ([]byte, error) {
	secrets.RLock()
	defer secrets.RUnlock()
	v, ok := secrets.m[name]
	if !ok {
		return nil, fmt.Errorf("secret %q: %w: submit the job with weir run --secret %s (after weir secret set %s)", name, ErrNoSecret, name, name)
	}
	return bytes.Clone(v), nil
}
