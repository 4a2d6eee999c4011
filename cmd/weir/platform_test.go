package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildTiny builds a one-file main package in its own module with env
// added to the build's environment, skipping the test when the toolchain
// (or, for cgo, a C compiler) is missing.
func buildTiny(t *testing.T, src string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "job")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("go build %v: %v\n%s", env, err, out)
	}
	return bin
}

// TestPlatformCheck: weir run refuses, before describing or dialling
// anything, a job binary the workers cannot start, with one line naming the
// build command that fixes it.
func TestPlatformCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc: cannot build a cgo binary")
	}
	const plain = "package main\n\nfunc main() {}\n"
	dynamic := buildTiny(t, "package main\n\n// int one(void) { return 1; }\nimport \"C\"\n\nfunc main() { _ = C.one() }\n",
		"CGO_ENABLED=1", "GOOS=linux", "GOARCH=amd64")
	static := buildTiny(t, plain, "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	arm := buildTiny(t, plain, "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	script := writeScript(t, t.TempDir(), "job", "#!/bin/sh\n", 0o755)
	const hint = "; build it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build\n"

	addr := closedAddr(t)
	for _, tc := range []struct {
		name, bin, platform, want string
	}{
		{"cgo", dynamic, "linux/amd64", "weir: " + dynamic + " is dynamically linked (needs /lib64/ld-linux-x86-64.so.2, libc.so.6), but workers run static binaries only (their image has no C library)" + hint},
		{"other arch", arm, "linux/amd64", "weir: " + arm + " is built for linux/arm64, but the workers run linux/amd64" + hint},
		{"script", script, "linux/amd64", "weir: " + script + " is not a Linux (ELF) executable, but the workers run linux/amd64" + hint},
		{"bad platform", static, "linux", "weir: --platform must be OS/ARCH, e.g. linux/amd64, got \"linux\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := weir(context.Background(), "run", "--coordinator", addr, "--platform", tc.platform, tc.bin)
			if code == exitOK || stdout != "" || stderr != tc.want {
				t.Fatalf("exit %d, stdout %q, stderr:\n%q\nwant:\n%q", code, stdout, stderr, tc.want)
			}
		})
	}
	// A static binary of the workers' platform passes the check: weir run
	// goes on to describe it (and this one prints no job graph).
	code, _, stderr := weir(context.Background(), "run", "--coordinator", addr, "--platform", "linux/amd64", static)
	if code == exitOK || strings.Contains(stderr, "go build") || !strings.Contains(stderr, "job graph") {
		t.Fatalf("static binary: exit %d, %s", code, stderr)
	}
	// "any" and other operating systems are not checked.
	for _, p := range []string{"any", "darwin/arm64"} {
		if err := checkPlatform(dynamic, "job", p); err != nil {
			t.Errorf("--platform %s: %v", p, err)
		}
	}
}
