package bincache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/weir-run/weir/internal/filehash"
	"github.com/weir-run/weir/internal/objstore"
)

var (
	// ErrDigestMismatch is returned (wrapped) by Path when fetched content
	// does not hash to the requested sha256.
	ErrDigestMismatch = errors.New("bincache: content does not match its sha256")
	// ErrInvalidDigest is returned (wrapped) by Path for a sha that is not 64
	// lower-case hex characters; it becomes a file name, so it is checked.
	ErrInvalidDigest = errors.New("bincache: invalid sha256 digest")
)

// Fetcher streams the content of the binary with the given sha256, for
// example from the coordinator or the object store.
//
// Contract: the caller closes the returned reader. The Fetcher need not
// verify the content; the cache does. An error is returned to Path's
// caller wrapped, unchanged in kind.
type Fetcher func(ctx context.Context, sha string) (io.ReadCloser, error)

// tempPrefix marks partial downloads. New removes any left by a worker that
// died mid-fetch.
const tempPrefix = ".fetch-"

// Cache is a directory of executable job binaries named by their sha256.
// It is safe for concurrent use. Only one Cache should use a directory at a
// time.
type Cache struct {
	dir    string
	fetch  Fetcher
	logger *slog.Logger

	mu struct {
		sync.Mutex
		// verified holds the size of each binary whose file has been hashed
		// (or written) by this process.
		verified map[string]int64
		// inflight coalesces concurrent Path calls for one sha.
		inflight map[string]*call
	}
}

type call struct {
	done chan struct{}
	path string
	err  error
}

// New returns a cache in dir, creating dir if needed and removing partial
// downloads left there by an earlier process.
func New(dir string, fetch Fetcher, logger *slog.Logger) (*Cache, error) {
	if fetch == nil {
		return nil, errors.New("bincache: nil Fetcher")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bincache: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("bincache: create %s: %w", abs, err)
	}
	// Private to the worker's user, also when an older worker made it.
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("bincache: %w", err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("bincache: read %s: %w", abs, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			// Best effort: a leftover only wastes space.
			_ = os.Remove(filepath.Join(abs, e.Name()))
		}
	}
	c := &Cache{dir: abs, fetch: fetch, logger: logger}
	c.mu.verified = make(map[string]int64)
	c.mu.inflight = make(map[string]*call)
	return c, nil
}

// Path returns the absolute path of an executable file (mode 0700) whose
// content hashes to sha, fetching it on a miss.
//
// A fetched binary is written to a temporary file in the cache directory,
// verified, and renamed into place, so the returned path never names a
// partial or unverified file. A mismatch yields an error wrapping
// ErrDigestMismatch and leaves nothing behind. Concurrent calls for one
// sha share a single fetch.
func (c *Cache) Path(ctx context.Context, sha string) (string, error) {
	if !objstore.ValidSHA256(sha) {
		return "", fmt.Errorf("%w: %q", ErrInvalidDigest, sha)
	}
	path := filepath.Join(c.dir, sha)
	for {
		c.mu.Lock()
		size, ok := c.mu.verified[sha]
		c.mu.Unlock()
		// The stat is cheap insurance against the file having been removed
		// or replaced since it was verified; Exec hashes it again on every
		// start.
		if ok && c.intact(path, size) {
			return path, nil
		}

		c.mu.Lock()
		if ok {
			delete(c.mu.verified, sha)
		}
		cl, leader := c.mu.inflight[sha], false
		if cl == nil {
			cl, leader = &call{done: make(chan struct{})}, true
			c.mu.inflight[sha] = cl
		}
		c.mu.Unlock()

		if leader {
			cl.path, cl.err = c.load(ctx, sha, path)
			c.mu.Lock()
			delete(c.mu.inflight, sha)
			c.mu.Unlock()
			close(cl.done)
			return cl.path, cl.err
		}

		select {
		case <-ctx.Done():
			return "", fmt.Errorf("bincache: waiting for %s: %w", sha, ctx.Err())
		case <-cl.done:
		}
		// The leader's context is not ours: if only its caller gave up, try
		// again (possibly as the new leader) rather than fail this caller.
		if cl.err != nil && isContextErr(cl.err) && ctx.Err() == nil {
			continue
		}
		return cl.path, cl.err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// intact reports whether the verified file at path still looks like what
// was verified.
func (c *Cache) intact(path string, size int64) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size && fi.Mode().Perm()&0o111 != 0
}

// load makes path hold the verified binary: it reuses a file already on
// disk if it hashes correctly, and fetches otherwise.
func (c *Cache) load(ctx context.Context, sha, path string) (string, error) {
	size, err := hashFile(path, sha)
	switch {
	case err == nil:
		if err := os.Chmod(path, 0o700); err != nil {
			return "", fmt.Errorf("bincache: chmod %s: %w", path, err)
		}
		c.markVerified(sha, size)
		return path, nil
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, ErrDigestMismatch):
		// Logged rather than returned: the refetch below repairs it, but an
		// operator should know the disk or an earlier writer damaged a file.
		c.logger.Warn("cached job binary is corrupt; refetching", "sha256", sha, "path", path, "err", err)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("bincache: remove corrupt %s: %w", path, err)
		}
	default:
		return "", err
	}

	size, err = c.fetchTo(ctx, sha, path)
	if err != nil {
		return "", err
	}
	c.markVerified(sha, size)
	return path, nil
}

func (c *Cache) markVerified(sha string, size int64) {
	c.mu.Lock()
	c.mu.verified[sha] = size
	c.mu.Unlock()
}

// fetchTo downloads sha into a temporary file next to path, verifies it and
// renames it to path.
//
// There is no fsync: after a crash a truncated file is caught by the
// re-verification every new process does before trusting a cached file.
func (c *Cache) fetchTo(ctx context.Context, sha, path string) (size int64, err error) {
	rc, err := c.fetch(ctx, sha)
	if err != nil {
		return 0, fmt.Errorf("bincache: fetch %s: %w", sha, err)
	}
	defer rc.Close()

	tmp, err := os.CreateTemp(c.dir, tempPrefix+sha[:16]+"-*")
	if err != nil {
		return 0, fmt.Errorf("bincache: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), rc)
	if err != nil {
		return 0, fmt.Errorf("bincache: fetch %s: %w", sha, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return 0, fmt.Errorf("%w: fetched %d bytes hashing to %s, want %s", ErrDigestMismatch, size, got, sha)
	}
	// CreateTemp makes the file 0600; chmod is not subject to the umask.
	if err := tmp.Chmod(0o700); err != nil {
		return 0, fmt.Errorf("bincache: %w", err)
	}
	// Close before the file can be executed: exec of a file still open for
	// writing fails with ETXTBSY.
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("bincache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("bincache: %w", err)
	}
	return size, nil
}

// hashFile checks that the file at path hashes to sha. A missing file
// yields an error wrapping fs.ErrNotExist, a wrong one ErrDigestMismatch.
func hashFile(path, sha string) (int64, error) {
	got, n, err := filehash.SHA256(path)
	switch {
	case errors.Is(err, filehash.ErrNotRegular):
		return 0, fmt.Errorf("%w: %s is not a regular file", ErrDigestMismatch, path)
	case err != nil:
		return 0, fmt.Errorf("bincache: %w", err)
	case got != sha:
		return 0, fmt.Errorf("%w: %s (%d bytes) hashes to %s", ErrDigestMismatch, path, n, got)
	}
	return n, nil
}
