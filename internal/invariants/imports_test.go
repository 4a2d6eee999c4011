package invariants

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/weir-run/weir"

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages returns every package of the module with its direct imports.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// under reports whether path is dir or inside it (dir relative to the module).
func under(path, dir string) bool {
	full := module + "/" + dir
	return path == full || strings.HasPrefix(path, full+"/")
}

// rule says which of our packages a tree may import (allow) or must not (deny).
type rule struct {
	tree  string
	allow []string // if set, only these of our trees (plus the tree itself)
	deny  []string
}

var rules = []rule{
	{tree: "proto", allow: []string{}},
	{tree: "internal", allow: []string{"proto"}},
	{tree: "sdk", allow: []string{"proto", "internal"}},
	// The task runtime owns the untyped contracts that sdk compiles
	// pipelines into: it never imports sdk, so the contract stays written
	// down in its own API instead of reaching back into sdk's internals.
	{tree: "sdk/internal/runtime", deny: []string{"sdk"}},
	// Job binaries are built against sdk only.
	{tree: "jobs", allow: []string{"sdk"}},
	// The Nexmark model is shared by the bench job, the baselines and the
	// Beam peer, so that all three see the same events. It is a leaf but for
	// the standard-library-only framing helper its codecs use.
	{tree: "bench/nexmark", allow: []string{"internal/uvarintframe"}},
	{tree: "internal/uvarintframe", allow: []string{}},
	// The bench's job is a job binary (sdk) over the Nexmark model.
	{tree: "bench/job", allow: []string{"sdk", "bench/nexmark", "internal/uvarintframe"}},
	{tree: "coordinator", deny: []string{"sdk", "worker", "jobs"}},
	{tree: "worker", deny: []string{"coordinator", "sdk", "jobs"}},
}

// purePackages take time as input and do no I/O, so their tests drive them
// step by step (docs/architecture.md, "Pure state machines").
var purePackages = []string{"coordinator/jobgraph", "coordinator/scheduler", "coordinator/jobmaster", "coordinator/checkpoint", "internal/align"}

var impure = []string{"net", "os", "os/exec", "google.golang.org/grpc", "go.etcd.io/", "github.com/twmb/franz-go", "github.com/cockroachdb/pebble"}

func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, r := range rules {
			if !under(p.ImportPath, r.tree) {
				continue
			}
			for _, imp := range p.Imports {
				if !strings.HasPrefix(imp, module+"/") || under(imp, r.tree) {
					continue
				}
				if r.allow != nil && !anyUnder(imp, r.allow) {
					t.Errorf("%s imports %s: %s may import only %v of weir", p.ImportPath, imp, r.tree, r.allow)
				}
				if anyUnder(imp, r.deny) {
					t.Errorf("%s imports %s: %s must not import %v", p.ImportPath, imp, r.tree, r.deny)
				}
			}
		}
		for _, pure := range purePackages {
			if p.ImportPath != module+"/"+pure {
				continue
			}
			for _, imp := range p.Imports {
				for _, bad := range impure {
					if imp == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(imp, bad)) || strings.HasPrefix(imp, bad+"/") {
						t.Errorf("pure package %s imports %s", p.ImportPath, imp)
					}
				}
			}
		}
	}
}

func anyUnder(path string, dirs []string) bool {
	for _, d := range dirs {
		if under(path, d) {
			return true
		}
	}
	return false
}

// TestRulesCatchViolations guards the checker itself.
func TestRulesCatchViolations(t *testing.T) {
	for _, c := range []struct {
		pkg, imp string
		bad      bool
	}{
		{"sdk", "coordinator/jobgraph", true},
		{"sdk/connector/file", "sdk", false},
		{"jobs/wordcount", "internal/state", true},
		{"worker", "coordinator/leader", true},
		{"coordinator", "internal/objstore", false},
		{"proto", "internal/state", true},
		{"jobs/wordcount", "bench/nexmark", true},
		{"bench/job", "bench/nexmark", false},
		{"bench/job", "sdk", false},
		{"bench/job", "bench/baseline", true},
		{"bench/job", "internal/state", true},
		{"bench/nexmark", "sdk", true},
		{"sdk/internal/runtime", "sdk", true},
		{"sdk/internal/runtime", "sdk/connector/file", true},
		{"sdk/internal/runtime", "internal/exchange", false},
		{"sdk/internal/runtime", "proto/weir/v1", false},
		{"sdk", "sdk/internal/runtime", false},
		{"bench/nexmark", "internal/uvarintframe", false},
		{"bench/nexmark", "internal/objstore", true},
		{"internal/uvarintframe", "internal/keygroup", true},
	} {
		bad := false
		for _, r := range rules {
			if !under(module+"/"+c.pkg, r.tree) || under(module+"/"+c.imp, r.tree) {
				continue
			}
			imp := module + "/" + c.imp
			if (r.allow != nil && !anyUnder(imp, r.allow)) || anyUnder(imp, r.deny) {
				bad = true
			}
		}
		if bad != c.bad {
			t.Errorf("%s importing %s: violation=%v, want %v", c.pkg, c.imp, bad, c.bad)
		}
	}
}
