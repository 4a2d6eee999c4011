package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/sealing"
)

// storeHas reports whether any object in the bucket contains needle.
func storeHas(t *testing.T, bucket *blob.Bucket, needle string) bool {
	t.Helper()
	it := bucket.List(nil)
	for {
		obj, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := bucket.ReadAll(context.Background(), obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(needle)) {
			return true
		}
	}
}

// TestSealedState: with a job key nothing of the state is readable in the
// store, the state restores (also rescaled) only under the same key, a
// changed table fails authentication naming it, and tables are named by
// a keyed hash, so two jobs name equal tables differently.
func TestSealedState(t *testing.T) {
	ctx := context.Background()
	key, err := sealing.NewJobKey()
	if err != nil {
		t.Fatal(err)
	}
	plainBucket, sealedBucket := buckets(t)["mem"], buckets(t)["file"]
	plainSnaps, all := subtaskState(t, NewUploader(plainBucket, shared), 2, 5_000, "chk-1")
	snaps, _ := subtaskState(t, NewUploader(sealedBucket, shared).Seal(key), 2, 5_000, "chk-1")
	// The needles are there in the clear without a key: the check can fail.
	for _, needle := range []string{"count\x00", "leveldb.BytewiseComparator", "v4999"} {
		if !storeHas(t, plainBucket, needle) {
			t.Fatalf("the plaintext store lacks %q: the needle is useless", needle)
		}
		if storeHas(t, sealedBucket, needle) {
			t.Errorf("the sealed store holds %q in the clear", needle)
		}
	}
	for i, s := range snaps {
		for j, f := range s.Files {
			if plain := plainSnaps[i].Files[j]; plain.Sha256 == f.Sha256 && isShared(f.Name) && plain.Object == f.Object {
				t.Errorf("%s is named by its plain hash", f.Object)
			}
		}
	}

	for _, r := range []struct{ start, end int }{{0, 256}, {0, 512}, {100, 300}} {
		db, err := Restore(ctx, NewUploader(sealedBucket, shared).Seal(key), snaps, r.start, r.end, filepath.Join(t.TempDir(), "r"), pebblestate.Options{})
		if err != nil {
			t.Fatalf("restore [%d, %d): %v", r.start, r.end, err)
		}
		got := contents(t, db)
		db.Close()
		for k, v := range got {
			if all[k] != v {
				t.Fatalf("restored %q = %q, want %q", k, v, all[k])
			}
		}
	}

	other, _ := sealing.NewJobKey()
	_, err = Restore(ctx, NewUploader(sealedBucket, shared).Seal(other), snaps, 0, 512, filepath.Join(t.TempDir(), "r"), pebblestate.Options{})
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, sealing.ErrAuthentication) {
		t.Fatalf("restore under another key: %v, want an authentication failure", err)
	}

	var victim string
	for _, f := range snaps[1].Files {
		if isShared(f.Name) {
			victim = f.Object
		}
	}
	b, _ := sealedBucket.ReadAll(ctx, victim)
	b[len(b)/2] ^= 1
	if err := sealedBucket.WriteAll(ctx, victim, b, nil); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(ctx, NewUploader(sealedBucket, shared).Seal(key), snaps, 0, 512, filepath.Join(t.TempDir(), "r"), pebblestate.Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), victim) {
		t.Fatalf("restore of a changed table: %v, want an authentication failure naming %s", err, victim)
	}
}
