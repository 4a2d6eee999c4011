package worker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A job process gets the allowlisted variables, HOME and TMPDIR in its
// private directory and its task variables; nothing else of the worker's
// environment (its tokens, TLS paths, other clouds' credentials).
func TestJobEnvIsAllowlisted(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".aws", "credentials"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	worker := []string{
		"PATH=/usr/bin:/bin", "HOME=" + home, "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C", "USER=weir",
		"WEIR_TOKEN=secret", "WEIR_TLS_KEY=/etc/weir/worker.key", "GOOGLE_APPLICATION_CREDENTIALS=/k.json",
		"AWS_ACCESS_KEY_ID=AKIA", "AWS_REGION=eu-west-1", "WEIR_CPUPROFILE_DIR=/prof", "SSH_AUTH_SOCK=/tmp/agent",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317",
	}
	got := jobEnv(worker, "/data/jobs/j-1-0", []string{"WEIR_JOB_ID=j"})
	want := []string{
		"HOME=/data/jobs/j-1-0", "TMPDIR=/data/jobs/j-1-0/tmp",
		"PATH=/usr/bin:/bin", "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C",
		"AWS_ACCESS_KEY_ID=AKIA", "AWS_REGION=eu-west-1", "WEIR_CPUPROFILE_DIR=/prof",
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, ".aws", "credentials"),
		"WEIR_JOB_ID=j",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("job environment\n got %q\nwant %q", got, want)
	}
}

// The worker's data directory and each job's directory are private to the
// worker's user, also when an older worker made them 0755.
func TestPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "jobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(dir, "jobs", "tmp"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "jobs"), filepath.Join(dir, "tmp")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
}

// A job process gets GOGC and GOMEMLIMIT from its job where it set them
// (weir run --gogc, --gomemlimit), else the defaults; the worker's own
// never pass.
func TestJobEnvGoRuntime(t *testing.T) {
	worker := []string{"PATH=/bin", "GOGC=50", "GOMEMLIMIT=1GiB"}
	const gib = int64(1) << 30
	for _, c := range []struct {
		name                      string
		gogc                      int32
		gomemlimit, memory, slots int64
		want                      []string
	}{
		{"defaults without a memory limit or slot memory: Go's own", 0, 0, 0, 0, nil},
		{"the job's soft limit alone", 0, gib, 0, 0, []string{"GOGC=400", "GOMEMLIMIT=1073741824"}},
		{"defaults under --memory 2GiB", 0, 0, 2 * gib, 0, []string{"GOGC=400", "GOMEMLIMIT=1932735283"}},
		{"defaults in 1 GiB of slot memory", 0, 0, 0, gib, []string{"GOGC=400", "GOMEMLIMIT=966367641"}},
		{"the job's --memory over slot memory", 0, 0, 2 * gib, gib, []string{"GOGC=400", "GOMEMLIMIT=1932735283"}},
		{"the job's own", 150, 3 * gib, 2 * gib, gib, []string{"GOGC=150", "GOMEMLIMIT=3221225472"}},
		{"collector off, no soft limit", -1, -1, 2 * gib, gib, []string{"GOGC=off"}},
	} {
		got := jobEnv(worker, "/d", append([]string{"WEIR_JOB_ID=j"}, goRuntimeEnv(c.gogc, c.gomemlimit, c.memory, c.slots)...))
		want := append([]string{"HOME=/d", "TMPDIR=/d/tmp", "PATH=/bin", "WEIR_JOB_ID=j"}, c.want...)
		if !slices.Equal(got, want) {
			t.Errorf("%s: job environment\n got %q\nwant %q", c.name, got, want)
		}
	}
}

// A process's slot memory is its slots' share of the worker's --memory:
// one slot per subtask of its largest vertex (slot sharing).
func TestSlotsMemory(t *testing.T) {
	refs := func(vertices ...int32) []*weirv1.SubtaskRef {
		var out []*weirv1.SubtaskRef
		for i, v := range vertices {
			out = append(out, &weirv1.SubtaskRef{VertexId: v, Subtask: int32(i)})
		}
		return out
	}
	const gib = int64(1) << 30
	for _, c := range []struct {
		cfg  Config
		subs []*weirv1.SubtaskRef
		want int64
	}{
		{Config{Slots: 4, Memory: 8 * gib}, refs(0, 1, 2), 2 * gib},       // one slot: a subtask of each of 3 vertices
		{Config{Slots: 4, Memory: 8 * gib}, refs(0, 0, 1, 1, 2), 4 * gib}, // two slots
		{Config{Slots: 4, Memory: 0}, refs(0), 0},                         // none: Go's defaults
	} {
		if got := c.cfg.slotsMemory(c.subs); got != c.want {
			t.Errorf("%d slots, %d bytes, %d subtasks: %d, want %d", c.cfg.Slots, c.cfg.Memory, len(c.subs), got, c.want)
		}
	}
	if DefaultMemory() <= 0 {
		t.Error("DefaultMemory read no memory from /proc/meminfo")
	}
}
