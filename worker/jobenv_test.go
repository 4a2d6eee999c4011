package worker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
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
