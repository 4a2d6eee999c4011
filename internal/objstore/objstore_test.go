package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// stores opens every backend the contract is checked against: the suite runs
// unchanged on each, so the fake (mem) and the real (file) cannot drift.
func stores(t *testing.T) map[string]*Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]*Store{}
	for name, url := range map[string]string{
		"mem":  "mem://",
		"file": "file://" + filepath.ToSlash(t.TempDir()),
	} {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		out[name] = s
	}
	return out
}

// keys lists everything visible in the bucket, so tests can assert that a
// failed put left nothing behind.
func keys(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	it := s.Bucket().List(nil)
	for {
		obj, err := it.Next(context.Background())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		out = append(out, obj.Key)
	}
}

func TestRoundTrip(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			content := bytes.Repeat([]byte("\x7fELF not really "), 10000)
			sha := digest(content)

			if _, ok, err := s.HasBinary(ctx, sha); err != nil || ok {
				t.Fatalf("HasBinary before put = %v, %v; want false, nil", ok, err)
			}
			n, err := s.PutBinary(ctx, bytes.NewReader(content), sha)
			if err != nil {
				t.Fatalf("PutBinary: %v", err)
			}
			if n != int64(len(content)) {
				t.Fatalf("PutBinary size = %d, want %d", n, len(content))
			}
			size, ok, err := s.HasBinary(ctx, sha)
			if err != nil || !ok || size != int64(len(content)) {
				t.Fatalf("HasBinary = %d, %v, %v; want %d, true, nil", size, ok, err, len(content))
			}
			r, size, err := s.OpenBinary(ctx, sha)
			if err != nil {
				t.Fatalf("OpenBinary: %v", err)
			}
			got, err := io.ReadAll(r)
			if cerr := r.Close(); cerr != nil {
				t.Errorf("reader Close: %v", cerr)
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if size != int64(len(content)) || !bytes.Equal(got, content) {
				t.Fatalf("OpenBinary returned %d bytes (size %d), want the %d put", len(got), size, len(content))
			}
			if k := keys(t, s); len(k) != 1 || k[0] != "binaries/"+sha {
				t.Fatalf("keys = %v, want [binaries/%s]", k, sha)
			}
		})
	}
}

func TestMismatchLeavesNothing(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			wrong := digest([]byte("something else"))
			_, err := s.PutBinary(ctx, strings.NewReader("the real content"), wrong)
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("PutBinary err = %v, want ErrDigestMismatch", err)
			}
			if _, ok, err := s.HasBinary(ctx, wrong); err != nil || ok {
				t.Fatalf("HasBinary after mismatch = %v, %v; want false, nil", ok, err)
			}
			if k := keys(t, s); len(k) != 0 {
				t.Fatalf("keys after mismatch = %v, want none", k)
			}
		})
	}
}

type failingReader struct{ after int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), f.after)
	f.after -= n
	return n, nil
}

func TestReadErrorLeavesNothing(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			sha := digest([]byte("whatever"))
			_, err := s.PutBinary(ctx, &failingReader{after: 100000}, sha)
			if err == nil || !strings.Contains(err.Error(), "connection reset") {
				t.Fatalf("PutBinary err = %v, want the reader's error", err)
			}
			if k := keys(t, s); len(k) != 0 {
				t.Fatalf("keys after failed put = %v, want none", k)
			}
		})
	}
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("PutBinary read an already stored binary") }

func TestIdempotentPut(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			content := []byte("job binary v1")
			sha := digest(content)
			for i := range 2 {
				n, err := s.PutBinary(ctx, bytes.NewReader(content), sha)
				if err != nil || n != int64(len(content)) {
					t.Fatalf("put %d = %d, %v; want %d, nil", i, n, err, len(content))
				}
			}
			// Already stored: the reader is not consumed at all.
			n, err := s.PutBinary(ctx, panicReader{}, sha)
			if err != nil || n != int64(len(content)) {
				t.Fatalf("put of stored binary = %d, %v; want %d, nil", n, err, len(content))
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			_, _, err := s.OpenBinary(context.Background(), digest([]byte("absent")))
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("OpenBinary err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestInvalidDigest(t *testing.T) {
	s := stores(t)["mem"]
	ctx := context.Background()
	upper := strings.ToUpper(digest(nil))
	for _, bad := range []string{"", "abc", upper, "../../etc/passwd" + strings.Repeat("0", 48)} {
		if _, err := s.PutBinary(ctx, strings.NewReader(""), bad); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("PutBinary(%q) err = %v, want ErrInvalidDigest", bad, err)
		}
		if _, _, err := s.HasBinary(ctx, bad); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("HasBinary(%q) err = %v, want ErrInvalidDigest", bad, err)
		}
		if _, _, err := s.OpenBinary(ctx, bad); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("OpenBinary(%q) err = %v, want ErrInvalidDigest", bad, err)
		}
	}
}

func TestValidSHA256(t *testing.T) {
	if !ValidSHA256(digest(nil)) {
		t.Errorf("ValidSHA256(%q) = false", digest(nil))
	}
	for _, bad := range []string{"", digest(nil)[:63], digest(nil) + "0", strings.ToUpper(digest(nil)), strings.Repeat("g", 64)} {
		if ValidSHA256(bad) {
			t.Errorf("ValidSHA256(%q) = true", bad)
		}
	}
}

func TestOpenBarePathCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	defer s.Close()
	content := []byte("hello")
	if _, err := s.PutBinary(context.Background(), bytes.NewReader(content), digest(content)); err != nil {
		t.Fatalf("PutBinary: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "binaries", digest(content)))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("file on disk = %q, %v; want %q", got, err, content)
	}
	// Temporary files are written next to the target; none may be left.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("leftover temporary file %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenUnsupported(t *testing.T) {
	for _, url := range []string{"gs://bucket", "ftp://host/dir", "relative/dir", "file://host/dir"} {
		_, err := Open(context.Background(), url)
		if !errors.Is(err, ErrUnsupportedURL) {
			t.Errorf("Open(%q) err = %v, want ErrUnsupportedURL", url, err)
		}
	}
}
