package snapshot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"gocloud.dev/blob"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/pebblestate"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeFixtures()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	shared         = "checkpoints/job/shared/"
	maxParallelism = 512
)

// buckets returns the stores the tests run against.
func buckets(t testing.TB) map[string]*blob.Bucket {
	ctx := context.Background()
	out := make(map[string]*blob.Bucket)
	for name, url := range map[string]string{"mem": "mem://", "file": "file://" + t.TempDir()} {
		s, err := objstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[name] = s.Bucket()
	}
	return out
}

// key lays out a state key like the SDK: key group, then the rest.
func key(kg int, i uint64) []byte {
	k := binary.BigEndian.AppendUint16(nil, uint16(kg))
	k = append(k, "u1\x00count\x00"...)
	return binary.BigEndian.AppendUint64(k, i)
}

// kgOf spreads keys over the key groups the way hashing would.
func kgOf(i uint64) int {
	return int(keygroup.Of(keygroup.Hash(binary.BigEndian.AppendUint64(nil, i)), maxParallelism))
}

func openDB(t testing.TB, dir string) *pebblestate.DB {
	t.Helper()
	db, err := pebblestate.Open(pebblestate.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func contents(t testing.TB, db *pebblestate.DB) map[string]string {
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

func checkpoint(t testing.TB, db *pebblestate.DB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ck")
	if err := db.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func upload(t testing.TB, u *Uploader, dir, private string, selfContained bool) ([]*weirv1.StateFile, int64) {
	t.Helper()
	files, n, err := u.Upload(context.Background(), dir, private, selfContained)
	if err != nil {
		t.Fatal(err)
	}
	return files, n
}

// sstUploaded is the part of an upload's bytes that went to shared tables.
func sstUploaded(files []*weirv1.StateFile, uploaded int64) int64 {
	for _, f := range files {
		if !strings.HasPrefix(f.Object, shared) {
			uploaded -= f.Size
		}
	}
	return uploaded
}

func totalSize(files []*weirv1.StateFile) (n int64) {
	for _, f := range files {
		n += f.Size
	}
	return n
}

func TestIncrementalUpload(t *testing.T) {
	for name, bucket := range buckets(t) {
		t.Run(name, func(t *testing.T) {
			const n = 200_000
			db := openDB(t, filepath.Join(t.TempDir(), "db"))
			defer db.Close()
			for i := range uint64(n) {
				db.Set(key(kgOf(i), i), binary.BigEndian.AppendUint64(nil, i))
			}
			u := NewUploader(bucket, shared)
			files1, up1 := upload(t, u, checkpoint(t, db), "chk-1/", false)
			if up1 != totalSize(files1) {
				t.Fatalf("first upload: %d bytes of %d", up1, totalSize(files1))
			}
			for i := 1; i < len(files1); i++ {
				if files1[i-1].Name >= files1[i].Name {
					t.Fatalf("files not sorted: %q, %q", files1[i-1].Name, files1[i].Name)
				}
			}
			var ssts int
			for _, f := range files1 {
				if strings.HasSuffix(f.Name, ".sst") {
					ssts++
					if want := shared + f.Sha256 + ".sst"; f.Object != want {
						t.Fatalf("table %s stored as %s, want %s", f.Name, f.Object, want)
					}
				} else if !strings.HasPrefix(f.Object, "chk-1/") {
					t.Fatalf("private file %s stored as %s", f.Name, f.Object)
				}
			}
			if ssts == 0 {
				t.Fatal("checkpoint has no tables")
			}

			// No change: no table uploaded, by this Uploader or by a new one
			// that has to ask the bucket.
			files2, up2 := upload(t, u, checkpoint(t, db), "chk-2/", false)
			if got := sstUploaded(files2, up2); got != 0 {
				t.Fatalf("unchanged state: %d table bytes uploaded", got)
			}
			files2b, up2b := upload(t, NewUploader(bucket, shared), checkpoint(t, db), "chk-2b/", false)
			if got := sstUploaded(files2b, up2b); got != 0 {
				t.Fatalf("unchanged state, new Uploader: %d table bytes uploaded", got)
			}

			// 1% changed: a small fraction of the state goes up.
			for i := uint64(0); i < n; i += 100 {
				db.Set(key(kgOf(i), i), []byte("changed"))
			}
			files3, up3 := upload(t, u, checkpoint(t, db), "chk-3/", false)
			if total := totalSize(files3); up3*10 > total {
				t.Fatalf("after changing 1%% of keys: uploaded %d of %d bytes", up3, total)
			}
			t.Logf("full %d bytes; unchanged: %d bytes (private files); 1%% changed: %d bytes", up1, up2, up3)
		})
	}
}

// subtaskState builds and uploads, for parallelism p, the state of each
// subtask: keys 0..n-1 spread over maxParallelism key groups.
func subtaskState(t testing.TB, u *Uploader, p, n int, prefix string) (snaps []*weirv1.SubtaskSnapshot, all map[string]string) {
	t.Helper()
	all = make(map[string]string)
	dbs := make([]*pebblestate.DB, p)
	for s := range dbs {
		dbs[s] = openDB(t, filepath.Join(t.TempDir(), "db"))
	}
	for i := range uint64(n) {
		kg := kgOf(i)
		k, v := key(kg, i), fmt.Sprint("v", i)
		if err := dbs[keygroup.Subtask(kg, maxParallelism, p)].Set(k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		all[string(k)] = v
	}
	for s, db := range dbs {
		start, end := keygroup.Range(s, p, maxParallelism)
		files, _ := upload(t, u, checkpoint(t, db), fmt.Sprintf("%s/sub-%d/", prefix, s), false)
		db.Close()
		snaps = append(snaps, &weirv1.SubtaskSnapshot{
			Subtask: int32(s), Parallelism: int32(p),
			KeyGroupStart: int32(start), KeyGroupEnd: int32(end), Files: files,
		})
	}
	return snaps, all
}

func restore(t testing.TB, u *Uploader, snaps []*weirv1.SubtaskSnapshot, start, end int) (*pebblestate.DB, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	db, err := Restore(context.Background(), u, snaps, start, end, dir, pebblestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

func TestRestoreSameParallelism(t *testing.T) {
	for name, bucket := range buckets(t) {
		t.Run(name, func(t *testing.T) {
			u := NewUploader(bucket, shared)
			snaps, all := subtaskState(t, u, 4, 20_000, "chk-1")
			for _, s := range snaps {
				db, _ := restore(t, NewUploader(bucket, shared), snaps, int(s.KeyGroupStart), int(s.KeyGroupEnd))
				got := contents(t, db)
				for k, v := range got {
					if all[k] != v {
						t.Fatalf("restored %q = %q, want %q", k, v, all[k])
					}
				}
				want := 0
				for k := range all {
					if g := int(binary.BigEndian.Uint16([]byte(k))); g >= int(s.KeyGroupStart) && g < int(s.KeyGroupEnd) {
						want++
					}
				}
				if len(got) != want {
					t.Fatalf("subtask %d: restored %d keys, want %d", s.Subtask, len(got), want)
				}
				// The restored DB is the next checkpoint's base: its tables
				// are known and not uploaded again.
				ck := checkpoint(t, db)
				files, up := upload(t, u, ck, "chk-2/", false)
				if got := sstUploaded(files, up); got != 0 {
					t.Fatalf("checkpoint of restored state uploaded %d table bytes", got)
				}
			}
		})
	}
}

func TestRestoreRescale(t *testing.T) {
	bucket := buckets(t)["mem"]
	u := NewUploader(bucket, shared)
	snaps, all := subtaskState(t, u, 4, 20_000, "chk-1") // 128 key groups each
	for _, p := range []int{2, 8} {
		t.Run(fmt.Sprint("to", p), func(t *testing.T) {
			union := make(map[string]string)
			for s := range p {
				start, end := keygroup.Range(s, p, maxParallelism)
				db, dir := restore(t, NewUploader(bucket, shared), snaps, start, end)
				for k, v := range contents(t, db) {
					if g := int(binary.BigEndian.Uint16([]byte(k))); g < start || g >= end {
						t.Fatalf("subtask %d of %d: key group %d outside [%d, %d)", s, p, g, start, end)
					}
					if _, dup := union[k]; dup {
						t.Fatalf("key %q restored twice", k)
					}
					union[k] = v
				}
				// No temporary directories left behind.
				if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
					t.Fatalf("restore left %d entries next to its directory", len(ents))
				}
			}
			if len(union) != len(all) {
				t.Fatalf("union of %d restored subtasks has %d keys, want %d", p, len(union), len(all))
			}
			for k, v := range all {
				if union[k] != v {
					t.Fatalf("key %q = %q, want %q", k, union[k], v)
				}
			}
		})
	}
}

func TestCorruptOrMissingTable(t *testing.T) {
	ctx := context.Background()
	for _, damage := range []string{"corrupt", "truncate", "delete"} {
		t.Run(damage, func(t *testing.T) {
			bucket := buckets(t)["file"]
			u := NewUploader(bucket, shared)
			snaps, _ := subtaskState(t, u, 2, 5_000, "chk-1")
			var victim string
			for _, f := range snaps[0].Files {
				if strings.HasSuffix(f.Name, ".sst") {
					victim = f.Object
				}
			}
			good, err := bucket.ReadAll(ctx, victim)
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "corrupt":
				bad := bytes.Clone(good)
				bad[len(bad)/2] ^= 1
				err = bucket.WriteAll(ctx, victim, bad, nil)
			case "truncate":
				err = bucket.WriteAll(ctx, victim, good[:len(good)-1], nil)
			case "delete":
				err = bucket.Delete(ctx, victim)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []struct {
				name       string
				start, end int
			}{{"same", 0, 256}, {"rescale", 0, 512}} {
				dir := filepath.Join(t.TempDir(), "restored")
				db, err := Restore(ctx, NewUploader(bucket, shared), snaps, r.start, r.end, dir, pebblestate.Options{})
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), victim) {
					if db != nil {
						db.Close()
					}
					t.Fatalf("%s restore: err = %v; want ErrCorrupt naming %s", r.name, err, victim)
				}
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("failed restore left %s: %v", dir, err)
				}
				if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 0 {
					t.Fatalf("failed restore left %d entries", len(ents))
				}
			}
			err = NewUploader(bucket, shared).Download(ctx, snaps[0].Files, t.TempDir())
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), victim) {
				t.Fatalf("Download: err = %v; want ErrCorrupt naming %s", err, victim)
			}
		})
	}
}

func TestDownloadRefusesBadNames(t *testing.T) {
	u := NewUploader(buckets(t)["mem"], shared)
	sha := strings.Repeat("0", 64)
	for _, name := range []string{"../x", "/etc/x", ""} {
		err := u.Download(context.Background(), []*weirv1.StateFile{{Name: name, Object: "o", Sha256: sha}}, t.TempDir())
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("name %q: err = %v; want ErrCorrupt", name, err)
		}
	}
}

func TestSelfContained(t *testing.T) {
	ctx := context.Background()
	bucket := buckets(t)["mem"]
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	for i := range uint64(5000) {
		db.Set(key(kgOf(i), i), []byte("v"))
	}
	u := NewUploader(bucket, shared)
	// A checkpoint first, so that its tables are known and in the bucket:
	// the savepoint must still carry its own copies.
	upload(t, u, checkpoint(t, db), "chk-1/", false)
	files, up := upload(t, u, checkpoint(t, db), "savepoints/sp-1/", true)
	if up != totalSize(files) {
		t.Fatalf("savepoint uploaded %d of %d bytes", up, totalSize(files))
	}
	for _, f := range files {
		if f.Object != "savepoints/sp-1/"+f.Name {
			t.Fatalf("savepoint file %s stored as %s", f.Name, f.Object)
		}
	}
	// The savepoint alone restores, even with the shared objects gone.
	snap := &weirv1.SubtaskSnapshot{KeyGroupStart: 0, KeyGroupEnd: maxParallelism, Files: files}
	iter := bucket.List(&blob.ListOptions{Prefix: shared})
	var sharedKeys []string
	for {
		obj, err := iter.Next(ctx)
		if err != nil {
			break
		}
		sharedKeys = append(sharedKeys, obj.Key)
	}
	if err := Delete(ctx, bucket, sharedKeys); err != nil {
		t.Fatal(err)
	}
	restored, _ := restore(t, NewUploader(bucket, shared), []*weirv1.SubtaskSnapshot{snap}, 0, maxParallelism)
	if got := len(contents(t, restored)); got != 5000 {
		t.Fatalf("restored %d keys from the savepoint, want 5000", got)
	}
	// Tables downloaded from a savepoint are not in the shared prefix, so
	// the next checkpoint uploads them there.
	files2, up2 := upload(t, NewUploader(bucket, shared), checkpoint(t, restored), "chk-2/", false)
	if sstUploaded(files2, up2) == 0 {
		t.Fatal("checkpoint after a savepoint restore uploaded no tables")
	}
}

func TestObjectsAndDelete(t *testing.T) {
	ctx := context.Background()
	bucket := buckets(t)["mem"]
	u := NewUploader(bucket, shared)
	snaps, _ := subtaskState(t, u, 2, 2000, "chk-1")
	keys := Objects(snaps)
	var n int
	for _, s := range snaps {
		n += len(s.Files)
	}
	if len(keys) == 0 || len(keys) > n {
		t.Fatalf("Objects = %d keys for %d files", len(keys), n)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("Objects not sorted and unique: %q, %q", keys[i-1], keys[i])
		}
	}
	bucket.Delete(ctx, keys[0]) // already gone: not an error
	if err := Delete(ctx, bucket, append(keys, "never-existed")); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ok, _ := bucket.Exists(ctx, k); ok {
			t.Fatalf("%s still exists", k)
		}
	}
}

func TestRestoreArguments(t *testing.T) {
	u := NewUploader(buckets(t)["mem"], shared)
	ctx := context.Background()
	if _, err := Restore(ctx, u, nil, 5, 5, filepath.Join(t.TempDir(), "x"), pebblestate.Options{}); err == nil {
		t.Error("empty key-group range accepted")
	}
	overlap := []*weirv1.SubtaskSnapshot{{KeyGroupStart: 0, KeyGroupEnd: 10}, {KeyGroupStart: 5, KeyGroupEnd: 20}}
	if _, err := Restore(ctx, u, overlap, 0, 20, filepath.Join(t.TempDir(), "x"), pebblestate.Options{}); err == nil {
		t.Error("overlapping snapshots accepted")
	}
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "f"), nil, 0o644)
	if _, err := Restore(ctx, u, nil, 0, 10, full, pebblestate.Options{}); err == nil {
		t.Error("non-empty directory accepted")
	}
	// No snapshot covers the range: an empty DB.
	db, err := Restore(ctx, u, nil, 0, 10, filepath.Join(t.TempDir(), "x"), pebblestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := len(contents(t, db)); n != 0 {
		t.Fatalf("restore of nothing has %d keys", n)
	}
}
