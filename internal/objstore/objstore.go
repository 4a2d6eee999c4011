package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	// The schemes weir supports; each registers itself with blob's default URL mux.
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/weir-run/weir/internal/storelayout"
)

var (
	// ErrNotFound is returned (wrapped) when an object does not exist.
	ErrNotFound = errors.New("objstore: not found")
	// ErrDigestMismatch is returned (wrapped) by PutBinary when the content
	// read does not hash to the digest the caller claimed.
	ErrDigestMismatch = errors.New("objstore: content does not match its sha256")
	// ErrInvalidDigest is returned (wrapped) when a digest argument is not 64
	// lower-case hex characters. Checking it up front keeps arbitrary
	// caller-supplied strings out of object keys.
	ErrInvalidDigest = errors.New("objstore: invalid sha256 digest")
	// ErrUnsupportedURL is returned (wrapped) by Open for a URL whose scheme
	// weir does not support.
	ErrUnsupportedURL = errors.New("objstore: unsupported store URL")
)

// Store is an object store. It is safe for concurrent use.
type Store struct {
	bucket *blob.Bucket
	// s3Bucket is the bucket's name when the store is S3, for the
	// requests blob does not make (see closeAborted).
	s3Bucket string
}

// Open opens the store at url:
//
//   - "file:///abs/dir" stores objects as files under /abs/dir, creating it if
//     missing; a bare absolute path "/abs/dir" means the same;
//   - "mem://" is an in-memory store, empty when opened (tests);
//   - "s3://bucket?region=...&endpoint=..." is S3 or an S3-compatible server,
//     with gocloud's query parameters and the AWS SDK's default credentials.
//
// Any other scheme yields ErrUnsupportedURL.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	if filepath.IsAbs(rawURL) && !strings.Contains(rawURL, "://") {
		rawURL = (&url.URL{Scheme: "file", Path: filepath.ToSlash(rawURL)}).String()
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, rawURL, err)
	}
	switch u.Scheme {
	case "mem", "s3":
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%w %q: a file URL needs an absolute path, as in file:///abs/dir", ErrUnsupportedURL, rawURL)
		}
		// fileblob refuses a directory that does not exist; create it here
		// so that a first start with an empty --data-dir just works.
		if err := os.MkdirAll(filepath.FromSlash(u.Path), 0o755); err != nil {
			return nil, fmt.Errorf("objstore: create %s: %w", u.Path, err)
		}
		q := u.Query()
		// By default fileblob writes temporary files under os.TempDir and
		// renames them into place, which fails when the store is on another
		// file system (a mounted data volume). Writing them next to the
		// target keeps the rename within one file system.
		if q.Get("no_tmp_dir") == "" {
			q.Set("no_tmp_dir", "true")
		}
		u.RawQuery = q.Encode()
	default:
		return nil, fmt.Errorf("%w %q: want file:///abs/dir, an absolute path, mem:// or s3://bucket", ErrUnsupportedURL, rawURL)
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("objstore: open %s: %w", redact(u), err)
	}
	s := &Store{bucket: b}
	if u.Scheme == "s3" {
		s.s3Bucket = u.Host
	}
	return s, nil
}

// redact drops the query, which for s3 may carry credentials-adjacent
// settings, from URLs that end up in error messages.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.User = nil
	return c.String()
}

// Close releases the bucket. The Store must not be used afterwards.
func (s *Store) Close() error {
	if err := s.bucket.Close(); err != nil {
		return fmt.Errorf("objstore: close: %w", err)
	}
	return nil
}

// Bucket exposes the underlying bucket for code that manages its own keys
// (checkpoints). Binary keys (storelayout.Binaries) belong to this package.
func (s *Store) Bucket() *blob.Bucket { return s.bucket }

// ValidSHA256 reports whether s is a sha256 digest written as 64 lower-case
// hex characters, the only spelling used in keys.
func ValidSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func binaryKey(sha string) (string, error) {
	if !ValidSHA256(sha) {
		return "", fmt.Errorf("%w: %q", ErrInvalidDigest, sha)
	}
	return storelayout.Binary(sha), nil
}

// PutBinary stores the content of r as the binary whose sha256 is
// wantSHA256 and returns its size.
//
// The content is streamed to the store and hashed on the way; it becomes
// visible under its key only if the hash matches. On a mismatch the write is
// aborted, nothing is visible, and the error wraps ErrDigestMismatch.
//
// PutBinary is idempotent: if the binary is already stored, r is not read
// and the stored size is returned. Concurrent puts of the same binary are
// safe, since they write identical content.
func (s *Store) PutBinary(ctx context.Context, r io.Reader, wantSHA256 string) (size int64, err error) {
	key, err := binaryKey(wantSHA256)
	if err != nil {
		return 0, err
	}
	if size, ok, err := s.HasBinary(ctx, wantSHA256); err != nil {
		return 0, err
	} else if ok {
		return size, nil
	}

	// Cancelling the writer's context before Close is blob's documented way
	// to abort a write: fileblob removes its temporary file, memblob drops
	// the buffer, and s3blob aborts the (multipart) upload.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType:                 "application/octet-stream",
		DisableContentTypeDetection: true,
	})
	if err != nil {
		return 0, fmt.Errorf("objstore: put binary %s: %w", wantSHA256, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), r)
	if err != nil {
		cancel()
		s.CloseAborted(ctx, w, key) // the copy error is the one that matters
		return 0, fmt.Errorf("objstore: put binary %s: %w", wantSHA256, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA256 {
		cancel()
		s.CloseAborted(ctx, w, key)
		return 0, fmt.Errorf("%w: want %s, got %s (%d bytes)", ErrDigestMismatch, wantSHA256, got, n)
	}
	if err := w.Close(); err != nil {
		s.CleanUpFailedWrite(ctx, key, err)
		return 0, fmt.Errorf("objstore: put binary %s: %w", wantSHA256, err)
	}
	return n, nil
}

// abortTimeout bounds the AbortMultipartUpload request of CloseAborted.
const abortTimeout = 30 * time.Second

// CloseAborted closes w, writing key, after its context was cancelled:
// blob's way to abort a write, which leaves nothing visible. On S3 a write
// larger than one part (8 MiB) is a multipart upload, and s3blob's transfer
// manager sends its AbortMultipartUpload with that same cancelled context,
// so the abort fails and the parts already uploaded stay in the bucket:
// invisible to List, yet stored and billed until a lifecycle rule removes
// them. The failed upload's ID comes back in Close's error; abort it here
// with a live context (keys here are plain [a-z0-9/._-], which s3blob sends
// unescaped). Other writers of the store's bucket (checkpoint uploads) call
// it too.
// This is best effort: the error that aborted the write is the one the
// caller reports.
func (s *Store) CloseAborted(ctx context.Context, w *blob.Writer, key string) {
	s.CleanUpFailedWrite(ctx, key, w.Close())
}

// CleanUpFailedWrite aborts what a write of key whose Close returned err
// left unfinished on S3 (see CloseAborted): also a write whose context was
// cancelled only while Close waited for the last parts. Nothing to do when
// err is nil.
func (s *Store) CleanUpFailedWrite(ctx context.Context, key string, err error) {
	if err == nil || s.s3Bucket == "" {
		return
	}
	var client *s3.Client
	if !s.bucket.As(&client) {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	abort := func(id string) {
		_, _ = client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.s3Bucket), Key: aws.String(key), UploadId: aws.String(id)})
	}
	var mpu transfermanager.MultipartUploadError
	if errors.As(err, &mpu) {
		abort(mpu.UploadID())
	}
	// A cancellation right after the upload was created may not carry its
	// ID, and a CreateMultipartUpload we stopped waiting for may still
	// complete on the server well after a first listing (seen under load):
	// abort whatever is unfinished under the key until listings have found
	// nothing for abortQuiet.
	start := time.Now()
	for wait := 20 * time.Millisecond; actx.Err() == nil; wait = min(2*wait, 250*time.Millisecond) {
		out, lerr := client.ListMultipartUploads(actx, &s3.ListMultipartUploadsInput{
			Bucket: aws.String(s.s3Bucket), Prefix: aws.String(key)})
		if lerr != nil {
			return
		}
		found := false
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) == key {
				abort(aws.ToString(u.UploadId))
				found = true
			}
		}
		if found {
			start = time.Now()
		} else if time.Since(start) >= abortQuiet {
			return
		}
		time.Sleep(wait)
	}
}

// abortQuiet is how long CloseAborted keeps finding no unfinished upload
// under an aborted key before it trusts that none will appear.
const abortQuiet = 2 * time.Second

// HasBinary reports whether the binary is stored, and its size if so. A
// missing binary is not an error.
func (s *Store) HasBinary(ctx context.Context, sha string) (size int64, ok bool, err error) {
	key, err := binaryKey(sha)
	if err != nil {
		return 0, false, err
	}
	attrs, err := s.bucket.Attributes(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("objstore: stat binary %s: %w", sha, err)
	}
	return attrs.Size, true, nil
}

// OpenBinary opens the binary for reading and returns its size. The caller
// owns the reader and must close it. A missing binary yields an error
// wrapping ErrNotFound.
func (s *Store) OpenBinary(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	key, err := binaryKey(sha)
	if err != nil {
		return nil, 0, err
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, 0, fmt.Errorf("%w: binary %s", ErrNotFound, sha)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("objstore: open binary %s: %w", sha, err)
	}
	return r, r.Size(), nil
}
