package filehash

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestSHA256(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"", "weir", string(make([]byte, 1<<20+7))} {
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum, size, err := SHA256(path)
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256([]byte(content))
		if sum != hex.EncodeToString(want[:]) || size != int64(len(content)) {
			t.Errorf("SHA256 of %d bytes = %s, %d; want %x, %d", len(content), sum, size, want, len(content))
		}
	}
}

func TestSHA256Errors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := SHA256(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, _, err := SHA256(dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: %v, want ErrNotRegular", err)
	}
}
