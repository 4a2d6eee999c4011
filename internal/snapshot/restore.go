package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/pebblestate"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Restore opens the subtask's DB at dir holding exactly the keys of key
// groups [kgStart, kgEnd) found in snaps, the snapshots of one checkpoint
// (those whose key-group ranges do not overlap [kgStart, kgEnd) are
// ignored). dir must not exist or be empty; opts.Dir is ignored.
//
// When one snapshot's range equals [kgStart, kgEnd) (same parallelism), its
// files are downloaded into dir and opened as they are. Otherwise (rescale)
// each overlapping snapshot is downloaded into a temporary directory next
// to dir and the keys whose first two bytes, the big-endian key group, fall
// in [kgStart, kgEnd) are copied into a fresh DB at dir.
//
// A missing or corrupt file yields an error wrapping ErrCorrupt. On any
// error nothing is left at dir or in temporary directories.
func Restore(ctx context.Context, u *Uploader, snaps []*weirv1.SubtaskSnapshot, kgStart, kgEnd int, dir string, opts pebblestate.Options) (_ *pebblestate.DB, err error) {
	if kgStart < 0 || kgStart >= kgEnd || kgEnd > keygroup.MaxLimit {
		return nil, fmt.Errorf("snapshot: restore: bad key-group range [%d, %d)", kgStart, kgEnd)
	}
	var overlapping []*weirv1.SubtaskSnapshot
	for _, s := range snaps {
		if int(s.KeyGroupStart) < kgEnd && kgStart < int(s.KeyGroupEnd) {
			overlapping = append(overlapping, s)
		}
	}
	if err := checkDisjoint(overlapping); err != nil {
		return nil, err
	}
	if err := checkEmptyDir(dir); err != nil {
		return nil, err
	}
	var db *pebblestate.DB
	defer func() {
		if err != nil {
			if db != nil {
				db.Close()
			}
			os.RemoveAll(dir)
		}
	}()
	opts.Dir = dir

	if len(overlapping) == 1 && int(overlapping[0].KeyGroupStart) == kgStart && int(overlapping[0].KeyGroupEnd) == kgEnd {
		if err := u.Download(ctx, overlapping[0].Files, dir); err != nil {
			return nil, err
		}
		return pebblestate.Open(opts)
	}

	db, err = pebblestate.Open(opts)
	if err != nil {
		return nil, err
	}
	// Key groups are the first two bytes of every key, big endian; and
	// keygroup.MaxLimit keeps kgEnd within two bytes.
	lower := []byte{byte(kgStart >> 8), byte(kgStart)}
	upper := []byte{byte(kgEnd >> 8), byte(kgEnd)}
	for _, s := range overlapping {
		if len(s.Files) == 0 {
			continue // a subtask without keyed state
		}
		if err := copySnapshot(ctx, u, s, dir, db, lower, upper); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// copySnapshot downloads s next to dir and copies its keys in [lower,
// upper) into db.
func copySnapshot(ctx context.Context, u *Uploader, s *weirv1.SubtaskSnapshot, dir string, db *pebblestate.DB, lower, upper []byte) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".restore-")
	if err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := u.Download(ctx, s.Files, tmp); err != nil {
		return err
	}
	if _, err := db.CopyRange(tmp, lower, upper); err != nil {
		return fmt.Errorf("snapshot: restore from subtask %d's key groups [%d, %d): %w", s.Subtask, s.KeyGroupStart, s.KeyGroupEnd, err)
	}
	return nil
}

func checkDisjoint(snaps []*weirv1.SubtaskSnapshot) error {
	s := slices.Clone(snaps)
	slices.SortFunc(s, func(a, b *weirv1.SubtaskSnapshot) int { return int(a.KeyGroupStart) - int(b.KeyGroupStart) })
	for i := 1; i < len(s); i++ {
		if s[i].KeyGroupStart < s[i-1].KeyGroupEnd {
			return fmt.Errorf("snapshot: restore: snapshots of key groups [%d, %d) and [%d, %d) overlap",
				s[i-1].KeyGroupStart, s[i-1].KeyGroupEnd, s[i].KeyGroupStart, s[i].KeyGroupEnd)
		}
	}
	return nil
}

// checkEmptyDir accepts a missing or empty directory: a restore must not
// mix its files with a previous attempt's.
func checkEmptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != io.EOF {
		if err == nil {
			return fmt.Errorf("snapshot: restore: %s is not empty", dir)
		}
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	return nil
}

// Objects returns the object keys the snapshots reference, sorted and
// without repeats, for the coordinator's reference counting.
func Objects(snaps []*weirv1.SubtaskSnapshot) []string {
	var keys []string
	for _, s := range snaps {
		for _, f := range s.Files {
			keys = append(keys, f.Object)
		}
		if in := s.GetInFlight(); in != nil {
			keys = append(keys, in.Object)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// Delete removes the objects, ignoring those already gone. It tries every
// key and returns the errors of those it could not delete.
func Delete(ctx context.Context, bucket *blob.Bucket, keys []string) error {
	errs := make([]error, len(keys))
	// forEach stops at the first error; collecting them lets it go on.
	_ = forEach(ctx, len(keys), func(ctx context.Context, i int) error {
		if err := bucket.Delete(ctx, keys[i]); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs[i] = fmt.Errorf("snapshot: delete %s: %w", keys[i], err)
		}
		return nil
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}
