package snapshot

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/sealing"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// benchKeys is the state size of the design targets (docs/architecture.md,
// "Design targets").
const benchKeys = 1_000_000

// fixture is one subtask's state of benchKeys counters, checkpointed and
// uploaded to a file:// store once per test binary.
var fixture struct {
	once  sync.Once
	root  string
	store *objstore.Store
	db    *pebblestate.DB
	snap  *weirv1.SubtaskSnapshot
	full  int64
	err   error
}

func closeFixtures() {
	if fixture.db != nil {
		fixture.db.Close()
	}
	if fixture.store != nil {
		fixture.store.Close()
	}
	if fixture.root != "" {
		os.RemoveAll(fixture.root)
	}
}

func loadFixture(b *testing.B) {
	b.Helper()
	fixture.once.Do(func() {
		ctx := context.Background()
		f := &fixture
		if f.root, f.err = os.MkdirTemp("", "snapshot-bench-"); f.err != nil {
			return
		}
		if f.store, f.err = objstore.Open(ctx, "file://"+filepath.Join(f.root, "store")); f.err != nil {
			return
		}
		if f.db, f.err = pebblestate.Open(pebblestate.Options{Dir: filepath.Join(f.root, "db")}); f.err != nil {
			return
		}
		var v [8]byte
		for i := range uint64(benchKeys) {
			binary.BigEndian.PutUint64(v[:], i)
			if f.err = f.db.Set(key(kgOf(i), i), v[:]); f.err != nil {
				return
			}
		}
		ck := filepath.Join(f.root, "ck-0")
		if f.err = f.db.Checkpoint(ck); f.err != nil {
			return
		}
		var files []*weirv1.StateFile
		files, f.full, f.err = NewUploader(f.store.Bucket(), shared).Upload(ctx, ck, "chk-0/", false)
		f.snap = &weirv1.SubtaskSnapshot{KeyGroupStart: 0, KeyGroupEnd: maxParallelism, Files: files}
		os.RemoveAll(ck)
	})
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
}

// BenchmarkRestore restores 1M keys from a file:// store: "same" at the
// parallelism of the snapshot (download and open), "rescale" onto half its
// key groups (download, then copy 500K keys into a fresh DB).
func BenchmarkRestore(b *testing.B) {
	loadFixture(b)
	for _, c := range []struct {
		name       string
		start, end int
	}{{"same", 0, maxParallelism}, {"rescale", 0, maxParallelism / 2}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			root := b.TempDir()
			b.SetBytes(fixture.full)
			for i := range b.N {
				dir := filepath.Join(root, "restored")
				u := NewUploader(fixture.store.Bucket(), shared)
				db, err := Restore(ctx, u, []*weirv1.SubtaskSnapshot{fixture.snap}, c.start, c.end, dir, pebblestate.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					b.StopTimer()
					if _, ok, _ := db.Get(key(kgOf(1), 1)); !ok && kgOf(1) < c.end {
						b.Fatal("restored DB lacks a key")
					}
					b.StartTimer()
				}
				db.Close()
				b.StopTimer()
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkIncrementalUpload updates 1% of the 1M keys (blind Sets of
// uniformly chosen keys), checkpoints and uploads, one round per op. It
// reports the bytes uploaded per checkpoint against the full state.
func BenchmarkIncrementalUpload(b *testing.B) {
	loadFixture(b)
	ctx := context.Background()
	db := fixture.db
	u := NewUploader(fixture.store.Bucket(), shared)
	rng := rand.New(rand.NewPCG(5, 6))
	root := b.TempDir()
	var v [8]byte
	var uploaded, total int64
	var uploadTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for range benchKeys / 100 {
			j := rng.Uint64N(benchKeys)
			binary.BigEndian.PutUint64(v[:], j+uint64(i))
			if err := db.Set(key(kgOf(j), j), v[:]); err != nil {
				b.Fatal(err)
			}
		}
		ck := filepath.Join(root, "ck")
		if err := db.Checkpoint(ck); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		files, n, err := u.Upload(ctx, ck, "chk-inc/", false)
		if err != nil {
			b.Fatal(err)
		}
		uploadTime += time.Since(start)
		uploaded += n
		total = totalSize(files)
		b.StopTimer()
		os.RemoveAll(ck)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(uploaded)/float64(b.N)/1024, "KiB-uploaded/ckpt")
	b.ReportMetric(float64(total)/1024, "KiB-state")
	b.ReportMetric(100*float64(uploaded)/float64(b.N)/float64(total), "%-uploaded")
	b.ReportMetric(float64(uploadTime.Milliseconds())/float64(b.N), "upload-ms")
}

// BenchmarkSavepointUpload uploads a 1M-key state in full (as a savepoint
// does) to memory, alternately without and with a job key, and reports the
// sealed upload's time over the plain one's: sealing's cost on the part of
// a checkpoint that encryption at rest changes. Alternating within each
// iteration lets the machine's noise hit both alike.
func BenchmarkSavepointUpload(b *testing.B) {
	loadFixture(b)
	ck := filepath.Join(b.TempDir(), "ck")
	if err := fixture.db.Checkpoint(ck); err != nil {
		b.Fatal(err)
	}
	key, err := sealing.NewJobKey()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store, err := objstore.Open(ctx, "mem://")
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var took [2]time.Duration
	var n int64
	for i := 0; b.Loop(); i++ {
		for k, seal := range []*sealing.JobKey{nil, key} {
			start := time.Now()
			_, up, err := NewUploader(store.Bucket(), shared).Seal(seal).Upload(ctx, ck, fmt.Sprintf("sp-%d-%d/", i, k), true)
			if err != nil {
				b.Fatal(err)
			}
			took[k] += time.Since(start)
			n = up
		}
	}
	b.SetBytes(2 * n)
	b.ReportMetric(float64(took[1])/float64(took[0]), "sealed/plain")
	b.ReportMetric(float64(n)*float64(b.N)/took[1].Seconds()/1e6, "sealed-MB/s")
}
