package file

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-run/weir/sdk"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wantLines is what Lines must read from content: the lines split at "\n",
// without a trailing "\r", and without the empty string after a final
// newline (a file "a\n" has one line).
func wantLines(content string) []string {
	if content == "" {
		return nil
	}
	lines := strings.Split(content, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// readSubtasks reads path as every subtask of parallelism p would and
// returns each subtask's lines.
func readSubtasks(t fataler, path string, p int, chunk int64) [][]string {
	t.Helper()
	out := make([][]string, p)
	for s := range p {
		files, err := listInputs(path)
		if err != nil {
			t.Fatal(err)
		}
		r := newLineReader(files, s, p, chunk)
		var size int64
		for _, f := range files {
			size += f.size
		}
		for polls := 0; ; polls++ {
			// Each poll either reads a line, moves to the next file, or ends.
			if polls > int(size)+len(files)+2 {
				t.Fatalf("subtask %d/%d: no end after %d polls", s, p, polls)
			}
			res, err := r.Poll(func(l string) { out[s] = append(out[s], l) })
			if err != nil {
				t.Fatalf("subtask %d/%d: %v", s, p, err)
			}
			if res.Wait != 0 {
				t.Fatalf("a file source waits %v", res.Wait)
			}
			if res.Done {
				break
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// fataler is what the helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func writeFile(t fataler, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var longLine = strings.Repeat("0123456789abcdef", 20<<10) // 320 KiB, past the 256 KiB buffer

func TestLinesOfOneFile(t *testing.T) {
	for _, tc := range []struct {
		name, content string
	}{
		{"empty file", ""},
		{"one char", "x"},
		{"only a newline", "\n"},
		{"trailing newline", "alpha\nbeta\ngamma\n"},
		{"no trailing newline", "alpha\nbeta\ngamma"},
		{"empty lines", "\n\na\n\n\nb\n\n"},
		{"crlf", "one\r\ntwo\r\n\r\nthree"},
		{"lone cr kept inside", "a\rb\r\nc\r"},
		{"long line in the middle", "before\n" + longLine + "\nafter\n"},
		{"long line last without newline", "before\n" + longLine},
		{"two long lines", longLine + "\n" + longLine + "x\n"},
		{"many short lines", strings.Repeat("ab\nc\n\n", 5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.txt")
			writeFile(t, path, tc.content)
			want := wantLines(tc.content)
			for p := 1; p <= 7; p++ {
				// Subtask ranges are in file order, so their lines
				// concatenate to the file's lines: each exactly once.
				got := slices.Concat(readSubtasks(t, path, p, chunkBytes)...)
				if !slices.Equal(got, want) {
					t.Fatalf("p%d: read %d lines %.200q, want %d %.200q", p, len(got), got, len(want), want)
				}
			}
		})
	}
}

func TestLinesSplitsWork(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, strings.Repeat("0123456789\n", 1000))
	for _, lines := range readSubtasks(t, path, 4, chunkBytes) {
		// 11000 bytes in four ranges: 250 lines each, give or take one.
		if len(lines) < 249 || len(lines) > 251 {
			t.Errorf("a subtask read %d of 1000 lines", len(lines))
		}
	}
}

func TestLinesOfDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.txt"), "b1\nb2\n")
	writeFile(t, filepath.Join(dir, "a.txt"), "a1\r\na2")
	writeFile(t, filepath.Join(dir, "c.txt"), "")
	writeFile(t, filepath.Join(dir, "d"), "\nd2\n")
	// Hidden: in progress, markers, and subdirectories.
	writeFile(t, filepath.Join(dir, ".part-00000.attempt-1.inprogress"), "hidden\n")
	writeFile(t, filepath.Join(dir, "_SUCCESS"), "marker\n")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub", "e.txt"), "nested\n")

	files, err := listInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f.path))
	}
	if want := []string{"a.txt", "b.txt", "c.txt", "d"}; !slices.Equal(names, want) {
		t.Fatalf("inputs %v, want %v", names, want)
	}
	want := []string{"a1", "a2", "b1", "b2", "", "d2"}
	for p := 1; p <= 7; p++ {
		got := slices.Concat(readSubtasks(t, dir, p, chunkBytes)...)
		slices.Sort(got)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("p%d: read %q, want %q", p, got, w)
		}
	}
	// With one subtask the order is the files' sorted order.
	if got := readSubtasks(t, dir, 1, chunkBytes)[0]; !slices.Equal(got, want) {
		t.Errorf("p1 read %q, want %q", got, want)
	}
}

func TestLinesInputErrors(t *testing.T) {
	// A missing input cannot appear by retrying: the job fails at once,
	// and a relative path says where it was looked for.
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := listInputs(missing)
	if !sdk.IsPermanent(err) || !errors.Is(err, fs.ErrNotExist) || err.Error() != "input "+missing+" does not exist" {
		t.Errorf("missing input: %v", err)
	}
	wd, _ := os.Getwd()
	_, err = listInputs("words.txt")
	if want := "input words.txt does not exist (a relative path is read from the job process's directory " + wd + ": give an absolute path the workers can read)"; !sdk.IsPermanent(err) || err.Error() != want {
		t.Errorf("missing relative input: %v, want %q", err, want)
	}
	// A file removed between listing and reading fails the read.
	dir := t.TempDir()
	path := filepath.Join(dir, "gone.txt")
	writeFile(t, path, "x\n")
	files, err := listInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	r := newLineReader(files, 0, 1, chunkBytes)
	if _, err := r.Poll(func(string) {}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Poll of a removed file: %v", err)
	}
}

// TestLinesProperty: for random contents, parallelism 1..7 and chunk sizes,
// all subtasks together read every line exactly once.
func TestLinesProperty(t *testing.T) {
	base := t.TempDir()
	genContent := rapid.Custom(func(t *rapid.T) string {
		// Few distinct bytes, so newlines, CRs and empty lines are common.
		b := rapid.SliceOfN(rapid.SampledFrom([]byte("ab \n\n\r")), 0, 600).Draw(t, "bytes")
		return string(b)
	})
	i := 0
	rapid.Check(t, func(rt *rapid.T) {
		contents := rapid.SliceOfN(genContent, 1, 3).Draw(rt, "files")
		p := rapid.IntRange(1, 7).Draw(rt, "parallelism")
		i++
		dir := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			rt.Fatal(err)
		}
		var want []string
		for j, c := range contents {
			writeFile(rt, filepath.Join(dir, "f"+strconv.Itoa(j)), c)
			want = append(want, wantLines(c)...)
		}
		path := dir
		if len(contents) == 1 {
			path = filepath.Join(dir, "f0") // a single file, not a directory
		}
		chunk := rapid.SampledFrom([]int64{chunkBytes, 1, 7, 64}).Draw(rt, "chunk")
		perSubtask := readSubtasks(rt, path, p, chunk)
		if len(contents) == 1 && chunk == chunkBytes {
			// Equal ranges, in subtask order: the file's order.
			if got := slices.Concat(perSubtask...); !slices.Equal(got, want) {
				rt.Fatalf("read %q, want %q", got, want)
			}
			return
		}
		got := slices.Concat(perSubtask...)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			rt.Fatalf("read %q, want %q", got, want)
		}
	})
}

// linesTaskInfo is the TaskInfo of a restored Lines subtask.
type linesTaskInfo struct {
	taskInfo
	p, restoredP int
	own, all     [][]byte
}

func (t linesTaskInfo) Parallelism() int              { return t.p }
func (t linesTaskInfo) RestoredParallelism() int      { return t.restoredP }
func (t linesTaskInfo) Restored() ([][]byte, bool)    { return t.own, true }
func (t linesTaskInfo) RestoredAll() ([][]byte, bool) { return t.all, true }

// A restore at the same parallelism from a checkpoint in which one Lines
// subtask had finished (and stored no range) keeps each range with its own
// subtask: the finished subtask is restored finished and never reads, so
// a range dealt to it would never be read.
func TestLinesRestoreWithAFinishedSubtask(t *testing.T) {
	a := split{path: "in", pos: 10, end: 100, aligned: true}
	b := split{path: "in", pos: 300, end: 400, aligned: true}
	// Old subtask 0 has two ranges left; old subtask 1 finished.
	own := [][]byte{a.encode(), b.encode()}
	got, restored, err := sdk.RestoredSplits(linesTaskInfo{taskInfo: taskInfo{subtask: 0}, p: 2, restoredP: 2, own: own, all: own}, decodeSplit, dealSplits)
	if err != nil || !restored {
		t.Fatalf("RestoredSplits: restored %v, %v", restored, err)
	}
	if want := []split{a, b}; !slices.Equal(got, want) {
		t.Fatalf("subtask 0 restored %+v, want its own %+v", got, want)
	}
}
