package sealing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/streamingaead"
	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// ErrAuthentication means an object did not open under its job's key: it
// was changed, truncated, moved to another key in the store, or written
// under another key (or none).
var ErrAuthentication = errors.New("authentication failed")

// JobKey is a job's data key in clear. A nil *JobKey seals nothing.
type JobKey struct {
	aead tink.StreamingAEAD
	prf  *prf.Set
	raw  []byte // weirv1.JobDataKey
}

// NewJobKey makes a fresh data key.
func NewJobKey() (*JobKey, error) {
	s, err := keyset.NewHandle(streamingaead.AES256GCMHKDF4KBKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("sealing: new data key: %w", err)
	}
	n, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("sealing: new naming key: %w", err)
	}
	var sb, nb bytes.Buffer
	if err := insecurecleartextkeyset.Write(s, keyset.NewBinaryWriter(&sb)); err != nil {
		return nil, fmt.Errorf("sealing: serialize data key: %w", err)
	}
	if err := insecurecleartextkeyset.Write(n, keyset.NewBinaryWriter(&nb)); err != nil {
		return nil, fmt.Errorf("sealing: serialize naming key: %w", err)
	}
	raw, err := proto.Marshal(&weirv1.JobDataKey{Streaming: sb.Bytes(), Naming: nb.Bytes()})
	if err != nil {
		return nil, err
	}
	return ParseJobKey(raw)
}

// ParseJobKey reads a key Bytes returned. Empty raw is no key (nil, nil).
func ParseJobKey(raw []byte) (*JobKey, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var m weirv1.JobDataKey
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("sealing: data key: %w", err)
	}
	s, err := insecurecleartextkeyset.Read(keyset.NewBinaryReader(bytes.NewReader(m.Streaming)))
	if err != nil {
		return nil, fmt.Errorf("sealing: data key: %w", err)
	}
	n, err := insecurecleartextkeyset.Read(keyset.NewBinaryReader(bytes.NewReader(m.Naming)))
	if err != nil {
		return nil, fmt.Errorf("sealing: naming key: %w", err)
	}
	k := &JobKey{raw: bytes.Clone(raw)}
	if k.aead, err = streamingaead.New(s); err != nil {
		return nil, fmt.Errorf("sealing: data key: %w", err)
	}
	if k.prf, err = prf.NewPRFSet(n); err != nil {
		return nil, fmt.Errorf("sealing: naming key: %w", err)
	}
	return k, nil
}

// Bytes is the key in clear, for a job process's assignment. Nil for no
// key.
func (k *JobKey) Bytes() []byte {
	if k == nil {
		return nil
	}
	return bytes.Clone(k.raw)
}

// Seal returns a writer that encrypts what is written to it into w, bound
// to object (its key in the store). Close must be called to write the last
// segment; it does not close w.
func (k *JobKey) Seal(w io.Writer, object string) (io.WriteCloser, error) {
	if k == nil {
		return nopCloser{w}, nil
	}
	sw, err := k.aead.NewEncryptingWriter(w, []byte(object))
	if err != nil {
		return nil, fmt.Errorf("sealing: %s: %w", object, err)
	}
	return sw, nil
}

// Open returns a reader of object's plaintext from r, its sealed bytes.
// A read error that is not r's own wraps ErrAuthentication and names the
// object; nothing unauthenticated is returned before it.
func (k *JobKey) Open(r io.Reader, object string) (io.Reader, error) {
	if k == nil {
		return r, nil
	}
	src := &sourceErr{r: r}
	dr, err := k.aead.NewDecryptingReader(src, []byte(object))
	if err != nil {
		return nil, k.authErr(object, src, err)
	}
	return &openReader{r: dr, src: src, object: object, k: k}, nil
}

// SealBytes seals b as object.
func (k *JobKey) SealBytes(b []byte, object string) ([]byte, error) {
	if k == nil {
		return b, nil
	}
	var out bytes.Buffer
	w, err := k.Seal(&out, object)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// OpenBytes opens b, object's sealed bytes.
func (k *JobKey) OpenBytes(b []byte, object string) ([]byte, error) {
	if k == nil {
		return b, nil
	}
	r, err := k.Open(bytes.NewReader(b), object)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// ContentName names a content-addressed object by the SHA-256 of its
// plaintext: a keyed hash (HMAC-SHA256) under the job's naming key, hex,
// or the hash itself without a key.
func (k *JobKey) ContentName(sha256 []byte) string {
	if k == nil {
		return hex.EncodeToString(sha256)
	}
	out, err := k.prf.ComputePrimaryPRF(sha256, 32)
	if err != nil {
		// HMAC-SHA256 of 32 bytes into 32 cannot fail.
		panic(fmt.Sprintf("sealing: content name: %v", err))
	}
	return hex.EncodeToString(out)
}

func (k *JobKey) authErr(object string, src *sourceErr, err error) error {
	if src.err != nil && !errors.Is(src.err, io.EOF) {
		return src.err // the store's read failed; not the key's business
	}
	return fmt.Errorf("%s: %w (changed, truncated, moved or written under another key): %v", object, ErrAuthentication, err)
}

// sourceErr remembers the sealed reader's own error, to tell a failed read
// from a failed authentication.
type sourceErr struct {
	r   io.Reader
	err error
}

func (s *sourceErr) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

type openReader struct {
	r      io.Reader
	src    *sourceErr
	object string
	k      *JobKey
}

func (o *openReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		err = o.k.authErr(o.object, o.src, err)
	}
	return n, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
