package pebblestate

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// benchKeys is the state size: the design targets' 1M keys by default
// (docs/architecture.md, "Design targets"); WEIR_BENCH_KEYS=10000000
// measures 10M.
var benchKeys = func() int {
	if n, err := strconv.Atoi(os.Getenv("WEIR_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}()

// fixture is a DB of benchKeys keyed counters, loaded once per test binary
// and hard-linked (Pebble checkpoint) into each benchmark's own DB.
var fixture struct {
	once sync.Once
	root string
	db   *DB
	err  error
}

func closeFixtures() {
	if fixture.db != nil {
		fixture.db.Close()
	}
	if fixture.root != "" {
		os.RemoveAll(fixture.root)
	}
}

// benchKey lays out counter i like the SDK: key group (a hash of the key
// modulo 128), operator uid, state name, user key.
func benchKey(buf []byte, i uint64) []byte {
	g := uint16((i * 0x9e3779b97f4a7c15 >> 32) % 128)
	buf = binary.BigEndian.AppendUint16(buf[:0], g)
	buf = append(buf, "u1\x00count\x00"...)
	return binary.BigEndian.AppendUint64(buf, i)
}

// newBenchDB returns a DB holding the fixture's 1M counters.
func newBenchDB(b *testing.B, cacheBytes int64) *DB {
	b.Helper()
	fixture.once.Do(func() {
		fixture.root, fixture.err = os.MkdirTemp("", "pebblestate-bench-")
		if fixture.err != nil {
			return
		}
		fixture.db, fixture.err = loadFixture(filepath.Join(fixture.root, "template"))
	})
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	dir, err := os.MkdirTemp(fixture.root, "run-")
	if err != nil {
		b.Fatal(err)
	}
	if err := fixture.db.pdb.Checkpoint(filepath.Join(dir, "db")); err != nil {
		b.Fatal(err)
	}
	db := open(b, filepath.Join(dir, "db"), cacheBytes)
	b.Cleanup(func() {
		db.Close()
		os.RemoveAll(dir)
	})
	return db
}

func loadFixture(dir string) (*DB, error) {
	db, err := Open(Options{Dir: dir, CacheBytes: -1})
	if err != nil {
		return nil, err
	}
	var k []byte
	var v [8]byte
	batch := db.pdb.NewBatch()
	for i := range uint64(benchKeys) {
		k = benchKey(k, i)
		binary.BigEndian.PutUint64(v[:], 1)
		batch.Set(k, v[:], nil)
		if batch.Len() > 4<<20 || i == uint64(benchKeys)-1 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return nil, err
			}
			batch.Close()
			batch = db.pdb.NewBatch()
		}
	}
	batch.Close()
	if err := db.pdb.Flush(); err != nil {
		return nil, err
	}
	// Settle the LSM as a long-running job's would be.
	if err := db.pdb.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		return nil, err
	}
	return db, nil
}

// increment is a keyed counter update: Get, decode, Set.
func increment(b testing.TB, db *DB, kbuf []byte, i uint64) []byte {
	kbuf = benchKey(kbuf, i)
	v, ok, err := db.Get(kbuf)
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	if ok {
		n = binary.BigEndian.Uint64(v)
	}
	var nv [8]byte
	binary.BigEndian.PutUint64(nv[:], n+1)
	if err := db.Set(kbuf, nv[:]); err != nil {
		b.Fatal(err)
	}
	return kbuf
}

// BenchmarkCheckpoint measures checkpoints of 1M keys when 1% of them
// changed since the previous one (blind 8-byte Sets of uniformly chosen
// keys), with compactions settled in between. One op is 50 checkpoints;
// the metrics are over all of them:
//
//   - pause-p50/p99/max-ms: the synchronous pause: BeginCheckpoint with the
//     cache; without it the whole checkpoint, since the next write waits
//     for the directory;
//   - full-p50/p99-ms: until the directory is complete, what Checkpoint
//     costs.
func BenchmarkCheckpoint(b *testing.B) {
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"cache", 0}, {"nocache", -1}} {
		b.Run(c.name, func(b *testing.B) {
			const rounds = 50
			db := newBenchDB(b, c.bytes)
			rng := rand.New(rand.NewPCG(1, 2))
			ckRoot := b.TempDir()
			var kbuf []byte
			var val [8]byte
			var pauses, fulls []time.Duration
			prev := ""
			b.ResetTimer()
			for i := range b.N {
				for r := range rounds {
					b.StopTimer()
					for range benchKeys / 100 {
						kbuf = benchKey(kbuf, rng.Uint64N(uint64(benchKeys)))
						binary.BigEndian.PutUint64(val[:], uint64(r))
						if err := db.Set(kbuf, val[:]); err != nil {
							b.Fatal(err)
						}
					}
					if prev != "" {
						os.RemoveAll(prev)
					}
					settle(db)
					b.StartTimer()
					dir := filepath.Join(ckRoot, fmt.Sprintf("%d-%d", i, r))
					start := time.Now()
					p, err := db.BeginCheckpoint(dir)
					if err != nil {
						b.Fatal(err)
					}
					pause := time.Since(start)
					if err := p.Wait(); err != nil {
						b.Fatal(err)
					}
					full := time.Since(start)
					if c.bytes < 0 {
						// Without the cache the next write waits for the
						// directory: the whole checkpoint is the pause.
						pause = full
					}
					pauses = append(pauses, pause)
					fulls = append(fulls, full)
					prev = dir
				}
			}
			b.StopTimer()
			b.ReportMetric(quantileMs(pauses, 0.5), "pause-p50-ms")
			b.ReportMetric(quantileMs(pauses, 0.99), "pause-p99-ms")
			b.ReportMetric(quantileMs(pauses, 1), "pause-max-ms")
			b.ReportMetric(quantileMs(fulls, 0.5), "full-p50-ms")
			b.ReportMetric(quantileMs(fulls, 0.99), "full-p99-ms")
		})
	}
}

// settle waits until Pebble runs no compaction. Checkpoints here come every
// few tens of milliseconds; a job's come every few seconds, and at 1M keys
// Pebble's compactions finish between two of them. Without settling the
// benchmark would measure write stalls that only its own pace causes.
func settle(db *DB) {
	for db.pdb.Metrics().Compact.NumInProgress > 0 {
		time.Sleep(time.Millisecond)
	}
}

// quantileMs returns the q-quantile of ds in milliseconds (nearest rank).
func quantileMs(ds []time.Duration, q float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1)+0.5)].Microseconds()) / 1000
}

// BenchmarkUpdate measures keyed-counter increments (Get+Set of 8 bytes)
// over 1M keys, with the default cache and without, for uniformly chosen
// and Zipf-distributed (s=1.1) keys. One op is one increment; the closing
// write-back of the cache is inside the timing.
func BenchmarkUpdate(b *testing.B) {
	for _, c := range []struct {
		name  string
		bytes int64
	}{{"cache", 0}, {"nocache", -1}} {
		for _, dist := range []string{"uniform", "zipf"} {
			b.Run(c.name+"/"+dist, func(b *testing.B) {
				db := newBenchDB(b, c.bytes)
				rng := rand.New(rand.NewPCG(3, 4))
				z := rand.NewZipf(rng, 1.1, 1, uint64(benchKeys)-1)
				// Draw the keys outside the timing. Zipf ranks are scattered
				// over the key space like hashed user keys would be.
				keys := make([]uint64, 1<<20)
				for i := range keys {
					if dist == "uniform" {
						keys[i] = rng.Uint64N(uint64(benchKeys))
					} else {
						keys[i] = z.Uint64() * 0x9e3779b97f4a7c15 % uint64(benchKeys)
					}
				}
				var kbuf []byte
				b.ResetTimer()
				for i := range b.N {
					kbuf = increment(b, db, kbuf, keys[i&(len(keys)-1)])
				}
				if err := db.writeBack(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
				if s := db.Stats(); s.CacheHits+s.CacheMisses > 0 {
					b.ReportMetric(float64(s.CacheHits)/float64(s.CacheHits+s.CacheMisses), "hit-ratio")
				}
			})
		}
	}
}
