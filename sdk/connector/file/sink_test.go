package file

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func visible(names []string) []string {
	return slices.DeleteFunc(slices.Clone(names), hidden)
}

// newTestWriter opens a writer the way Sink's open does for subtask 0 of
// attempt 1.
func newTestWriter(t *testing.T, dir string) *sinkWriter[int] {
	t.Helper()
	tmp := filepath.Join(dir, ".part-00000.attempt-1.inprogress")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	return &sinkWriter[int]{f: f, w: bufio.NewWriterSize(f, 256<<10), tmp: tmp,
		final: filepath.Join(dir, "part-00000"), format: strconv.Itoa}
}

func TestSinkWriterFinishPublishes(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, dir)
	for i := range 3 {
		if err := w.Write(i * 10); err != nil {
			t.Fatal(err)
		}
	}
	if got := visible(listDir(t, dir)); len(got) != 0 {
		t.Fatalf("visible before Finish: %v", got)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"part-00000"}) {
		t.Fatalf("after Finish: %v, want only part-00000", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "part-00000"))
	if err != nil || string(b) != "0\n10\n20\n" {
		t.Fatalf("part-00000 = %q, %v", b, err)
	}
	// Close after Finish keeps the output.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"part-00000"}) {
		t.Fatalf("after Close: %v", got)
	}
}

func TestSinkWriterCloseWithoutFinishDiscards(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, dir)
	for i := range 100_000 { // past the buffer: some of it reached the file
		if err := w.Write(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Fatalf("after Close without Finish: %v, want nothing", got)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		".part-00001.attempt-1.inprogress",
		".part-00001.attempt-2.inprogress",
		".part-00001.whatever",
		".part-000010.attempt-1.inprogress", // subtask 10 of a wider job
		".part-00002.attempt-1.inprogress",
		"part-00001",
		"_SUCCESS",
	} {
		writeFile(t, filepath.Join(dir, name), "x")
	}
	if err := removeStale(dir, ".part-00001."); err != nil {
		t.Fatal(err)
	}
	want := []string{".part-000010.attempt-1.inprogress", ".part-00002.attempt-1.inprogress", "_SUCCESS", "part-00001"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	if err := removeStale(filepath.Join(dir, "missing"), ".part-00001."); err == nil {
		t.Error("removeStale of a missing directory succeeded")
	}
}

func TestHidden(t *testing.T) {
	for name, want := range map[string]bool{
		"part-00000": false, ".part-00000.attempt-1.inprogress": true, "_SUCCESS": true, "a_b": false, ".": true,
	} {
		if hidden(name) != want {
			t.Errorf("hidden(%q) = %v", name, !want)
		}
	}
}
