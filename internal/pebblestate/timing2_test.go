package pebblestate
import ("testing";"time";"path/filepath";"math/rand/v2";"github.com/cockroachdb/pebble/v2";"slices";"bytes")
func TestTiming2(t *testing.T) {
	for _, sorted := range []bool{false, true} {
	popts, rel := pebbleOptions()
	pdb, err := pebble.Open(filepath.Join(t.TempDir(), "db"), popts)
	rel()
	if err != nil { t.Fatal(err) }
	rng := rand.New(rand.NewPCG(1, 2))
	for r := range 6 {
		keys := make([][]byte, 10000)
		for i := range keys { keys[i] = benchKey(nil, rng.Uint64N(benchKeys)) }
		s := time.Now()
		if sorted { slices.SortFunc(keys, bytes.Compare) }
		st := time.Since(s)
		b := pdb.NewBatch()
		for _, k := range keys {
			b.Set(k, k[:8], nil)
		}
		bt := time.Since(s)
		b.Commit(pebble.NoSync)
		c := time.Since(s)
		s = time.Now()
		pdb.Flush()
		f := time.Since(s)
		s = time.Now()
		pdb.Checkpoint(filepath.Join(t.TempDir(), "ck"))
		t.Logf("sorted=%v round %d: sort %v build %v commit %v flush %v checkpoint %v", sorted, r, st, bt, c, f, time.Since(s))
	}
	pdb.Close()
	}
}
