package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/weir-run/weir/internal/pebblestate"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// ErrCorrupt is wrapped by every restore failure caused by a state file
// that is missing or does not match its size or checksum.
var ErrCorrupt = errors.New("snapshot: state file is corrupt or missing")

// Uploader uploads one subtask's checkpoints. It remembers the SST files it
// uploaded or downloaded (by name, size and modification time in the local
// directory, and by object key), so each checkpoint uploads only new ones.
type Uploader struct {
	bucket *blob.Bucket
	shared string

	mu struct {
		sync.Mutex
		// known maps a local SST's identity to its stored file; SST files
		// are immutable, so the identity fixes the content.
		known map[fileID]*weirv1.StateFile
		// stored lists shared objects known to exist in the bucket.
		stored map[string]bool
	}
}

// fileID identifies an SST of one DB instance. Pebble reuses file numbers
// across instances, so the size and hash, not the number, decide sharing:
// the number only saves re-hashing a file already seen.
type fileID struct {
	name string
	size int64
}

// NewUploader returns an uploader whose shared SST objects live under
// sharedPrefix.
func NewUploader(bucket *blob.Bucket, sharedPrefix string) *Uploader {
	u := &Uploader{bucket: bucket, shared: sharedPrefix}
	u.mu.known = make(map[fileID]*weirv1.StateFile)
	u.mu.stored = make(map[string]bool)
	return u
}

// Upload uploads the checkpoint directory dir: SST files content addressed
// under the shared prefix, unless already stored; every other file under
// privatePrefix. With selfContained every file goes under privatePrefix and
// nothing is shared (savepoints). It returns the files sorted by name and
// the bytes uploaded.
func (u *Uploader) Upload(ctx context.Context, dir, privatePrefix string, selfContained bool) ([]*weirv1.StateFile, int64, error) {
	var files []*weirv1.StateFile
	var uploaded int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f, n, err := u.uploadFile(ctx, path, filepath.ToSlash(rel), info.Size(), privatePrefix, selfContained)
		if err != nil {
			return fmt.Errorf("upload %s: %w", rel, err)
		}
		files = append(files, f)
		uploaded += n
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, uploaded, nil
}

func (u *Uploader) uploadFile(ctx context.Context, path, name string, size int64, private string, selfContained bool) (*weirv1.StateFile, int64, error) {
	shared := strings.HasSuffix(name, ".sst") && !selfContained
	if shared {
		u.mu.Lock()
		f := u.mu.known[fileID{name, size}]
		u.mu.Unlock()
		if f != nil {
			return cloneWithName(f, name), 0, nil
		}
	}
	sum, err := hashFile(path)
	if err != nil {
		return nil, 0, err
	}
	f := &weirv1.StateFile{Name: name, Size: size, Sha256: sum, Object: private + name}
	if shared {
		f.Object = u.shared + sum + ".sst"
		u.mu.Lock()
		stored := u.mu.stored[f.Object]
		u.mu.Unlock()
		if !stored {
			if ok, err := u.bucket.Exists(ctx, f.Object); err != nil {
				return nil, 0, err
			} else {
				stored = ok
			}
		}
		if stored {
			u.remember(f)
			return f, 0, nil
		}
	}
	if err := u.put(ctx, path, f.Object); err != nil {
		return nil, 0, err
	}
	if shared {
		u.remember(f)
	}
	return f, size, nil
}

func (u *Uploader) remember(f *weirv1.StateFile) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.mu.known[fileID{f.Name, f.Size}] = f
	u.mu.stored[f.Object] = true
}

func cloneWithName(f *weirv1.StateFile, name string) *weirv1.StateFile {
	return &weirv1.StateFile{Name: name, Object: f.Object, Size: f.Size, Sha256: f.Sha256}
}

func (u *Uploader) put(ctx context.Context, path, key string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := u.bucket.NewWriter(ctx, key, nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, in); err != nil {
		cancel() // abort: nothing becomes visible
		w.Close()
		return err
	}
	return w.Close()
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Download fetches files into dir, verifying each one's size and sha256.
// Downloaded SSTs become known to the uploader, so the next checkpoint does
// not upload them again.
func (u *Uploader) Download(ctx context.Context, files []*weirv1.StateFile, dir string) error {
	return u.fetch(ctx, files, dir, true)
}

// fetch downloads files; remember says they become the DB checkpoints will
// upload from (not so for the temporary copies of a rescale).
func (u *Uploader) fetch(ctx context.Context, files []*weirv1.StateFile, dir string, remember bool) error {
	for _, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := u.download(ctx, f, path); err != nil {
			return err
		}
		if remember && strings.HasSuffix(f.Name, ".sst") && u.shared != "" && strings.HasPrefix(f.Object, u.shared) {
			u.remember(f)
		}
	}
	return nil
}

func (u *Uploader) download(ctx context.Context, f *weirv1.StateFile, path string) error {
	r, err := u.bucket.NewReader(ctx, f.Object, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%w: %s is missing", ErrCorrupt, f.Object)
	} else if err != nil {
		return err
	}
	defer r.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Object, err)
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.Sha256 {
		return fmt.Errorf("%w: %s has %d bytes with sha256 %s, the manifest says %d bytes with %s",
			ErrCorrupt, f.Object, n, hex.EncodeToString(h.Sum(nil))[:12], f.Size, f.Sha256[:min(12, len(f.Sha256))])
	}
	return nil
}

// Restore opens the subtask's DB at dir holding exactly the keys of key
// groups [kgStart, kgEnd) from the overlapping snapshots: directly from the
// one snapshot with that exact range (same parallelism), else by copying
// each snapshot's keys in range into a fresh DB (rescaling).
func Restore(ctx context.Context, u *Uploader, snaps []*weirv1.SubtaskSnapshot, kgStart, kgEnd int, dir string, opts pebblestate.Options) (*pebblestate.DB, error) {
	opts.Dir = dir
	if len(snaps) == 1 && int(snaps[0].KeyGroupStart) == kgStart && int(snaps[0].KeyGroupEnd) == kgEnd {
		if err := u.Download(ctx, snaps[0].Files, dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		return pebblestate.Open(opts)
	}
	db, err := pebblestate.Open(opts)
	if err != nil {
		return nil, err
	}
	lower := binary.BigEndian.AppendUint16(nil, uint16(kgStart))
	var upper []byte
	if kgEnd <= 0xffff {
		upper = binary.BigEndian.AppendUint16(nil, uint16(kgEnd))
	}
	for i, s := range snaps {
		tmp := fmt.Sprintf("%s.restore-%d", dir, i)
		os.RemoveAll(tmp)
		err := u.fetch(ctx, s.Files, tmp, false)
		if err == nil {
			_, err = db.CopyRange(tmp, lower, upper)
		}
		os.RemoveAll(tmp)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("restore from subtask %d's snapshot: %w", s.Subtask, err)
		}
	}
	return db, nil
}

// Objects lists the object keys the snapshots reference, without repeats.
func Objects(snaps []*weirv1.SubtaskSnapshot) []string {
	seen := map[string]bool{}
	var keys []string
	for _, s := range snaps {
		for _, f := range s.Files {
			if !seen[f.Object] {
				seen[f.Object] = true
				keys = append(keys, f.Object)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// Delete removes objects, ignoring those already gone.
func Delete(ctx context.Context, bucket *blob.Bucket, keys []string) error {
	var errs []error
	for _, k := range keys {
		if err := bucket.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
