package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/weir-run/weir/internal/filehash"
	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/sealing"
	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// ErrCorrupt is returned (wrapped, naming the object) when a state file is
// missing from the store or does not match its recorded size and sha256.
// The checkpoint cannot be restored; an older one may.
var ErrCorrupt = errors.New("snapshot: state file is corrupt or missing")

// transfers is how many files one Upload, Download or Delete moves at a
// time. Object stores reward concurrency; the local side is a page cache.
const transfers = 4

// Uploader uploads the checkpoints of one subtask. It is safe for
// concurrent use, so an upload may overlap the next checkpoint's.
type Uploader struct {
	bucket *blob.Bucket
	shared string
	abort  AbortFunc // set before the first Upload
	// key seals what is uploaded and opens what is downloaded; nil for a
	// cluster that does not encrypt state at rest.
	key *sealing.JobKey

	mu struct {
		sync.Mutex
		// known holds shared object keys that exist in the bucket because
		// this Uploader uploaded or downloaded them.
		known map[string]struct{}
	}
}

// AbortFunc cleans up what the store may have kept of a write of key
// whose Close failed with err (objstore.Store.CleanUpFailedWrite aborts S3
// multipart uploads): the write was aborted, or its context was cancelled
// while Close waited for the last parts.
type AbortFunc func(ctx context.Context, key string, err error)

// OnAbort sets how failed uploads are cleaned up; by default not at all.
func (u *Uploader) OnAbort(fn AbortFunc) { u.abort = fn }

// Seal makes the Uploader encrypt every file it uploads with key and
// decrypt (and authenticate) every file it downloads, and name shared
// tables by a keyed hash of their content. Call it before the first
// Upload; nil seals nothing.
func (u *Uploader) Seal(key *sealing.JobKey) *Uploader {
	u.key = key
	return u
}

// NewUploader returns an Uploader that puts shared tables under
// sharedPrefix, a storelayout.Shared prefix ("checkpoints/<job>/shared/").
func NewUploader(bucket *blob.Bucket, sharedPrefix string) *Uploader {
	u := &Uploader{bucket: bucket, shared: sharedPrefix}
	u.mu.known = make(map[string]struct{})
	return u
}

// isShared reports whether a checkpoint file is an immutable Pebble table,
// stored once by content.
func isShared(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}

// sharedObject is the content-addressed key of a table.
func (u *Uploader) sharedObject(name, sha string) string {
	if u.key != nil {
		sum, _ := hex.DecodeString(sha) // callers checked it is SHA-256 hex
		sha = u.key.ContentName(sum)
	}
	return storelayout.SharedFile(u.shared, sha, filepath.Ext(name))
}

func (u *Uploader) isKnown(object string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.mu.known[object]
	return ok
}

func (u *Uploader) remember(object string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.mu.known[object] = struct{}{}
}

// Upload uploads the checkpoint directory dir. Tables go to the shared
// prefix by content and only if new; every other file goes to
// privatePrefix+name. With selfContained (savepoints) every file goes to
// privatePrefix+name and nothing is shared. It returns each file's
// StateFile, sorted by name, and the bytes it actually uploaded.
//
// dir must not change during the upload; a file whose content changes
// between hashing and uploading fails the upload.
func (u *Uploader) Upload(ctx context.Context, dir, privatePrefix string, selfContained bool) (files []*weirv1.StateFile, uploaded int64, err error) {
	names, err := listFiles(dir)
	if err != nil {
		return nil, 0, err
	}
	files = make([]*weirv1.StateFile, len(names))
	var total atomic.Int64
	err = forEach(ctx, len(names), func(ctx context.Context, i int) error {
		name := names[i]
		path := filepath.Join(dir, filepath.FromSlash(name))
		sha, size, err := filehash.SHA256(path)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		f := &weirv1.StateFile{Name: name, Size: size, Sha256: sha}
		files[i] = f
		if selfContained || !isShared(name) {
			f.Object = privatePrefix + name
			// A retried checkpoint rewrites its own private files.
			n, err := u.put(ctx, path, f, false)
			total.Add(n)
			return err
		}
		f.Object = u.sharedObject(name, sha)
		if u.isKnown(f.Object) {
			return nil
		}
		ok, err := u.bucket.Exists(ctx, f.Object)
		if err != nil {
			return fmt.Errorf("snapshot: stat %s: %w", f.Object, err)
		}
		if !ok {
			n, err := u.put(ctx, path, f, true)
			if err != nil {
				return err
			}
			total.Add(n)
		}
		u.remember(f.Object)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if !selfContained {
		u.forgetAllBut(files)
	}
	return files, total.Load(), nil
}

// forgetAllBut keeps only the shared objects of files in the known set:
// once a checkpoint no longer references a table, the coordinator may
// delete it, and a later table with the same content must be uploaded
// again.
func (u *Uploader) forgetAllBut(files []*weirv1.StateFile) {
	keep := make(map[string]struct{}, len(files))
	for _, f := range files {
		if strings.HasPrefix(f.Object, u.shared) {
			keep[f.Object] = struct{}{}
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.mu.known = keep
}

// put uploads the file at path as f.Object and returns the bytes written,
// 0 if ifNotExist found the object already there (another subtask uploaded
// the same table). The content is hashed again on the way and must still
// be f's.
// cleanUp runs the abort function, if any, for a write whose Close failed.
func (u *Uploader) cleanUp(ctx context.Context, key string, err error) {
	if u.abort != nil && err != nil {
		u.abort(ctx, key, err)
	}
}

func (u *Uploader) put(ctx context.Context, path string, f *weirv1.StateFile, ifNotExist bool) (int64, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	defer in.Close()
	// Cancelling the writer's context before Close aborts the write.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := u.bucket.NewWriter(wctx, f.Object, &blob.WriterOptions{
		ContentType:                 "application/octet-stream",
		DisableContentTypeDetection: true,
		IfNotExist:                  ifNotExist,
	})
	if err != nil {
		return 0, fmt.Errorf("snapshot: upload %s: %w", f.Object, err)
	}
	h := sha256.New()
	sw, err := u.key.Seal(w, f.Object)
	var n int64
	if err == nil {
		n, err = io.Copy(io.MultiWriter(sw, h), in)
	}
	if err == nil && (n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.Sha256) {
		err = fmt.Errorf("%s changed while it was uploaded", path)
	}
	if err == nil {
		err = sw.Close() // the last segment
	}
	if err != nil {
		cancel()
		// Aborted; the copy error is the one that matters.
		u.cleanUp(ctx, f.Object, w.Close())
		return 0, fmt.Errorf("snapshot: upload %s: %w", f.Object, err)
	}
	if err := w.Close(); err != nil {
		if ifNotExist && gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return 0, nil
		}
		u.cleanUp(ctx, f.Object, err)
		return 0, fmt.Errorf("snapshot: upload %s: %w", f.Object, err)
	}
	return n, nil
}

// Download fetches files into dir, creating it, and verifies each file's
// size and sha256. A missing object or a mismatch yields an error wrapping
// ErrCorrupt that names the object. Downloaded tables from this Uploader's
// shared prefix become known to it, so the next checkpoint does not upload
// them again.
func (u *Uploader) Download(ctx context.Context, files []*weirv1.StateFile, dir string) error {
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		// Names come from a manifest in the store: keep them inside dir.
		if !filepath.IsLocal(filepath.FromSlash(f.Name)) || seen[f.Name] {
			return fmt.Errorf("%w: %s: bad or repeated file name %q", ErrCorrupt, f.Object, f.Name)
		}
		seen[f.Name] = true
		if !objstore.ValidSHA256(f.Sha256) {
			return fmt.Errorf("%w: %s: bad sha256 %q", ErrCorrupt, f.Object, f.Sha256)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return forEach(ctx, len(files), func(ctx context.Context, i int) error {
		f := files[i]
		if err := u.get(ctx, f, filepath.Join(dir, filepath.FromSlash(f.Name))); err != nil {
			return err
		}
		if f.Object == u.sharedObject(f.Name, f.Sha256) && isShared(f.Name) {
			u.remember(f.Object)
		}
		return nil
	})
}

func (u *Uploader) get(ctx context.Context, f *weirv1.StateFile, path string) (err error) {
	r, err := u.bucket.NewReader(ctx, f.Object, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%w: %s (%s) does not exist", ErrCorrupt, f.Object, f.Name)
	}
	if err != nil {
		return fmt.Errorf("snapshot: download %s: %w", f.Object, err)
	}
	defer r.Close()
	plain, err := u.key.Open(r, f.Object)
	if err != nil {
		return u.readErr(f, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("snapshot: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	h := sha256.New()
	// One byte more than recorded, so that a longer object shows.
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(plain, f.Size+1))
	if err != nil {
		return u.readErr(f, err)
	}
	if sha := hex.EncodeToString(h.Sum(nil)); n != f.Size || sha != f.Sha256 {
		if n > f.Size {
			return fmt.Errorf("%w: %s (%s) is longer than its recorded %d bytes", ErrCorrupt, f.Object, f.Name, f.Size)
		}
		return fmt.Errorf("%w: %s (%s) has %d bytes with sha256 %s, want %d bytes with sha256 %s",
			ErrCorrupt, f.Object, f.Name, n, sha, f.Size, f.Sha256)
	}
	return nil
}

// readErr is a download's error: a file that fails authentication is
// corrupt (restore falls back to an older checkpoint), a failed read is
// the store's.
func (u *Uploader) readErr(f *weirv1.StateFile, err error) error {
	if errors.Is(err, sealing.ErrAuthentication) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return fmt.Errorf("snapshot: download %s: %w", f.Object, err)
}

// listFiles returns the regular files under dir as slash-separated
// relative paths, sorted.
func listFiles(dir string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: list %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// forEach calls fn(ctx, i) for i in [0, n) on up to transfers goroutines
// and returns the first error; the first error cancels the ctx the others
// see. It returns when every call has.
func forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(transfers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
