package file

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Reading part of the input, snapshotting the splits, and resuming from them
// at another parallelism reads every line exactly once.
func TestLinesResumeFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(3))
	var want []string
	for f := range 3 {
		var b strings.Builder
		for i := range 200 + rng.Intn(300) {
			line := fmt.Sprintf("f%d-l%d-%s", f, i, strings.Repeat("x", rng.Intn(40)))
			want = append(want, line)
			b.WriteString(line + "\n")
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("in-%d.txt", f)), b.String())
	}
	files, err := listInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range []struct{ before, after int }{{1, 1}, {3, 3}, {4, 2}, {2, 5}, {1, 8}} {
		var got [][]byte
		var lines []string
		emit := func(l string) { lines = append(lines, l) }
		for s := range pc.before {
			r := newLineReader(files, s, pc.before, 100)
			for range 1 + rng.Intn(3) { // at most 1024 lines per poll
				if _, err := r.Poll(emit); err != nil {
					t.Fatal(err)
				}
			}
			// A poll reads up to 1024 lines; cut reading short with a
			// second reader state taken mid-way through one split.
			items, err := r.SnapshotSplits()
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			got = append(got, items...)
		}
		var olds []split
		for _, it := range got {
			sp, err := decodeSplit(it)
			if err != nil {
				t.Fatal(err)
			}
			olds = append(olds, sp)
		}
		for s := range pc.after {
			r := &lineReader{splits: dealSplits(olds, s, pc.after)}
			// Fewer splits than subtasks are cut: every subtask has work
			// (the files are far longer than the subtasks are many).
			if len(r.splits) == 0 && len(olds) > 0 && len(olds) < pc.after {
				t.Fatalf("%d -> %d subtasks: subtask %d got no split of %d", pc.before, pc.after, s, len(olds))
			}
			for {
				res, err := r.Poll(emit)
				if err != nil {
					t.Fatal(err)
				}
				if res.Done {
					break
				}
			}
		}
		sort.Strings(lines)
		w := append([]string(nil), want...)
		sort.Strings(w)
		if strings.Join(lines, "\n") != strings.Join(w, "\n") {
			t.Fatalf("%d -> %d subtasks: read %d lines, want exactly the %d of the input", pc.before, pc.after, len(lines), len(w))
		}
	}
}
