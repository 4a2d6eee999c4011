package snapshot_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/s3test"
	"github.com/weir-run/weir/internal/snapshot"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// The checkpoint path against real S3 servers, through the --store URL
// weir is given: s3://bucket?endpoint=http://127.0.0.1:PORT&use_path_style=true&region=us-east-1.
// It is written against the package's exported API only.

var s3Servers = []struct {
	name string
	url  func(testing.TB) string
}{
	{"gofakes3", s3test.Gofakes3},
	{"versitygw", s3test.Versitygw},
}

const (
	s3Shared = "checkpoints/job/shared/"
	// s3KeyGroups is the key groups the state spreads over: [0, 128).
	s3KeyGroups = 128
	s3Keys      = 60_000
)

// s3Key lays out a state key as the SDK does: the key group in two bytes,
// big endian, then the rest.
func s3Key(kg int, i uint64) []byte {
	k := binary.BigEndian.AppendUint16(nil, uint16(kg))
	k = append(k, "op\x00state\x00"...)
	return binary.BigEndian.AppendUint64(k, i)
}

// s3KeyGroup spreads key i over [0, s3KeyGroups).
func s3KeyGroup(i uint64) int { return int(i*7919) % s3KeyGroups }

func s3KeyGroupOf(k string) int { return int(binary.BigEndian.Uint16([]byte(k))) }

// s3Value is 24 bytes that do not compress away, so the tables have a
// realistic size.
func s3Value(i uint64, gen byte) []byte {
	r := rand.NewPCG(i, uint64(gen))
	v := []byte{gen}
	for range 3 {
		v = binary.LittleEndian.AppendUint64(v, r.Uint64())
	}
	return v[:24]
}

func s3OpenDB(t *testing.T, dir string) *pebblestate.DB {
	t.Helper()
	db, err := pebblestate.Open(pebblestate.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func s3Contents(t *testing.T, db *pebblestate.DB) map[string]string {
	t.Helper()
	m := make(map[string]string)
	if err := db.Scan(nil, func(k, v []byte) error {
		m[string(k)] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func s3Checkpoint(t *testing.T, db *pebblestate.DB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ck")
	if err := db.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func s3Upload(t *testing.T, ctx context.Context, u *snapshot.Uploader, dir, private string) ([]*weirv1.StateFile, int64) {
	t.Helper()
	files, n, err := u.Upload(ctx, dir, private, false)
	if err != nil {
		t.Fatalf("Upload %s: %v", private, err)
	}
	return files, n
}

func s3Restore(t *testing.T, ctx context.Context, bucket *blob.Bucket, snaps []*weirv1.SubtaskSnapshot, start, end int) (*pebblestate.DB, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	db, err := snapshot.Restore(ctx, snapshot.NewUploader(bucket, s3Shared), snaps, start, end, dir, pebblestate.Options{})
	if err == nil {
		t.Cleanup(func() { db.Close() })
	}
	return db, err
}

// s3InRange is the part of want in key groups [start, end).
func s3InRange(want map[string]string, start, end int) map[string]string {
	out := make(map[string]string)
	for k, v := range want {
		if g := s3KeyGroupOf(k); g >= start && g < end {
			out[k] = v
		}
	}
	return out
}

// s3SameKeys fails unless got holds exactly want.
func s3SameKeys(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: the expected state is empty; the test is wrong", what)
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("%s: key %x (key group %d) missing; %d keys restored, want %d", what, k, s3KeyGroupOf(k), len(got), len(want))
		}
		if g != v {
			t.Fatalf("%s: key %x = %x, want %x", what, k, g, v)
		}
	}
	if len(got) != len(want) {
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Fatalf("%s: extra key %x (key group %d); %d keys restored, want %d", what, k, s3KeyGroupOf(k), len(got), len(want))
			}
		}
	}
}

func s3ListKeys(t *testing.T, ctx context.Context, bucket *blob.Bucket) []string {
	t.Helper()
	var keys []string
	it := bucket.List(nil)
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		keys = append(keys, obj.Key)
	}
}

func s3TotalSize(files []*weirv1.StateFile) (n int64) {
	for _, f := range files {
		n += f.Size
	}
	return n
}

// TestS3Checkpoints runs a subtask's checkpoint life against each server:
// a full then an incremental upload, a restore at the same key-group range,
// a rescale restore from two snapshots, a restore with a table deleted,
// and the deletion of every object.
func TestS3Checkpoints(t *testing.T) {
	for _, srv := range s3Servers {
		t.Run(srv.name, func(t *testing.T) {
			url := srv.url(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			store, err := objstore.Open(ctx, url)
			if err != nil {
				t.Fatalf("Open(%q): %v", url, err)
			}
			t.Cleanup(func() { store.Close() })
			bucket := store.Bucket()
			var allSnaps []*weirv1.SubtaskSnapshot

			// One subtask owning key groups [0, 128): a full checkpoint,
			// then one after changing 1% of the keys.
			want := make(map[string]string)
			db := s3OpenDB(t, filepath.Join(t.TempDir(), "db"))
			for i := range uint64(s3Keys) {
				k, v := s3Key(s3KeyGroup(i), i), s3Value(i, 0)
				if err := db.Set(k, v); err != nil {
					t.Fatal(err)
				}
				want[string(k)] = string(v)
			}
			u := snapshot.NewUploader(bucket, s3Shared)
			files1, up1 := s3Upload(t, ctx, u, s3Checkpoint(t, db), "chk-1/sub-0/")
			if total := s3TotalSize(files1); up1 != total {
				t.Fatalf("first upload: %d bytes uploaded of %d", up1, total)
			}
			for i := uint64(0); i < s3Keys; i += 100 {
				k, v := s3Key(s3KeyGroup(i), i), s3Value(i, 1)
				if err := db.Set(k, v); err != nil {
					t.Fatal(err)
				}
				want[string(k)] = string(v)
			}
			files2, up2 := s3Upload(t, ctx, u, s3Checkpoint(t, db), "chk-2/sub-0/")
			t.Logf("full checkpoint: %d files, %d bytes uploaded; after 1%% changed: %d files, %d of %d bytes uploaded",
				len(files1), up1, len(files2), up2, s3TotalSize(files2))
			if up2*4 > up1 {
				t.Fatalf("after changing 1%% of keys: uploaded %d bytes, the full checkpoint %d", up2, up1)
			}
			for _, f := range files2 {
				if ok, err := bucket.Exists(ctx, f.Object); err != nil || !ok {
					t.Fatalf("%s (%s) not in the bucket: %v, %v", f.Object, f.Name, ok, err)
				}
			}
			snap2 := &weirv1.SubtaskSnapshot{Subtask: 0, Parallelism: 1, KeyGroupStart: 0, KeyGroupEnd: s3KeyGroups, Files: files2}
			allSnaps = append(allSnaps, &weirv1.SubtaskSnapshot{KeyGroupStart: 0, KeyGroupEnd: s3KeyGroups, Files: files1}, snap2)

			// Same parallelism: the files as they are.
			restored, err := s3Restore(t, ctx, bucket, []*weirv1.SubtaskSnapshot{snap2}, 0, s3KeyGroups)
			if err != nil {
				t.Fatalf("restore [0, %d): %v", s3KeyGroups, err)
			}
			s3SameKeys(t, "same-range restore", s3Contents(t, restored), want)

			// Rescale: two subtasks owning [0, 64) and [64, 128), restored
			// into one owning [0, 128) and one owning [32, 96).
			var halves []*weirv1.SubtaskSnapshot
			for s, r := range [][2]int{{0, 64}, {64, 128}} {
				half := s3OpenDB(t, filepath.Join(t.TempDir(), "db"))
				for k, v := range s3InRange(want, r[0], r[1]) {
					if err := half.Set([]byte(k), []byte(v)); err != nil {
						t.Fatal(err)
					}
				}
				files, _ := s3Upload(t, ctx, u, s3Checkpoint(t, half), fmt.Sprintf("chk-3/sub-%d/", s))
				halves = append(halves, &weirv1.SubtaskSnapshot{
					Subtask: int32(s), Parallelism: 2, KeyGroupStart: int32(r[0]), KeyGroupEnd: int32(r[1]), Files: files,
				})
			}
			allSnaps = append(allSnaps, halves...)
			for _, r := range [][2]int{{0, 128}, {32, 96}} {
				db, err := s3Restore(t, ctx, bucket, halves, r[0], r[1])
				if err != nil {
					t.Fatalf("rescale restore [%d, %d): %v", r[0], r[1], err)
				}
				s3SameKeys(t, fmt.Sprintf("rescale restore [%d, %d)", r[0], r[1]), s3Contents(t, db), s3InRange(want, r[0], r[1]))
			}

			// A table deleted from the store: restores that need it fail
			// with ErrCorrupt naming it.
			var victim string
			for _, f := range halves[0].Files {
				if strings.HasSuffix(f.Name, ".sst") {
					victim = f.Object
				}
			}
			if victim == "" {
				t.Fatal("the [0, 64) snapshot has no table")
			}
			if err := bucket.Delete(ctx, victim); err != nil {
				t.Fatalf("Delete %s: %v", victim, err)
			}
			for _, r := range [][2]int{{0, 64}, {32, 96}} {
				db, err := s3Restore(t, ctx, bucket, halves, r[0], r[1])
				if !errors.Is(err, snapshot.ErrCorrupt) || !strings.Contains(err.Error(), victim) {
					if db != nil {
						db.Close()
					}
					t.Fatalf("restore [%d, %d) without %s: err = %v; want ErrCorrupt naming it", r[0], r[1], victim, err)
				}
			}
			// The other half does not need it.
			db3, err := s3Restore(t, ctx, bucket, halves, 64, 128)
			if err != nil {
				t.Fatalf("restore [64, 128) without %s: %v", victim, err)
			}
			s3SameKeys(t, "restore [64, 128)", s3Contents(t, db3), s3InRange(want, 64, 128))

			// Deleting every object the snapshots reference (one is
			// already gone) empties the bucket.
			if err := snapshot.Delete(ctx, bucket, snapshot.Objects(allSnaps)); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if left := s3ListKeys(t, ctx, bucket); len(left) != 0 {
				t.Fatalf("after deleting every referenced object the bucket holds %v", left)
			}
			if p := s3test.PendingUploads(t, url); len(p) != 0 {
				t.Fatalf("pending multipart uploads: %v", p)
			}
		})
	}
}

// TestS3IfNotExist checks the conditional write that Upload relies on when
// two subtasks upload the same table (If-None-Match: *): the second write
// fails with FailedPrecondition and leaves the first's content.
func TestS3IfNotExist(t *testing.T) {
	for _, srv := range s3Servers {
		t.Run(srv.name, func(t *testing.T) {
			url := srv.url(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			store, err := objstore.Open(ctx, url)
			if err != nil {
				t.Fatalf("Open(%q): %v", url, err)
			}
			t.Cleanup(func() { store.Close() })
			bucket := store.Bucket()
			opts := &blob.WriterOptions{ContentType: "application/octet-stream", IfNotExist: true}
			const key = s3Shared + "table.sst"
			if err := bucket.WriteAll(ctx, key, []byte("first"), opts); err != nil {
				t.Fatalf("first conditional write: %v", err)
			}
			err = bucket.WriteAll(ctx, key, []byte("second"), opts)
			if gcerrors.Code(err) != gcerrors.FailedPrecondition {
				t.Fatalf("second conditional write: err = %v (code %v), want FailedPrecondition", err, gcerrors.Code(err))
			}
			if got, err := bucket.ReadAll(ctx, key); err != nil || string(got) != "first" {
				t.Fatalf("content = %q, %v; want %q", got, err, "first")
			}
		})
	}
}
