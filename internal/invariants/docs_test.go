package invariants

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The docs test: README.md, every other Markdown file and every Go comment
// may name only what the repository has.
//
//   - paths: a Markdown link's target (relative to the file), and in
//     Markdown code spans and code blocks, and anywhere in Go comments, a
//     token that looks like a repository path (its first element is one of
//     the repository's top-level directories) must exist. A path followed by
//     .Name (internal/watermark.Valve) names a symbol of an existing package.
//   - outside: no citation of the planning note that stays outside the
//     repository (its name, with or without .md, or "the design brief"; see
//     planNote), no link that
//     leaves the repository (../ above its root, an absolute path, file://).
//   - flags: in Markdown code spans and code-block lines, "weir CMD" must
//     name a command of the weir CLI, and the flags after it (up to a "--"
//     that starts the job's arguments, or a shell separator) must be flags
//     of that command that are not deprecated. Flags of other programs on
//     other lines or spans (go, docker, kafka, etcdctl, curl, a job binary)
//     are never attributed to weir. The CLI lists its flags itself with the
//     hidden "weir flags" command. In README.md and docs/*.md (weir's own
//     docs; other Markdown files describe other programs too), a --flag
//     alone in a code span (`--lease-ttl`, `--brokers`) names no command: it
//     must be a flag of some weir command or be defined by some program of
//     the repository (a job, the bench), that is, be a string literal in its
//     Go code.
//   - dependencies: every direct requirement of go.mod, tools/go.mod and
//     bench/peers/beam/go.mod is named in docs/decisions.md.

// repoRoot is the repository root, relative to this package.
const repoRoot = "../.."

// pendingForLead are findings in sdk/, coordinator/, worker/ and proto/,
// whose owners fix them; each entry is "file: text the finding contains".
// The test fails when an entry no longer matches, so that it is removed
// with the fix.
var pendingForLead = []string{}

// finding is one violation, at file:line.
type finding struct {
	file string
	line int
	msg  string
}

func (f finding) String() string { return fmt.Sprintf("%s:%d: %s", f.file, f.line, f.msg) }

// repo is what the checker knows of the repository: which paths exist,
// its top-level directories and the CLI's flags ("CMD --NAME" keys; the
// value is false for a deprecated flag).
type repo struct {
	exists  func(rel string) (exists, isDir bool)
	topDirs map[string]bool
	flags   map[string]bool
	cmds    map[string]bool
	// literals are the string literals of the repository's non-test Go
	// code, where jobs and tools define their flags.
	literals map[string]bool
}

// planNote is the name of the planning note that is not part of the
// repository, spelled in pieces so that this file does not cite it itself.
const planNote = "DES" + "IGN"

var (
	outsideDoc = regexp.MustCompile(`\b` + planNote + `(\.md)?\b|(?i:\bdesign brief\b)`)
	mdLink     = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	pathRun    = regexp.MustCompile(`[A-Za-z0-9_./-]+`)
	codeSpan   = regexp.MustCompile("`([^`\n]+)`")
	scheme     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	flagTok    = regexp.MustCompile(`^--?[A-Za-z][A-Za-z0-9-]*$`)
	weirCmd    = regexp.MustCompile(`(?:^|[\s(\[;&|$])weir\s+([a-z][a-z-]*)`)
	loneFlag   = regexp.MustCompile(`^--([A-Za-z][A-Za-z0-9-]*)(?:[ =]\S*)?$`)
)

// checkLoneFlag checks a code span that is a --flag alone (with a value).
func (r *repo) checkLoneFlag(file string, line int, span string) []finding {
	m := loneFlag.FindStringSubmatch(strings.TrimSpace(span))
	if m == nil {
		return nil
	}
	for key := range r.flags {
		if strings.HasSuffix(key, " --"+m[1]) {
			return nil
		}
	}
	if r.literals[m[1]] {
		return nil
	}
	return []finding{{file, line, fmt.Sprintf("--%s is a flag of no weir command and of no program in the repository", m[1])}}
}

// checkPaths reports the repository paths in text that do not exist.
func (r *repo) checkPaths(file string, line int, text string) []finding {
	var out []finding
	for _, loc := range pathRun.FindAllStringIndex(text, -1) {
		tok := text[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(text[loc[0]-1:loc[0]], ":$@~") {
			continue // a URL's host, a variable, an email, a home directory
		}
		tok = strings.TrimPrefix(tok, "./")
		tok = strings.TrimRight(tok, ".,:;")
		if strings.HasPrefix(tok, "/") || !strings.Contains(tok, "/") {
			continue
		}
		first, _, _ := strings.Cut(tok, "/")
		if !r.topDirs[first] {
			continue
		}
		if !r.pathOK(tok) {
			out = append(out, finding{file, line, fmt.Sprintf("names %s, which is not in the repository", tok)})
		}
	}
	return out
}

// pathOK reports whether p exists, or is an existing package's directory
// followed by .Symbol (coordinator/jobgraph.Regions).
func (r *repo) pathOK(p string) bool {
	if ok, _ := r.exists(strings.TrimSuffix(p, "/")); ok {
		return true
	}
	dir, base := path.Split(p)
	if i := strings.Index(base, "."); i > 0 {
		if ok, isDir := r.exists(dir + base[:i]); ok && isDir {
			return true
		}
	}
	return false
}

// checkOutside reports citations of documents outside the repository.
func checkOutside(file string, line int, text string) []finding {
	if m := outsideDoc.FindString(text); m != "" {
		return []finding{{file, line, fmt.Sprintf("cites a design document outside the repository (%q); put what matters in docs/ and point there", m)}}
	}
	return nil
}

// checkLink checks a Markdown link target in file.
func (r *repo) checkLink(file string, line int, target string) []finding {
	if strings.HasPrefix(target, "#") {
		return nil
	}
	if strings.HasPrefix(target, "file:") || strings.HasPrefix(target, "/") {
		return []finding{{file, line, fmt.Sprintf("links %s, outside the repository", target)}}
	}
	if scheme.MatchString(target) {
		return nil // http(s), mailto: the web is not checked here
	}
	target, _, _ = strings.Cut(target, "#")
	p := path.Join(path.Dir(file), target)
	if p == ".." || strings.HasPrefix(p, "../") {
		return []finding{{file, line, fmt.Sprintf("links %s, outside the repository", target)}}
	}
	if ok, _ := r.exists(p); !ok {
		return []finding{{file, line, fmt.Sprintf("links %s (%s), which is not in the repository", target, p)}}
	}
	return nil
}

// checkFlags checks every "weir CMD flags..." in one code span or one
// (joined) code-block line.
func (r *repo) checkFlags(file string, line int, seg string) []finding {
	var out []finding
	for _, m := range weirCmd.FindAllStringSubmatchIndex(seg, -1) {
		cmd := seg[m[2]:m[3]]
		if !r.cmds[cmd] {
			out = append(out, finding{file, line, fmt.Sprintf("weir %s: the weir CLI has no command %q", cmd, cmd)})
			continue
		}
		rest := strings.Fields(seg[m[3]:])
		for len(rest) > 0 && r.cmds[cmd+" "+rest[0]] { // a subcommand: weir certs issue
			cmd, rest = cmd+" "+rest[0], rest[1:]
		}
	tokens:
		for _, tok := range rest {
			switch {
			case tok == "--":
				break tokens // the job's arguments follow
			case strings.ContainsAny(tok[:1], "|;&#>"), tok == "\\":
				break tokens // another command, a comment, a redirection
			}
			tok = strings.Trim(tok, "[](),")
			tok, _, _ = strings.Cut(tok, "=")
			if !flagTok.MatchString(tok) {
				continue
			}
			live, ok := r.flags[cmd+" "+tok]
			switch {
			case !ok:
				out = append(out, finding{file, line, fmt.Sprintf("weir %s has no flag %s", cmd, tok)})
			case !live:
				out = append(out, finding{file, line, fmt.Sprintf("weir %s %s is deprecated; name its replacement", cmd, tok)})
			}
		}
	}
	return out
}

// checkMarkdown applies every rule to one Markdown file.
func (r *repo) checkMarkdown(file, text string) []finding {
	var out []finding
	lines := strings.Split(text, "\n")
	inCode := false
	for i := 0; i < len(lines); i++ {
		l, n := lines[i], i+1
		out = append(out, checkOutside(file, n, l)...)
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			// A shell line continued with a backslash is one command.
			for strings.HasSuffix(strings.TrimSpace(l), "\\") && i+1 < len(lines) {
				i++
				l = strings.TrimSuffix(strings.TrimSpace(l), "\\") + " " + lines[i]
			}
			out = append(out, r.checkPaths(file, n, l)...)
			out = append(out, r.checkFlags(file, n, l)...)
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
			out = append(out, r.checkLink(file, n, m[1])...)
		}
		for _, m := range codeSpan.FindAllStringSubmatch(l, -1) {
			out = append(out, r.checkPaths(file, n, m[1])...)
			out = append(out, r.checkFlags(file, n, m[1])...)
			if file == "README.md" || strings.HasPrefix(file, "docs/") {
				out = append(out, r.checkLoneFlag(file, n, m[1])...)
			}
		}
	}
	return out
}

// checkGoComments applies the path and outside rules to src's comments.
// It adds the string literals of non-test files to r.literals.
func (r *repo) checkGoComments(file string, src []byte) ([]finding, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	if r.literals != nil && !strings.HasSuffix(file, "_test.go") {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil {
					r.literals[v] = true
				}
			}
			return true
		})
	}
	var out []finding
	for _, g := range f.Comments {
		for _, c := range g.List {
			line := fset.Position(c.Pos()).Line
			for j, l := range strings.Split(c.Text, "\n") {
				out = append(out, checkOutside(file, line+j, l)...)
				out = append(out, r.checkPaths(file, line+j, l)...)
			}
		}
	}
	return out, nil
}

// checkDeps reports direct requirements of gomod that decisions does not
// name.
func checkDeps(gomodFile, gomod, decisions string) []finding {
	var out []finding
	inBlock := false
	for i, l := range strings.Split(gomod, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "require (":
			inBlock = true
			continue
		case inBlock && l == ")":
			inBlock = false
			continue
		case strings.HasPrefix(l, "require "):
			l = strings.TrimPrefix(l, "require ")
		case !inBlock:
			continue
		}
		fields := strings.Fields(l)
		if len(fields) < 2 || strings.Contains(l, "// indirect") || fields[0] == module || strings.HasPrefix(fields[0], module+"/") {
			continue
		}
		mod := fields[0]
		named := regexp.MustCompile(`(^|[^\w./-])` + regexp.QuoteMeta(mod) + `($|[^\w./-])`)
		if !named.MatchString(decisions) {
			out = append(out, finding{gomodFile, i + 1, fmt.Sprintf("direct dependency %s has no line in docs/decisions.md saying why it is there", mod)})
		}
	}
	return out
}

// realRepo describes this repository; flags come from the weir CLI.
func realRepo(t *testing.T) *repo {
	t.Helper()
	r := &repo{topDirs: map[string]bool{}, flags: map[string]bool{}, cmds: map[string]bool{}, literals: map[string]bool{}}
	r.exists = func(rel string) (bool, bool) {
		fi, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(rel)))
		return err == nil, err == nil && fi.IsDir()
	}
	entries, err := os.ReadDir(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != ".git" {
			r.topDirs[e.Name()] = true
		}
	}
	bin := filepath.Join(t.TempDir(), "weir")
	build := exec.Command("go", "build", "-o", bin, "./cmd/weir")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/weir: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "flags").Output()
	if err != nil {
		t.Fatalf("weir flags: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// "COMMAND PATH -FLAG [deprecated]": the command path may have
		// several words (certs issue).
		f := strings.Fields(sc.Text())
		i := slices.IndexFunc(f, func(w string) bool { return strings.HasPrefix(w, "-") })
		if i < 1 {
			continue
		}
		cmd := strings.Join(f[:i], " ")
		r.cmds[cmd] = true
		r.flags[cmd+" "+f[i]] = len(f) == i+1
	}
	if !r.cmds["run"] || !r.flags["run --parallelism"] {
		t.Fatalf("weir flags listed no run --parallelism:\n%s", out)
	}
	return r
}

// docFiles lists the repository's Markdown and Go files (slash paths).
func docFiles(t *testing.T) (md, goFiles []string) {
	t.Helper()
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(rel, ".md"):
			md = append(md, rel)
		case strings.HasSuffix(rel, ".go") && rel != "internal/invariants/docs_test.go":
			// (This file's comments and self-tests name violations on purpose.)
			goFiles = append(goFiles, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return md, goFiles
}

func TestDocs(t *testing.T) {
	r := realRepo(t)
	md, goFiles := docFiles(t)
	if !slices.Contains(md, "README.md") || !slices.Contains(md, "docs/decisions.md") || len(goFiles) < 100 {
		t.Fatalf("found %d Markdown files (%v) and %d Go files", len(md), md, len(goFiles))
	}
	var all []finding
	for _, f := range goFiles {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := r.checkGoComments(f, b)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, fs...)
	}
	// After the Go files: their literals hold the flags of jobs and tools.
	for _, f := range md {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, r.checkMarkdown(f, string(b))...)
	}
	decisions, err := os.ReadFile(filepath.Join(repoRoot, "docs/decisions.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, gomod := range []string{"go.mod", "tools/go.mod", "bench/peers/beam/go.mod"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, gomod))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, checkDeps(gomod, string(b), string(decisions))...)
	}

	used := map[string]bool{}
	for _, f := range all {
		pending := false
		for _, p := range pendingForLead {
			file, text, _ := strings.Cut(p, ": ")
			if f.file == file && strings.Contains(f.msg, text) {
				pending, used[p] = true, true
			}
		}
		if pending {
			t.Logf("pending (sdk/coordinator/worker/proto owners fix it): %v", f)
			continue
		}
		t.Error(f)
	}
	for _, p := range pendingForLead {
		if !used[p] {
			t.Errorf("pendingForLead entry %q matches nothing any more: remove it", p)
		}
	}
}

// fakeRepo is a repository of a few files for the self-tests.
func fakeRepo() *repo {
	files := map[string]bool{ // path: is a directory
		"README.md": false, "docs": true, "docs/architecture.md": false,
		"internal": true, "internal/exchange": true, "internal/exchange/exchange.go": false,
		"coordinator": true, "coordinator/jobmaster": true, "coordinator/jobmaster/region.go": false,
		"jobs": true, "jobs/wordcount": true, "cmd": true, "cmd/weir": true,
	}
	return &repo{
		exists: func(rel string) (bool, bool) {
			isDir, ok := files[rel]
			return ok, isDir
		},
		topDirs: map[string]bool{"docs": true, "internal": true, "coordinator": true, "jobs": true, "cmd": true},
		flags: map[string]bool{"run --parallelism": true, "run -p": true, "run --detach": true,
			"local --kafka": true, "local --kafka-addr": true, "coordinator --worker-timeout": true,
			"coordinator --heartbeat-timeout": false, "certs issue --name": true},
		cmds:     map[string]bool{"run": true, "local": true, "coordinator": true, "certs": true, "certs issue": true},
		literals: map[string]bool{"brokers": true},
	}
}

// TestDocsRulesCatchViolations guards the checker itself: each rule
// reports a broken doc and stays quiet on a correct one.
func TestDocsRulesCatchViolations(t *testing.T) {
	r := fakeRepo()
	for _, c := range []struct {
		name string
		md   string // a docs/x.md
		want []string
	}{
		{"clean", "See [the architecture](architecture.md#packages), [the README](../README.md) and `coordinator/jobmaster/region.go`.\n" +
			"`internal/exchange.Kind` is a symbol; `checkpoints/<job>/shared/` is not a repository path; https://example.com/docs/x.\n" +
			"```sh\nweir run -p 4 --detach ./jobs/wordcount -- --input /data/words.txt --parallelism-of-the-job 3\n" +
			"go test -count=1 -run Docs ./internal/exchange/\ndocker run --rm -p 9000:9000 image\nkafka-topics --bootstrap-server b:9092 --create\n" +
			"etcdctl member add --peer-urls http://x:2380\ncurl -sS --fail http://127.0.0.1:8080/metrics\n```\n" +
			"`weir local [--kafka [--kafka-addr A]]` and `weir coordinator --worker-timeout 5s` and the job's `--brokers`.\n" +
			"Alone: `--worker-timeout`, `--kafka-addr A`, `--heartbeat-timeout` (its old name), go test's `-timeout`.\n", nil},
		{"missing link", "[gone](foo.md)", []string{"links foo.md (docs/foo.md)"}},
		{"link outside", "[up](../../elsewhere/DOC.md) and [abs](/etc/passwd)", []string{"links ../../elsewhere/DOC.md, outside", "links /etc/passwd, outside"}},
		{"missing code-span path", "The valve is in `internal/xyz`.", []string{"names internal/xyz"}},
		{"missing file in a package", "`coordinator/jobmaster/regions.go`", []string{"names coordinator/jobmaster/regions.go"}},
		{"missing path in a code block", "```sh\ngo build ./jobs/nexmark\n```", []string{"names jobs/nexmark"}},
		{"design citation", "As " + planNote + " §6 says.", []string{"outside the repository (\"" + planNote + "\")"}},
		{"design file", "See " + planNote + ".md.", []string{"(\"" + planNote + ".md\")"}},
		{"unknown flag in a code block", "```sh\nweir run --paralelism 2 ./job -- --input x\n```", []string{"weir run has no flag --paralelism"}},
		{"unknown flag in a code span", "`weir local --kafka-port 9092`", []string{"weir local has no flag --kafka-port"}},
		{"unknown short flag", "`weir run -x 2 BIN`", []string{"weir run has no flag -x"}},
		{"unknown flag of a subcommand", "`weir certs issue --name a --nmae b`", []string{"weir certs issue has no flag --nmae"}},
		{"flag on a continued line", "```sh\nweir run -p 2 \\\n  --detatch ./job\n```", []string{"weir run has no flag --detatch"}},
		{"deprecated flag", "`weir coordinator --heartbeat-timeout 5s`", []string{"--heartbeat-timeout is deprecated"}},
		{"unknown command", "`weir frobnicate --now`", []string{"no command \"frobnicate\""}},
		{"unknown lone flag", "Set `--worker-timout 5s`.", []string{"--worker-timout is a flag of no weir command"}},
	} {
		got := r.checkMarkdown("docs/x.md", c.md)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d findings %v, want %d %q", c.name, len(got), got, len(c.want), c.want)
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i].msg, w) {
				t.Errorf("%s: finding %q, want one containing %q", c.name, got[i].msg, w)
			}
		}
	}

	src := []byte(`// Package p does things (` + planNote + ` §9).
//
// The machine is coordinator/jobmaster/region.go, the gone one
// coordinator/jobmaster/gone.go; github.com/weir-run/weir/internal/nothing
// is an import path and internal/exchange.Frame a symbol.
package p

// f uses docs/architecture.md and docs/missing.md.
func f() {}
`)
	got, err := r.checkGoComments("p/p.go", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p/p.go:1: cites a design document", "p/p.go:4: names coordinator/jobmaster/gone.go", "p/p.go:8: names docs/missing.md"}
	if len(got) != len(want) {
		t.Fatalf("Go comments: findings %v, want %q", got, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].String(), w) {
			t.Errorf("Go comments: finding %q, want %q", got[i], w)
		}
	}

	gomod := "module github.com/weir-run/weir\n\nrequire example.com/single v1.0.0\n\nrequire (\n\texample.com/named v1.0.0\n\texample.com/unnamed v1.2.0\n\texample.com/named/sub v0.1.0\n\texample.com/indirect v1.0.0 // indirect\n)\n"
	decisions := "| `example.com/single` | why |\n| `example.com/named` | why |\n"
	deps := checkDeps("go.mod", gomod, decisions)
	if len(deps) != 2 || !strings.Contains(deps[0].msg, "example.com/unnamed ") || !strings.Contains(deps[1].msg, "example.com/named/sub ") {
		t.Errorf("dependencies: %v, want example.com/unnamed and example.com/named/sub", deps)
	}
}
