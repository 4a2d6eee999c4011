package e2e

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEncryptedStateAndPurge: weir local seals every job's state with a
// key of its own. A job whose newest checkpoint manifest had a byte
// flipped is killed: the restore refuses it (authentication failed, naming
// the object), falls back to an older checkpoint, and the output after a
// savepoint and a resume is exact. No key of the state is readable
// anywhere in the store. Purging the savepoint's job makes the savepoint
// unusable, also from a copy of the store taken before the purge.
func TestEncryptedStateAndPurge(t *testing.T) {
	dir := t.TempDir()
	api, _, d := startLocalIn(t, dir, 2, 2)
	store := filepath.Join(dir, "store")
	out := filepath.Join(t.TempDir(), "out")
	const events, keys = 240000, 500
	args := []string{bins.keyedcount, "--", "--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys),
		"--rate", "20000", "--output", out}
	id := runDetached(t, api, append([]string{"-p", "2", "--checkpoint-interval", "1s"}, args...)...)

	// Right after a checkpoint completes, flip a byte of its manifest and
	// kill a job process: the restore meets the tampered manifest first.
	var newest checkpointJSON
	waitFor(t, 30*time.Second, "two completed checkpoints", func() bool {
		done := completed(checkpointsOf(t, api, id))
		if len(done) < 2 {
			return false
		}
		newest = done[0] // newest first
		return true
	})
	waitFor(t, 10*time.Second, "the next checkpoint", func() bool {
		done := completed(checkpointsOf(t, api, id))
		if last := done[0]; last.ID > newest.ID {
			newest = last
			return true
		}
		return false
	})
	manifest := strings.TrimPrefix(newest.Location, "file://"+filepath.ToSlash(store)+"/")
	b, err := os.ReadFile(filepath.Join(store, manifest))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(filepath.Join(store, manifest), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(jobPID(t, api, id), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the restore to refuse the tampered manifest", func() bool {
		log := d.out.String()
		return strings.Contains(log, "authentication failed") && strings.Contains(log, manifest)
	})
	waitFor(t, 30*time.Second, "the job to run again", func() bool {
		s := jobStatusOf(t, api, id)
		return s.State == "RUNNING" && s.Attempt > 1
	})

	stdout, stderr, code := weir(t, 60*time.Second, "stop", "--coordinator", api, "--savepoint", id)
	if code != 0 {
		t.Fatalf("weir stop --savepoint: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	sp := lines[len(lines)-1]
	waitFor(t, 20*time.Second, "the stopped job to end", func() bool { return jobStatusOf(t, api, id).State == "CANCELED" })
	backup := filepath.Join(t.TempDir(), "backup")
	if err := exec.Command("cp", "-a", store, backup).Run(); err != nil {
		t.Fatal(err)
	}

	resumed := runDetached(t, api, append([]string{"-p", "2", "--from-savepoint", sp}, args...)...)
	waitFinished(t, api, resumed, 120*time.Second)
	checkCounts(t, out, keys, events/keys)

	// The state holds keys k0..k499; none is readable in the store.
	var files int
	for _, top := range []string{"checkpoints", "savepoints"} {
		filepath.WalkDir(filepath.Join(store, top), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			files++
			b, _ := os.ReadFile(path)
			for _, needle := range []string{"k499", "k123", "leveldb.BytewiseComparator", "count"} {
				if bytes.Contains(b, []byte(needle)) {
					t.Errorf("%s holds %q in the clear", path, needle)
				}
			}
			return nil
		})
	}
	if files == 0 {
		t.Fatal("no state in the store: the check saw nothing")
	}

	stdout, stderr, code = weir(t, 30*time.Second, "purge", "--coordinator", api, id)
	if code != 0 || !strings.Contains(stdout, "its data key is destroyed") {
		t.Fatalf("weir purge: %d %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(store, strings.TrimPrefix(sp, "file://"+filepath.ToSlash(store)+"/"))); !os.IsNotExist(err) {
		t.Errorf("the purged job's savepoint is still in the store: %v", err)
	}
	copied := "file://" + filepath.ToSlash(backup) + strings.TrimPrefix(sp, "file://"+filepath.ToSlash(store))
	for _, from := range []string{sp, copied} {
		_, stderr, code := weir(t, 30*time.Second, "run", "--coordinator", api, "--detach", "--from-savepoint", from, bins.keyedcount,
			"--", "--events", "10", "--output", t.TempDir())
		if code == 0 || !strings.Contains(stderr, "job "+id+" was purged at") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("run --from-savepoint %s after the purge: exit %d, %q; want one line naming the purge", from, code, stderr)
		}
	}
	if _, stderr, code := weir(t, 30*time.Second, "purge", "--coordinator", api, resumed+"x"); code == 0 || !strings.Contains(stderr, "no job") {
		t.Errorf("purging an unknown job: %d %q", code, stderr)
	}
}

// jobPID is the pid of one of a running job's processes.
func jobPID(t *testing.T, api, id string) int {
	t.Helper()
	stdout, _, code := weir(t, 10*time.Second, "status", "--coordinator", api, id, "-o", "json")
	var st struct {
		Tasks []struct{ PID int }
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil {
		t.Fatalf("status: %s", stdout)
	}
	for _, task := range st.Tasks {
		if task.PID > 0 {
			return task.PID
		}
	}
	t.Fatal("no job process")
	return 0
}

// TestSavepointMovesToAnotherCluster: a savepoint of an encrypted job,
// copied to another cluster's store, is refused there until its job's key
// is exported (wrapped by the other cluster's KEK) and imported; then the
// job resumes there from it to an exact result.
func TestSavepointMovesToAnotherCluster(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	apiA, _, _ := startLocalIn(t, dirA, 2, 2)
	apiB, _, _ := startLocalIn(t, dirB, 2, 2)
	out := filepath.Join(t.TempDir(), "out")
	const events, keys = 100000, 200
	args := []string{bins.keyedcount, "--", "--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys),
		"--rate", "20000", "--output", out}
	id := runDetached(t, apiA, append([]string{"-p", "2", "--checkpoint-interval", "1s"}, args...)...)
	waitFor(t, 30*time.Second, "a completed checkpoint", func() bool { return len(completed(checkpointsOf(t, apiA, id))) > 0 })
	stdout, stderr, code := weir(t, 60*time.Second, "stop", "--coordinator", apiA, "--savepoint", id)
	if code != 0 {
		t.Fatalf("weir stop --savepoint: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	sp := lines[len(lines)-1]
	storeA, storeB := filepath.Join(dirA, "store"), filepath.Join(dirB, "store")
	os.MkdirAll(filepath.Join(storeB, "savepoints"), 0o755)
	if err := exec.Command("cp", "-a", filepath.Join(storeA, "savepoints", id), filepath.Join(storeB, "savepoints", id)).Run(); err != nil {
		t.Fatal(err)
	}
	spB := "file://" + filepath.ToSlash(storeB) + strings.TrimPrefix(sp, "file://"+filepath.ToSlash(storeA))

	resume := func() (string, int) {
		_, stderr, code := weir(t, 30*time.Second, append([]string{"run", "--coordinator", apiB, "--detach", "-p", "3", "--from-savepoint", spB}, args...)...)
		return stderr, code
	}
	if stderr, code := resume(); code == 0 || !strings.Contains(stderr, "encrypted under a key this cluster does not hold") {
		t.Fatalf("resuming on B before the import: exit %d, %q", code, stderr)
	}
	keyFile := filepath.Join(t.TempDir(), "job.key")
	if out, stderr, code := weir(t, 30*time.Second, "savepoint", "export", sp, "--kek", "file:"+filepath.Join(dirB, "kek"), "--out", keyFile, "--coordinator", apiA); code != 0 || !strings.Contains(out, "the key of job "+id) {
		t.Fatalf("weir savepoint export: %d %q %q", code, out, stderr)
	}
	if _, stderr, code := weir(t, 30*time.Second, "savepoint", "import", keyFile, "--coordinator", apiA); code == 0 || !strings.Contains(stderr, "does not open with this cluster's KEK") {
		t.Fatalf("importing B's key into A: exit %d, %q", code, stderr)
	}
	for _, want := range []string{": imported;", ": already here;"} {
		if out, stderr, code := weir(t, 30*time.Second, "savepoint", "import", keyFile, "--coordinator", apiB); code != 0 || !strings.Contains(out, want) {
			t.Fatalf("weir savepoint import: %d %q %q, want %q", code, out, stderr, want)
		}
	}
	stdout, stderr, code = weir(t, 30*time.Second, append([]string{"run", "--coordinator", apiB, "--detach", "-p", "3", "--from-savepoint", spB}, args...)...)
	if code != 0 {
		t.Fatalf("resuming on B after the import: %s", stderr)
	}
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	waitFinished(t, apiB, lines[len(lines)-1], 120*time.Second)
	checkCounts(t, out, keys, events/keys)
}
