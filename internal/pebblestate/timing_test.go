package pebblestate

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTiming(t *testing.T) {
	s := time.Now()
	db, err := loadFixture(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Log("load", time.Since(s))
	t.Log(db.pdb.Metrics().String())
	for _, cb := range []int64{-1, 0} {
		s = time.Now()
		dir := t.TempDir()
		db.pdb.Checkpoint(filepath.Join(dir, "db"))
		d := open(t, filepath.Join(dir, "db"), cb)
		t.Log("copy+open", time.Since(s))
		rng := rand.New(rand.NewPCG(1, 2))
		var kbuf []byte
		for r := range 20 {
			s = time.Now()
			for range benchKeys / 100 {
				kbuf = increment(nil, d, kbuf, rng.Uint64N(benchKeys))
			}
			upd := time.Since(s)
			s = time.Now()
			d.writeBack()
			wb := time.Since(s)
			s = time.Now()
			d.pdb.Flush()
			fl := time.Since(s)
			s = time.Now()
			ck := filepath.Join(dir, "ck")
			d.pdb.Checkpoint(ck)
			c := time.Since(s)
			os.RemoveAll(ck)
			t.Logf("cache=%d round %d: update %v writeback %v flush %v checkpoint %v", cb, r, upd, wb, fl, c)
		}
		t.Log(d.pdb.Metrics().String())
		d.Close()
	}
	db.Close()
}
