package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/s3test"
)

// s3Servers are the real S3 servers the store is checked against, each
// started fresh (empty bucket) by its function, which returns the --store
// URL: s3://bucket?endpoint=http://127.0.0.1:PORT&use_path_style=true&region=us-east-1.
var s3Servers = []struct {
	name string
	url  func(testing.TB) string
}{
	{"gofakes3", s3test.Gofakes3},
	{"versitygw", s3test.Versitygw},
}

// forEachS3 runs fn against a store on a fresh server of each kind.
func forEachS3(t *testing.T, fn func(t *testing.T, ctx context.Context, s *Store, url string)) {
	for _, srv := range s3Servers {
		t.Run(srv.name, func(t *testing.T) {
			url := srv.url(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := Open(ctx, url)
			if err != nil {
				t.Fatalf("Open(%q): %v", url, err)
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			fn(t, ctx, s, url)
		})
	}
}

// randomBytes is incompressible content of n bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

func TestS3RoundTrip(t *testing.T) {
	// 17 MiB is over the SDK's 8 MiB part size, so the upload is multipart,
	// as for a real job binary.
	sizes := map[string]int{"small": 160000, "multipart": 17 << 20}
	forEachS3(t, func(t *testing.T, ctx context.Context, s *Store, url string) {
		var want []string
		for _, name := range []string{"small", "multipart"} {
			content := randomBytes(sizes[name])
			sha := digest(content)
			if _, ok, err := s.HasBinary(ctx, sha); err != nil || ok {
				t.Fatalf("%s: HasBinary before put = %v, %v; want false, nil", name, ok, err)
			}
			n, err := s.PutBinary(ctx, bytes.NewReader(content), sha)
			if err != nil {
				t.Fatalf("%s: PutBinary: %v", name, err)
			}
			if n != int64(len(content)) {
				t.Fatalf("%s: PutBinary size = %d, want %d", name, n, len(content))
			}
			size, ok, err := s.HasBinary(ctx, sha)
			if err != nil || !ok || size != int64(len(content)) {
				t.Fatalf("%s: HasBinary = %d, %v, %v; want %d, true, nil", name, size, ok, err, len(content))
			}
			r, size, err := s.OpenBinary(ctx, sha)
			if err != nil {
				t.Fatalf("%s: OpenBinary: %v", name, err)
			}
			got, err := io.ReadAll(r)
			if cerr := r.Close(); cerr != nil {
				t.Errorf("%s: reader Close: %v", name, cerr)
			}
			if err != nil {
				t.Fatalf("%s: read: %v", name, err)
			}
			if size != int64(len(content)) || !bytes.Equal(got, content) {
				t.Fatalf("%s: OpenBinary returned %d bytes (size %d, sha256 %s), want the %d put",
					name, len(got), size, digest(got)[:12], len(content))
			}
			// Already stored: not read again.
			if n, err := s.PutBinary(ctx, panicReader{}, sha); err != nil || n != int64(len(content)) {
				t.Fatalf("%s: second PutBinary = %d, %v; want %d, nil", name, n, err, len(content))
			}
			want = append(want, "binaries/"+sha)
		}
		got := keys(t, s)
		if len(got) != len(want) {
			t.Fatalf("keys = %v, want %v", got, want)
		}
		for _, k := range want {
			if !strings.Contains(strings.Join(got, " "), k) {
				t.Fatalf("keys = %v, want %v", got, want)
			}
		}
	})
}

func TestS3MismatchLeavesNothing(t *testing.T) {
	forEachS3(t, func(t *testing.T, ctx context.Context, s *Store, url string) {
		// A small write (one PutObject, never sent) and a multipart one
		// (parts already uploaded when the mismatch is found: the upload
		// must be aborted, not completed).
		for _, content := range [][]byte{[]byte("the real content"), randomBytes(17 << 20)} {
			wrong := digest([]byte("something else"))
			_, err := s.PutBinary(ctx, bytes.NewReader(content), wrong)
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("PutBinary(%d bytes) err = %v, want ErrDigestMismatch", len(content), err)
			}
			if _, ok, err := s.HasBinary(ctx, wrong); err != nil || ok {
				t.Fatalf("HasBinary after mismatch = %v, %v; want false, nil", ok, err)
			}
			if k := keys(t, s); len(k) != 0 {
				t.Fatalf("keys after mismatch of %d bytes = %v, want none", len(content), k)
			}
			if p := s3test.PendingUploads(t, url); len(p) != 0 {
				t.Fatalf("multipart uploads left after mismatch of %d bytes: %v, want none", len(content), p)
			}
		}
		// The store is still usable with the same context.
		content := []byte("fine")
		if _, err := s.PutBinary(ctx, bytes.NewReader(content), digest(content)); err != nil {
			t.Fatalf("PutBinary after mismatches: %v", err)
		}
	})
}

func TestS3ReadErrorLeavesNothing(t *testing.T) {
	forEachS3(t, func(t *testing.T, ctx context.Context, s *Store, url string) {
		for _, after := range []int{100000, 9 << 20, 17 << 20} {
			sha := digest([]byte("whatever"))
			_, err := s.PutBinary(ctx, &failingReader{after: after}, sha)
			if err == nil || !strings.Contains(err.Error(), "connection reset") {
				t.Fatalf("PutBinary(fails after %d bytes) err = %v, want the reader's error", after, err)
			}
			if k := keys(t, s); len(k) != 0 {
				t.Fatalf("keys after failed put = %v, want none", k)
			}
			if p := s3test.PendingUploads(t, url); len(p) != 0 {
				t.Fatalf("multipart uploads left after failed put of %d bytes: %v, want none", after, p)
			}
		}
	})
}

func TestS3NotFound(t *testing.T) {
	forEachS3(t, func(t *testing.T, ctx context.Context, s *Store, url string) {
		sha := digest([]byte("absent"))
		_, _, err := s.OpenBinary(ctx, sha)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("OpenBinary err = %v, want ErrNotFound", err)
		}
		if _, ok, err := s.HasBinary(ctx, sha); err != nil || ok {
			t.Fatalf("HasBinary = %v, %v; want false, nil", ok, err)
		}
	})
}
