package bincache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrTampered is returned (wrapped) by Exec when the cached file no longer
// hashes to its name and a fresh fetch did not repair it.
var ErrTampered = errors.New("does not match; refusing to run it")

// Executable is a verified copy of a job binary, ready to be executed.
// Close it once the process it was executed as has started.
type Executable struct {
	path  string
	close func() error
}

// Path is what to execute: on Linux /proc/self/fd/N, a sealed in-memory
// copy whose content was hashed as it was copied, so no later write to the
// cache can change what runs.
func (e *Executable) Path() string { return e.path }

// Close releases the copy; a process already started from it keeps running.
func (e *Executable) Close() error { return e.close() }

// Exec returns a verified executable copy of the binary sha, fetching it on
// a miss. The cached file is hashed again on every call, as it is copied:
// a file in the cache that does not hash to its name (replaced or damaged
// since it was verified, even at the same size) is refused with a logged
// one-line error, removed and fetched again; its content never runs.
func (c *Cache) Exec(ctx context.Context, sha string) (*Executable, error) {
	for attempt := 0; ; attempt++ {
		path, err := c.Path(ctx, sha)
		if err != nil {
			return nil, err
		}
		e, err := sealedCopy(path, sha)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		msg := fmt.Sprintf("binary %s in the cache %s", sha, ErrTampered.Error())
		c.logger.Error(msg, "path", path, "err", err)
		c.mu.Lock()
		delete(c.mu.verified, sha)
		c.mu.Unlock()
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, fmt.Errorf("bincache: %s: remove it: %w", msg, rerr)
		}
		if attempt > 0 {
			// Fetched just now and already different: someone keeps
			// writing to the cache.
			return nil, fmt.Errorf("bincache: binary %s in the cache %w (again after a fresh fetch)", sha, ErrTampered)
		}
	}
}
