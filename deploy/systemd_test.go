package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const unitBinary = "/usr/local/bin/weir"

// TestSystemdUnits verifies the units with systemd-analyze (against a weir
// built from this tree in place of /usr/local/bin/weir), and checks that
// their command lines use real flags and that they keep the hardening.
func TestSystemdUnits(t *testing.T) {
	units, err := filepath.Glob("systemd/*.service")
	if err != nil || len(units) != 3 {
		t.Fatalf("units %v, %v; want etcd, coordinator and worker", units, err)
	}
	cliFlags := weirFlags(t)
	bin := weirBinary(t)
	dir := t.TempDir()
	var copies []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		role := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(u), "weir-"), ".service")
		directives := map[string][]string{}
		for _, l := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
				directives[k] = append(directives[k], v)
			}
		}
		for k, want := range map[string]string{"ProtectSystem": "strict", "NoNewPrivileges": "yes", "Restart": "on-failure",
			"DynamicUser": "yes", "StateDirectory": "weir-" + role, "PrivateTmp": "yes", "CapabilityBoundingSet": ""} {
			if !slices.Equal(directives[k], []string{want}) {
				t.Errorf("%s: %s=%v, want %q", u, k, directives[k], want)
			}
		}
		execStart := strings.Fields(strings.Join(directives["ExecStart"], ""))
		if len(execStart) < 2 || execStart[0] != unitBinary || execStart[1] != role {
			t.Errorf("%s: ExecStart %v, want %s %s ...", u, execStart, unitBinary, role)
			continue
		}
		for _, a := range execStart[2:] {
			if strings.HasPrefix(a, "--") && !cliFlags[role+" "+a] {
				t.Errorf("%s: weir %s has no flag %s", u, role, a)
			}
		}
		cp := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(cp, []byte(strings.ReplaceAll(text, unitBinary, bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, cp)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian's systemd package has it): the units were checked but not verified")
	}
	var out bytes.Buffer
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, copies...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Any warning (an unknown key is only a warning) fails the test too.
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out.String())
	}
}
