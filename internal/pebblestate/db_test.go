package pebblestate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/state"
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

// The contract suite runs in internal/state (pebble_contract_test.go); these
// tests cover what is particular to Pebble: the cache, checkpoints, CopyRange.

var cacheSettings = []struct {
	name  string
	bytes int64
}{{"cache", 0}, {"nocache", -1}, {"tinycache", 300}}

// tb is what the helpers need of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
}

func open(t tb, dir string, cacheBytes int64) *DB {
	t.Helper()
	db, err := Open(Options{Dir: dir, CacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// contents returns every key and value of db.
func contents(t tb, db *DB) map[string]string {
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

// checkpointContents opens a copy of the checkpoint at dir (so that the
// checkpoint itself stays as taken) and returns its contents.
func checkpointContents(t tb, dir string) map[string]string {
	t.Helper()
	ro := open(t, dir, -1)
	defer ro.Close()
	return contents(t, ro)
}

func TestCheckpointHoldsWritesJustMade(t *testing.T) {
	for _, c := range cacheSettings {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			db := open(t, filepath.Join(root, "db"), c.bytes)
			defer db.Close()
			want := make(map[string]string)
			for i := range 1000 {
				k, v := fmt.Sprintf("\x00\x01k%04d", i), fmt.Sprintf("v%d", i)
				if err := db.Set([]byte(k), []byte(v)); err != nil {
					t.Fatal(err)
				}
				want[k] = v
			}
			for i := 0; i < 1000; i += 3 {
				k := fmt.Sprintf("\x00\x01k%04d", i)
				if err := db.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				delete(want, k)
			}
			// Nothing has been flushed by Pebble itself: without the Flush in
			// Checkpoint the copy would be empty (the WAL is off).
			ck := filepath.Join(root, "ck")
			if err := db.Checkpoint(ck); err != nil {
				t.Fatal(err)
			}
			// Writes after the checkpoint must not reach it.
			db.Set([]byte("\x00\x01late"), []byte("x"))
			db.Delete([]byte("\x00\x01k0001"))
			db.Checkpoint(filepath.Join(root, "ck2"))
			if got := checkpointContents(t, ck); !mapsEqual(got, want) {
				t.Fatalf("checkpoint has %d keys, want %d", len(got), len(want))
			}
			if err := db.Checkpoint(ck); err == nil {
				t.Fatal("Checkpoint into an existing directory succeeded")
			}
		})
	}
}

func TestCacheEvictsWithinBudget(t *testing.T) {
	const budget = 64 << 10
	db := open(t, t.TempDir(), budget)
	defer db.Close()
	val := bytes.Repeat([]byte("v"), 100)
	for i := range 5000 {
		if err := db.Set(fmt.Appendf(nil, "\x00\x00key%05d", i), val); err != nil {
			t.Fatal(err)
		}
		if s := db.Stats(); s.CacheBytes > budget {
			t.Fatalf("cache holds %d bytes, budget %d", s.CacheBytes, budget)
		}
	}
	s := db.Stats()
	if s.Flushes == 0 {
		t.Fatalf("no write-back after writing 5x the budget: %+v", s)
	}
	for i := range 5000 {
		v, ok, err := db.Get(fmt.Appendf(nil, "\x00\x00key%05d", i))
		if err != nil || !ok || !bytes.Equal(v, val) {
			t.Fatalf("key %d: %q %v %v", i, v, ok, err)
		}
	}
	s2 := db.Stats()
	if s2.CacheMisses == s.CacheMisses {
		t.Fatal("reading 5000 evicted keys caused no misses")
	}
	// A hot key stays cached.
	hot := []byte("\x00\x00hot")
	db.Set(hot, []byte("1"))
	before := db.Stats().CacheHits
	for range 100 {
		db.Get(hot)
	}
	if got := db.Stats().CacheHits - before; got != 100 {
		t.Fatalf("hot key: %d hits of 100", got)
	}
}

// TestCacheBytesTrackTheHeap: the budget is what the cache really holds, so
// that a process's state memory is what its budgets add up to. A DB
// reopened over data caches the absence of every key it looks up (windows
// read panes nobody wrote), the case that grew restored job processes.
func TestCacheBytesTrackTheHeap(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, -1)
	db.Set([]byte("k"), []byte("v"))
	db.Close()
	db = open(t, dir, 1<<40)
	defer db.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 200000
	for i := range n {
		db.Get(fmt.Appendf(nil, "\x00\x01window-%08d-key-%020d", i, i*7))
	}
	for i := range n / 2 {
		db.Set(fmt.Appendf(nil, "\x00\x01window-%08d-key-%020d", i, i*7), []byte("0123456789"))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	ratio := heap / float64(db.Stats().CacheBytes)
	t.Logf("cache counts %d bytes, the heap grew %.0f (%.2fx)", db.Stats().CacheBytes, heap, ratio)
	if ratio > 1.1 || ratio < 0.7 {
		t.Fatalf("the cache counts %d bytes but the heap grew %.0f (%.2fx)", db.Stats().CacheBytes, heap, ratio)
	}
}

// A DB that opened empty answers a key it never wrote from memory until it
// first evicts; after that, and on a DB opened over existing data, a miss
// asks Pebble, and finds what is there.
func TestCompleteCacheAnswersMissesWithoutPebble(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, 2000)
	db.Set([]byte("\x00\x00a"), []byte("1"))
	for i := range 10 {
		if _, ok, _ := db.Get(fmt.Appendf(nil, "\x00\x01absent%d", i)); ok {
			t.Fatal("found a key never written")
		}
	}
	if s := db.Stats(); s.CacheMisses != 0 {
		t.Fatalf("a fresh DB asked Pebble %d times for keys it never wrote", s.CacheMisses)
	}
	// Keys created and deleted between write-backs (timers, fired windows)
	// never reach Pebble, and a complete cache forgets them at once.
	for i := range 100 {
		k := fmt.Appendf(nil, "\x00\x03timer%03d", i)
		db.Set(k, []byte("t"))
		db.Delete(k)
	}
	if s := db.Stats(); s.Flushes != 0 || s.CacheBytes > 200 {
		t.Fatalf("created-and-deleted keys: %+v (want no write-back, no entries left)", s)
	}
	// Deleting keys Pebble has needs tombstones; when those overflow the
	// budget, dropping them keeps the cache complete.
	for round := range 4 {
		for i := range 10 {
			db.Set(fmt.Appendf(nil, "\x00\x04stored%d-%d", round, i), []byte("s"))
		}
		if err := db.Checkpoint(filepath.Join(t.TempDir(), "ck0")); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			db.Delete(fmt.Appendf(nil, "\x00\x04stored%d-%d", round, i))
		}
	}
	if _, ok, _ := db.Get([]byte("\x00\x01never")); ok {
		t.Fatal("found a key never written")
	}
	if s := db.Stats(); s.Flushes < 2 || s.CacheMisses != 0 {
		t.Fatalf("deleted stored keys: %+v (want a write-back and still no Pebble reads)", s)
	}
	if _, ok, _ := db.Get([]byte("\x00\x04stored1-3")); ok {
		t.Fatal("a deleted key came back")
	}
	if v, ok, _ := db.Get([]byte("\x00\x00a")); !ok || string(v) != "1" {
		t.Fatalf("live key lost while dropping deletions: %q %v", v, ok)
	}
	for i := range 100 { // more than the budget: evicts
		db.Set(fmt.Appendf(nil, "\x00\x02%03d", i), []byte("x"))
	}
	for i := range 100 {
		if v, ok, err := db.Get(fmt.Appendf(nil, "\x00\x02%03d", i)); err != nil || !ok || string(v) != "x" {
			t.Fatalf("evicted key %d: %q %v %v", i, v, ok, err)
		}
	}
	if s := db.Stats(); s.CacheMisses == 0 {
		t.Fatal("after evicting, no Get asked Pebble: evicted keys would read as absent")
	}
	ck := filepath.Join(t.TempDir(), "ck")
	if err := db.Checkpoint(ck); err != nil {
		t.Fatal(err)
	}
	db.Close()
	re := open(t, ck, 0) // a checkpoint directory, as a restore opens it
	defer re.Close()
	if v, ok, err := re.Get([]byte("\x00\x00a")); err != nil || !ok || string(v) != "1" {
		t.Fatalf("reopened DB lost a key: %q %v %v", v, ok, err)
	}
}

// TestDeletedKeysLeaveTheCache: timers and windows write keys that a
// checkpoint or a write-back hands to Pebble and delete them later. Once
// their tombstone is in Pebble the cache must forget them, complete or not;
// it used to keep each one until the budget overflowed, so a job process
// grew by its whole budget of dead keys.
func TestDeletedKeysLeaveTheCache(t *testing.T) {
	for _, reopened := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopened=%v", reopened), func(t *testing.T) {
			dir := t.TempDir()
			db := open(t, dir, 0)
			db.Set([]byte("\x00\x00live"), []byte("1"))
			if reopened { // a restored DB: its cache is not complete
				ck := filepath.Join(t.TempDir(), "ck")
				if err := db.Checkpoint(ck); err != nil {
					t.Fatal(err)
				}
				db.Close()
				db = open(t, ck, 0)
			}
			defer db.Close()
			empty := db.Stats().CacheBytes
			for i := range 200 {
				k := fmt.Appendf(nil, "\x00\x03timer%05d", i)
				db.Set(k, []byte("t"))
				// Alternately through a checkpoint and a write-back (a Scan
				// writes back first).
				if i%2 == 0 {
					if err := db.Checkpoint(filepath.Join(t.TempDir(), "ck")); err != nil {
						t.Fatal(err)
					}
				} else if err := db.Scan([]byte("\x00\x09"), func(k, v []byte) error { return nil }); err != nil {
					t.Fatal(err)
				}
				db.Delete(k)
				if i%2 == 1 {
					db.Scan([]byte("\x00\x09"), func(k, v []byte) error { return nil })
				}
			}
			// Hand the last tombstones to Pebble too.
			if err := db.Checkpoint(filepath.Join(t.TempDir(), "ck")); err != nil {
				t.Fatal(err)
			}
			if err := db.Scan([]byte("\x00\x09"), func(k, v []byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if got := db.Stats().CacheBytes - empty; got > 1000 {
				t.Fatalf("200 deleted keys left %d bytes in the cache", got)
			}
			for _, i := range []int{0, 1, 198, 199} {
				if _, ok, err := db.Get(fmt.Appendf(nil, "\x00\x03timer%05d", i)); ok || err != nil {
					t.Fatalf("deleted key %d: found %v, %v", i, ok, err)
				}
			}
			if v, ok, err := db.Get([]byte("\x00\x00live")); err != nil || !ok || string(v) != "1" {
				t.Fatalf("live key: %q %v %v", v, ok, err)
			}
		})
	}
}

func TestDeleteOfUncachedKey(t *testing.T) {
	// A Delete of a key the cache has not seen must reach Pebble even if the
	// entry is evicted before the next read.
	db := open(t, t.TempDir(), 1000)
	defer db.Close()
	db.Set([]byte("\x00\x00a"), []byte("1"))
	db.Checkpoint(filepath.Join(t.TempDir(), "ck")) // clean now
	for i := range 100 {                            // push a out of the cache
		db.Set(fmt.Appendf(nil, "\x00\x01%d", i), []byte("x"))
	}
	db.Delete([]byte("\x00\x00a"))
	for i := range 100 { // and the deletion too
		db.Set(fmt.Appendf(nil, "\x00\x02%d", i), []byte("x"))
	}
	if v, ok, _ := db.Get([]byte("\x00\x00a")); ok {
		t.Fatalf("deleted key came back: %q", v)
	}
}

func TestCopyRange(t *testing.T) {
	root := t.TempDir()
	src := open(t, filepath.Join(root, "src"), 0)
	for g := range 4 {
		for i := range 50 {
			src.Set([]byte{0, byte(g), 'k', byte(i)}, []byte{byte(g), byte(i)})
		}
	}
	ck := filepath.Join(root, "ck")
	if err := src.Checkpoint(ck); err != nil {
		t.Fatal(err)
	}
	src.Close()

	dst := open(t, filepath.Join(root, "dst"), 0)
	defer dst.Close()
	stale := []byte{0, 1, 'k', 7}
	dst.Set(stale, []byte("stale, cached"))
	n, err := dst.CopyRange(ck, []byte{0, 1}, []byte{0, 3})
	if err != nil || n != 100 {
		t.Fatalf("CopyRange = %d, %v; want 100", n, err)
	}
	if v, _, _ := dst.Get(stale); !bytes.Equal(v, []byte{1, 7}) {
		t.Fatalf("cached value survived CopyRange: %q", v)
	}
	got := contents(t, dst)
	if len(got) != 100 {
		t.Fatalf("copied %d keys, want 100", len(got))
	}
	for k := range got {
		if k[1] != 1 && k[1] != 2 {
			t.Fatalf("key %q outside [0x0001, 0x0003)", k)
		}
	}
	if n, err := dst.CopyRange(ck, []byte{0, 3}, nil); err != nil || n != 50 {
		t.Fatalf("CopyRange to the end = %d, %v; want 50", n, err)
	}
}

func TestClosed(t *testing.T) {
	db := open(t, t.TempDir(), 0)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Set":        db.Set([]byte("k"), nil),
		"Delete":     db.Delete([]byte("k")),
		"Scan":       db.Scan(nil, func(k, v []byte) error { return nil }),
		"Checkpoint": db.Checkpoint(filepath.Join(t.TempDir(), "ck")),
		"Close":      db.Close(),
	} {
		if !errors.Is(err, state.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestModel runs random operations against the DB and a map, with budgets
// small enough that write-backs and evictions happen every few operations,
// and checks every checkpoint, reopened at the end, against the map as it
// was when the checkpoint was taken.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		root, err := os.MkdirTemp("", "pebblestate-model-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(root)
		cacheBytes := rapid.SampledFrom([]int64{-1, 150, 400, 1500, 0}).Draw(rt, "cacheBytes")
		db := open(rt, filepath.Join(root, "db"), cacheBytes)
		defer func() {
			if err := db.Close(); err != nil && !errors.Is(err, state.ErrClosed) {
				rt.Error(err)
			}
		}()
		model := make(map[string]string)
		type checkpoint struct {
			dir     string
			want    map[string]string
			pending *PendingCheckpoint
		}
		var checkpoints []checkpoint

		// Few distinct keys, so that operations hit the same ones; two-byte
		// key-group prefixes like the SDK's.
		keyGen := rapid.Custom(func(t *rapid.T) []byte {
			g := rapid.SampledFrom([]string{"\x00\x00", "\x00\x01", "\x01\x00", "\xff\xff"}).Draw(t, "group")
			return []byte(g + rapid.StringOf(rapid.RuneFrom([]rune("ab"))).Filter(func(s string) bool { return len(s) <= 3 }).Draw(t, "suffix"))
		})
		valGen := rapid.SliceOfN(rapid.Byte(), 0, 64)

		rt.Repeat(map[string]func(*rapid.T){
			"get": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				v, ok, err := db.Get(k)
				if err != nil {
					t.Fatal(err)
				}
				want, wantOK := model[string(k)]
				if ok != wantOK || string(v) != want {
					t.Fatalf("Get(%q) = %q, %v; want %q, %v", k, v, ok, want, wantOK)
				}
			},
			"set": func(t *rapid.T) {
				k, v := keyGen.Draw(t, "key"), valGen.Draw(t, "val")
				if err := db.Set(k, v); err != nil {
					t.Fatal(err)
				}
				model[string(k)] = string(v)
				if len(v) > 0 {
					v[0]++ // Set must have copied
				}
			},
			"increment": func(t *rapid.T) {
				// The keyed-counter pattern: Set from Get's own slice.
				k := keyGen.Draw(t, "key")
				v, _, err := db.Get(k)
				if err != nil {
					t.Fatal(err)
				}
				nv := append(slices.Clone(v), 'x')
				if len(nv) > 8 {
					nv = nv[:1]
				}
				if err := db.Set(k, nv); err != nil {
					t.Fatal(err)
				}
				model[string(k)] = string(nv)
			},
			"delete": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				if err := db.Delete(k); err != nil {
					t.Fatal(err)
				}
				delete(model, string(k))
			},
			"scan": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				prefix := k[:rapid.IntRange(0, len(k)).Draw(t, "prefixLen")]
				var got []string
				if err := db.Scan(prefix, func(k, v []byte) error {
					got = append(got, string(k)+"="+string(v))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				var want []string
				for k, v := range model {
					if strings.HasPrefix(k, string(prefix)) {
						want = append(want, k+"="+v)
					}
				}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("Scan(%q) = %q; want %q", prefix, got, want)
				}
			},
			"checkpoint": func(t *rapid.T) {
				if len(checkpoints) == 4 {
					t.Skip("enough checkpoints to check") // they cost a directory each
				}
				dir := filepath.Join(root, fmt.Sprintf("ck%d", len(checkpoints)))
				// Either synchronous, or begun and left running while the
				// following operations go on.
				var p *PendingCheckpoint
				if rapid.Bool().Draw(t, "async") {
					var err error
					if p, err = db.BeginCheckpoint(dir); err != nil {
						t.Fatal(err)
					}
				} else if err := db.Checkpoint(dir); err != nil {
					t.Fatal(err)
				}
				checkpoints = append(checkpoints, checkpoint{dir, maps.Clone(model), p})
			},
		})
		if err := db.Close(); err != nil {
			rt.Fatal(err)
		}
		for i, c := range checkpoints {
			if c.pending != nil {
				if err := c.pending.Wait(); err != nil {
					rt.Fatal(err)
				}
			}
			if got := checkpointContents(rt, c.dir); !mapsEqual(got, c.want) {
				rt.Fatalf("checkpoint %d holds %q; want %q", i, got, c.want)
			}
		}
	})
}

// TestBeginCheckpointIsolation overwrites, deletes and adds keys while a
// checkpoint's writer is still writing the frozen entries: none of it may
// reach the checkpoint, and all of it must stay in the DB.
func TestBeginCheckpointIsolation(t *testing.T) {
	root := t.TempDir()
	db := open(t, filepath.Join(root, "db"), 0)
	defer db.Close()
	const n = 10000
	before, after := make(map[string]string), make(map[string]string)
	for i := range n {
		k := fmt.Sprintf("\x00\x00k%05d", i)
		db.Set([]byte(k), []byte("old-value"))
		before[k], after[k] = "old-value", "old-value"
	}
	p, err := db.BeginCheckpoint(filepath.Join(root, "ck1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := fmt.Sprintf("\x00\x00k%05d", i)
		switch i % 3 {
		case 0: // same length: would reuse the frozen buffer
			db.Set([]byte(k), []byte("new-value"))
			after[k] = "new-value"
		case 1:
			db.Delete([]byte(k))
			delete(after, k)
		}
		if v, ok, _ := db.Get([]byte(k)); string(v) != after[k] || ok != (after[k] != "") {
			t.Fatalf("Get(%q) = %q, %v during the checkpoint; want %q", k, v, ok, after[k])
		}
	}
	db.Set([]byte("\x00\x01added"), []byte("x"))
	after["\x00\x01added"] = "x"
	// The next checkpoint waits for the first.
	if err := db.Checkpoint(filepath.Join(root, "ck2")); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := checkpointContents(t, filepath.Join(root, "ck1")); !mapsEqual(got, before) {
		t.Fatalf("first checkpoint: %d keys, want the %d from before it", len(got), len(before))
	}
	if got := checkpointContents(t, filepath.Join(root, "ck2")); !mapsEqual(got, after) {
		t.Fatalf("second checkpoint: %d keys, want %d", len(got), len(after))
	}
	if got := contents(t, db); !mapsEqual(got, after) {
		t.Fatalf("DB: %d keys, want %d", len(got), len(after))
	}
}
