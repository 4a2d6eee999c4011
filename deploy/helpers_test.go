package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var weirBin struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// weirBinary builds ./cmd/weir once per test binary and returns its path.
func weirBinary(t *testing.T) string {
	t.Helper()
	weirBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "weir-deploy-test")
		if err != nil {
			weirBin.err = err
			return
		}
		weirBin.path = filepath.Join(dir, "weir")
		build := exec.Command("go", "build", "-o", weirBin.path, "./cmd/weir")
		build.Dir = ".."
		weirBin.out, weirBin.err = build.CombinedOutput()
	})
	if weirBin.err != nil {
		t.Fatalf("go build ./cmd/weir: %v\n%s", weirBin.err, weirBin.out)
	}
	return weirBin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if weirBin.path != "" {
		os.RemoveAll(filepath.Dir(weirBin.path))
	}
	os.Exit(code)
}
