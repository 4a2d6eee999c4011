package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-run/weir/internal/pki"
)

func weirCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = execute(context.Background(), args, streams{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestCertsInitAndIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if code, out, errs := weirCmd("certs", "init", "--dir", dir); code != 0 || !strings.Contains(out, "ca.crt") {
		t.Fatalf("certs init: %d %q %q", code, out, errs)
	}
	if code, out, errs := weirCmd("certs", "issue", "--dir", dir, "--role", "worker", "--name", "worker-1", "--hosts", "10.0.0.2,w1.internal"); code != 0 || !strings.Contains(out, "issued worker/worker-1") {
		t.Fatalf("certs issue: %d %q %q", code, out, errs)
	}
	src, err := pki.NewSource(pki.Files{CA: filepath.Join(dir, pki.CAFile), Cert: pki.CertFile(dir, "worker-1"), Key: pki.KeyFile(dir, "worker-1")})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := src.Identity(); err != nil || id != (pki.Identity{Role: pki.RoleWorker, Name: "worker-1"}) {
		t.Errorf("the issued certificate names %v, %v", id, err)
	}
	if fi, err := os.Stat(pki.KeyFile(dir, "worker-1")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi.Mode(), err)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"certs", "init", "--dir", dir}, exitFailure, "already exists"},
		{[]string{"certs", "issue", "--dir", dir, "--role", "root", "--name", "x"}, exitUsage, "--role: unknown role"},
		{[]string{"certs", "issue", "--dir", dir, "--role", "client", "--name", "a b"}, exitUsage, "--name: bad name"},
		{[]string{"certs", "issue", "--dir", dir, "--role", "client", "--name", "a", "--valid", "-1h"}, exitUsage, "--valid must be positive"},
		{[]string{"certs", "issue", "--dir", dir, "--role", "client"}, exitUsage, `"name" not set`},
		{[]string{"certs", "issue", "--dir", t.TempDir(), "--role", "client", "--name", "a"}, exitFailure, "weir certs init"},
	} {
		code, _, errs := weirCmd(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("weir %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
	}
}

// certs init --issue sets a whole cluster up in one command (a container's
// init step), and with --keep running it again keeps every file.
func TestCertsInitIssueKeep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	args := []string{"certs", "init", "--dir", dir, "--keep", "--issue", "etcd:etcd-1:etcd-1", "--issue", "coordinator:coord-1:coord-1,10.0.0.1", "--issue", "client:admin"}
	code, out, errs := weirCmd(args...)
	want := "created the cluster CA: " + filepath.Join(dir, "ca.crt") + " (key " + filepath.Join(dir, "ca.key") + ", keep it safe)\n" +
		"issued etcd/etcd-1: " + filepath.Join(dir, "etcd-1.crt") + ", key " + filepath.Join(dir, "etcd-1.key") + "\n" +
		"issued coordinator/coord-1: " + filepath.Join(dir, "coord-1.crt") + ", key " + filepath.Join(dir, "coord-1.key") + "\n" +
		"issued client/admin: " + filepath.Join(dir, "admin.crt") + ", key " + filepath.Join(dir, "admin.key") + "\n"
	if code != 0 || out != want || errs != "" {
		t.Fatalf("first run: %d\n%s\nwant\n%s%s", code, out, want, errs)
	}
	src, err := pki.NewSource(pki.Files{CA: filepath.Join(dir, pki.CAFile), Cert: pki.CertFile(dir, "coord-1"), Key: pki.KeyFile(dir, "coord-1")})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := src.Identity(); err != nil || id != (pki.Identity{Role: pki.RoleCoordinator, Name: "coord-1"}) {
		t.Errorf("coord-1 names %v, %v", id, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	code, out, errs = weirCmd(args...)
	want = "kept the cluster CA: " + filepath.Join(dir, "ca.crt") + "\nkept " + filepath.Join(dir, "etcd-1.crt") + "\nkept " +
		filepath.Join(dir, "coord-1.crt") + "\nkept " + filepath.Join(dir, "admin.crt") + "\n"
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); code != 0 || out != want || errs != "" || !bytes.Equal(before, after) {
		t.Fatalf("second run: %d\n%s\nwant\n%s%s", code, out, want, errs)
	}
	if code, _, errs := weirCmd("certs", "init", "--dir", t.TempDir(), "--issue", "root:x"); code != exitUsage ||
		errs != "weir: --issue \"root:x\": --role: unknown role \"root\" (want one of coordinator, worker, etcd, client, viewer, operator, submitter, admin)\n" {
		t.Errorf("bad role: %d %q", code, errs)
	}
}
