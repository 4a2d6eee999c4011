package sealing

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"gocloud.dev/secrets"
	_ "gocloud.dev/secrets/awskms"        // awskms://
	_ "gocloud.dev/secrets/azurekeyvault" // azurekeyvault://
	_ "gocloud.dev/secrets/gcpkms"        // gcpkms://
	"gocloud.dev/secrets/localsecrets"    // base64key://, from a file only
	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// KEK is the cluster's key-encryption key: it wraps and unwraps job data
// keys. The wrapping is the secrets driver's (a KMS call, or AES-GCM with a
// local key); weir never sees a KMS key.
type KEK struct {
	keeper *secrets.Keeper
	name   string // for logs and the page: never key material
	// previous is the KEK being rotated away from (WithPrevious): what it
	// wrapped still opens, and RotateKeys rewraps it under this one.
	previous *KEK
}

// WithPrevious lets k decrypt what prev encrypted, during a rotation from
// prev to k. New values are always encrypted by k.
func (k *KEK) WithPrevious(prev *KEK) *KEK {
	if k != nil {
		k.previous = prev
	}
	return k
}

// None is the --kek value of a cluster that does not encrypt state at rest.
const None = "none"

// OpenKEK opens the KEK that spec names:
//
//   - "none" (or empty): no KEK, nil; state at rest is not encrypted.
//   - "file:PATH": a file holding a secrets URL, for a local key
//     "base64key://..." (GenerateKEKFile writes one). The key stays out of
//     command lines, which every user of the machine can read.
//   - a KMS URL: "awskms://...", "gcpkms://...", "azurekeyvault://...",
//     as gocloud.dev/secrets documents them; credentials come from the
//     cloud's usual environment.
//
// A base64key:// URL given directly is refused: it would put the key in
// the command line.
func OpenKEK(ctx context.Context, spec string) (*KEK, error) {
	switch {
	case spec == "" || spec == None:
		return nil, nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--kek %s: %w", spec, err)
		}
		st, err := os.Stat(path)
		if err == nil && st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("--kek %s: the key file is readable by others (mode %v); chmod 600 it", spec, st.Mode().Perm())
		}
		k, err := open(ctx, strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("--kek %s: %w", spec, err)
		}
		k.name = "key file " + path
		return k, nil
	case strings.HasPrefix(spec, localsecrets.Scheme+"://"):
		return nil, errors.New("--kek base64key://… would put the key in the command line: write the URL to a file only you can read and pass --kek file:PATH")
	}
	k, err := open(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("--kek %s: %w", redact(spec), err)
	}
	return k, nil
}

func open(ctx context.Context, rawURL string) (*KEK, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("not a secrets URL (want base64key://, awskms://, gcpkms:// or azurekeyvault://)")
	}
	if !secrets.DefaultURLMux().ValidKeeperScheme(u.Scheme) {
		return nil, fmt.Errorf("unknown key scheme %q (want base64key://, awskms://, gcpkms:// or azurekeyvault://)", u.Scheme)
	}
	keeper, err := secrets.OpenKeeper(ctx, rawURL)
	if err != nil {
		// The driver's message quotes the URL, whose query may hold
		// credentials.
		return nil, errors.New(strings.ReplaceAll(err.Error(), rawURL, redact(rawURL)))
	}
	return &KEK{keeper: keeper, name: redact(rawURL)}, nil
}

// redact drops a URL's query and user info, which may carry credentials.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.Scheme == localsecrets.Scheme {
		return localsecrets.Scheme + "://(redacted)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// String names the KEK without its key material.
func (k *KEK) String() string {
	if k == nil {
		return None
	}
	return k.name
}

// Close releases the KEK's driver, and the previous one's.
func (k *KEK) Close() error {
	if k == nil {
		return nil
	}
	return errors.Join(k.keeper.Close(), k.previous.Close())
}

// Rewrap decrypts a job's key record (as Stored made it) by this KEK or the
// previous one and encrypts it again by this one. A tombstone is returned
// as it is.
func (k *KEK) Rewrap(ctx context.Context, job string, b []byte) ([]byte, error) {
	var s weirv1.StoredJobKey
	if err := proto.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("job %s: its key record: %w", job, err)
	}
	if s.PurgedUnixMs != 0 {
		return b, nil
	}
	plain, err := k.Decrypt(ctx, s.Wrapped, "the data key of job "+job)
	if err != nil {
		return nil, err
	}
	if s.Wrapped, err = k.Encrypt(ctx, plain, "the data key of job "+job); err != nil {
		return nil, err
	}
	return proto.Marshal(&s)
}

// Wrap encrypts a job's data key with the KEK.
func (k *KEK) Wrap(ctx context.Context, key *JobKey) ([]byte, error) {
	return k.Encrypt(ctx, key.raw, "a data key")
}

// Unwrap decrypts a wrapped data key.
func (k *KEK) Unwrap(ctx context.Context, wrapped []byte) (*JobKey, error) {
	b, err := k.Decrypt(ctx, wrapped, "a data key")
	if err != nil {
		return nil, err
	}
	return ParseJobKey(b)
}

// Encrypt encrypts a small value (a data key, a secret for jobs) with the
// KEK; what names it for errors.
func (k *KEK) Encrypt(ctx context.Context, plain []byte, what string) ([]byte, error) {
	b, err := k.keeper.Encrypt(ctx, plain)
	if err != nil {
		return nil, fmt.Errorf("sealing: encrypt %s with the KEK (%s): %w", what, k.name, err)
	}
	return b, nil
}

// Decrypt decrypts what Encrypt made, by this KEK or the previous one.
func (k *KEK) Decrypt(ctx context.Context, sealed []byte, what string) ([]byte, error) {
	b, err := k.keeper.Decrypt(ctx, sealed)
	if err != nil && k.previous != nil {
		if pb, perr := k.previous.keeper.Decrypt(ctx, sealed); perr == nil {
			return pb, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sealing: decrypt %s with the KEK (%s): %w", what, k.name, err)
	}
	return b, nil
}

// ErrPurged means a job's data key was destroyed: nothing it wrote can be
// read again.
var ErrPurged = errors.New("purged")

// Stored is a job's key record as etcd keeps it.
func Stored(ctx context.Context, k *KEK, key *JobKey, nowMs int64) ([]byte, error) {
	wrapped, err := k.Wrap(ctx, key)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&weirv1.StoredJobKey{Wrapped: wrapped, CreatedUnixMs: nowMs})
}

// Load unwraps job's key record b (as Stored made it). A purged key gives
// an error wrapping ErrPurged that says when and by whom.
func Load(ctx context.Context, k *KEK, job string, b []byte) (*JobKey, error) {
	var s weirv1.StoredJobKey
	if err := proto.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("job %s: its key record: %w", job, err)
	}
	if s.PurgedUnixMs != 0 {
		return nil, fmt.Errorf("job %s was %w at %s by %s: its data key is destroyed, so none of its checkpoints or savepoints can be read",
			job, ErrPurged, formatMs(s.PurgedUnixMs), s.PurgedBy)
	}
	if k == nil {
		return nil, fmt.Errorf("job %s: its state is encrypted, and this coordinator has no KEK (--kek)", job)
	}
	key, err := k.Unwrap(ctx, s.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	return key, nil
}

// Tombstone is the key record of a purged job.
func Tombstone(nowMs int64, by string) []byte {
	b, _ := proto.Marshal(&weirv1.StoredJobKey{PurgedUnixMs: nowMs, PurgedBy: by})
	return b
}

// GenerateKEKFile writes a fresh local KEK (a base64key:// URL) to path
// with mode 0600, unless the file exists. It is what `weir local` uses.
func GenerateKEKFile(path string) error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s://%s\n", localsecrets.Scheme, base64.URLEncoding.EncodeToString(key[:]))
	return errors.Join(err, f.Close())
}

func formatMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }
