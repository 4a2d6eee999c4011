package file

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// taskInfo is a TaskInfo for opening writers directly.
type taskInfo struct {
	subtask  int
	attempt  int64
	restored [][]byte
	has      bool
}

func (t taskInfo) Subtask() int                  { return t.subtask }
func (t taskInfo) Parallelism() int              { return 1 }
func (t taskInfo) Attempt() int64                { return t.attempt }
func (t taskInfo) JobID() string                 { return "job" }
func (t taskInfo) UID() string                   { return "sink" }
func (t taskInfo) Restored() ([][]byte, bool)    { return t.restored, t.has }
func (t taskInfo) RestoredAll() ([][]byte, bool) { return t.restored, t.has }
func (t taskInfo) RestoredParallelism() int {
	if t.has {
		return 1
	}
	return 0
}
func (t taskInfo) Checkpointing() bool  { return true }
func (t taskInfo) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openWriter(t *testing.T, dir string, info taskInfo) *sinkWriter[int] {
	t.Helper()
	w := &sinkWriter[int]{dir: dir, subtask: info.subtask, attempt: info.attempt, format: strconv.Itoa}
	if err := w.recover(info); err != nil {
		t.Fatal(err)
	}
	return w
}

func write(t *testing.T, w *sinkWriter[int], vs ...int) {
	t.Helper()
	for _, v := range vs {
		if err := w.Write(v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSinkWithoutCheckpointsPublishesAtEnd(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, taskInfo{attempt: 1})
	write(t, w, 1, 2)
	if v := visible(listDir(t, dir)); len(v) != 0 {
		t.Fatalf("visible before Finish: %v", v)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if names := listDir(t, dir); !slices.Equal(names, []string{"part-00000-end"}) {
		t.Fatalf("after Finish: %v", names)
	}
	if got := read(t, filepath.Join(dir, "part-00000-end")); got != "1\n2\n" {
		t.Fatalf("content %q", got)
	}
}

func TestSinkTwoPhaseCommit(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, taskInfo{attempt: 1})
	write(t, w, 1, 2)
	if _, err := w.PreCommit(5); err != nil {
		t.Fatal(err)
	}
	if v := visible(listDir(t, dir)); len(v) != 0 {
		t.Fatalf("visible after PreCommit, before the checkpoint completed: %v", v)
	}
	write(t, w, 3)
	if err := w.Commit(5); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "part-00000-5")); got != "1\n2\n" {
		t.Fatalf("committed checkpoint 5 holds %q, want the records before its barrier", got)
	}
	if err := w.Commit(5); err != nil { // a repeated notification is harmless
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := visible(listDir(t, dir)); !slices.Equal(got, []string{"part-00000-5", "part-00000-end"}) {
		t.Fatalf("visible %v", got)
	}
	if got := read(t, filepath.Join(dir, "part-00000-end")); got != "3\n" {
		t.Fatalf("end file %q", got)
	}
}

// A restore from checkpoint 5 commits what 5 had pending, and removes what
// was committed after it and every hidden leftover: that data is replayed.
func TestSinkRestoreCommitsPendingAndDropsLaterOutput(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, taskInfo{attempt: 1})
	write(t, w, 1)
	state5, err := w.PreCommit(5)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 2)
	if _, err := w.PreCommit(7); err != nil {
		t.Fatal(err)
	}
	// Checkpoint 7's notification reached this subtask, and then the input
	// ended; yet the job failed before finishing and restores from 5.
	if err := w.Commit(7); err != nil {
		t.Fatal(err)
	}
	write(t, w, 3)
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	write(t, w, 4) // an in-progress file of a dying attempt
	os.WriteFile(filepath.Join(dir, "part-00001-9"), []byte("other subtask\n"), 0o644)

	r := openWriter(t, dir, taskInfo{attempt: 2, restored: state5, has: true})
	got := visible(listDir(t, dir))
	if !slices.Equal(got, []string{"part-00000-5", "part-00001-9"}) {
		t.Fatalf("visible after restore from 5: %v, want only checkpoint 5's output (and other subtasks' files)", got)
	}
	if hid := slices.DeleteFunc(listDir(t, dir), func(n string) bool { return !strings.HasPrefix(n, ".part-00000-") }); len(hid) != 0 {
		t.Fatalf("hidden leftovers of subtask 0: %v", hid)
	}
	if c := read(t, filepath.Join(dir, "part-00000-5")); c != "1\n" {
		t.Fatalf("part-00000-5 = %q", c)
	}
	r.Close()
	w.Close()
}

func TestSinkCloseWithoutFinishDiscards(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, taskInfo{attempt: 1})
	write(t, w, 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}

func TestHidden(t *testing.T) {
	for name, want := range map[string]bool{".x": true, "_SUCCESS": true, "part-00000-end": false} {
		if hidden(name) != want {
			t.Errorf("hidden(%q) = %v", name, !want)
		}
	}
}

// A restart from the beginning (no checkpoint to restore) drops the output
// of earlier attempts, which it is about to write again.
func TestSinkRestartFromScratchDropsEarlierOutput(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, taskInfo{attempt: 1})
	write(t, w, 1)
	w.PreCommit(3)
	w.Commit(3)
	write(t, w, 2)
	w.Finish()
	w.Close()
	if got := visible(listDir(t, dir)); len(got) != 2 {
		t.Fatalf("setup: %v", got)
	}
	openWriter(t, dir, taskInfo{attempt: 1}).Close() // a first attempt never deletes output
	if got := visible(listDir(t, dir)); len(got) != 2 {
		t.Fatalf("first attempt deleted output: %v", got)
	}
	openWriter(t, dir, taskInfo{attempt: 2}).Close()
	if got := listDir(t, dir); len(got) != 0 {
		t.Fatalf("after a restart from scratch: %v", got)
	}
}

// With checkpoints, Finish commits nothing: the final checkpoint after it
// pre-commits the last file and its completion commits it (FLIP-147).
func TestSinkFinalCheckpointCommitsTheEnd(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, taskInfo{attempt: 1})
	w.final = true
	write(t, w, 1, 2)
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if v := visible(listDir(t, dir)); len(v) != 0 {
		t.Fatalf("visible after Finish, before the final checkpoint: %v", v)
	}
	if _, err := w.PreCommit(9); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(9); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := visible(listDir(t, dir)); !slices.Equal(got, []string{"part-00000-9"}) {
		t.Fatalf("visible %v, want the final checkpoint's file", got)
	}
	if got := read(t, filepath.Join(dir, "part-00000-9")); got != "1\n2\n" {
		t.Fatalf("final file %q", got)
	}
}
