package sealing

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustKey(t testing.TB) *JobKey {
	t.Helper()
	k, err := NewJobKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpensOnlyAsSealed(t *testing.T) {
	k := mustKey(t)
	const object = "checkpoints/j1/shared/abc.sst"
	for _, size := range []int{0, 1, 4096 - 40, 4096, 3*4096 + 17, 1 << 20} {
		plain := make([]byte, size)
		rand.Read(plain)
		sealed, err := k.SealBytes(plain, object)
		if err != nil {
			t.Fatal(err)
		}
		if size >= 16 && bytes.Contains(sealed, plain[:16]) {
			t.Fatalf("size %d: the sealed object holds the plaintext", size)
		}
		got, err := k.OpenBytes(sealed, object)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: open = %d bytes, %v", size, len(got), err)
		}
		// Every single-byte change, a sample of positions.
		for _, i := range []int{0, len(sealed) / 3, len(sealed) / 2, len(sealed) - 1} {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x01
			wantAuthErr(t, k, bad, object, "flipped byte")
		}
		for _, cut := range []int{1, 16, len(sealed) / 2} {
			if cut < len(sealed) {
				wantAuthErr(t, k, sealed[:len(sealed)-cut], object, "truncated")
			}
		}
		wantAuthErr(t, k, sealed, "checkpoints/j1/shared/other.sst", "moved to another key")
		wantAuthErr(t, mustKey(t), sealed, object, "another job's key")
		if size > 0 {
			wantAuthErr(t, k, plain, object, "plaintext")
		}
	}
}

func wantAuthErr(t *testing.T, k *JobKey, sealed []byte, object, what string) {
	t.Helper()
	got, err := k.OpenBytes(sealed, object)
	if !errors.Is(err, ErrAuthentication) || !strings.Contains(err.Error(), object) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%s: open = %d bytes, %v; want one line wrapping ErrAuthentication and naming %s", what, len(got), err, object)
	}
}

// A reader that fails is the store's failure, not an authentication one.
func TestOpenPassesReadErrorsThrough(t *testing.T) {
	k := mustKey(t)
	sealed, _ := k.SealBytes(bytes.Repeat([]byte("x"), 10000), "o")
	boom := errors.New("connection reset")
	r, err := k.Open(io.MultiReader(bytes.NewReader(sealed[:5000]), errReader{boom}), "o")
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if !errors.Is(err, boom) || errors.Is(err, ErrAuthentication) {
		t.Fatalf("got %v, want the reader's own error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestNilKeySealsNothing(t *testing.T) {
	var k *JobKey
	b := []byte("plain")
	if s, err := k.SealBytes(b, "o"); err != nil || !bytes.Equal(s, b) {
		t.Fatalf("SealBytes = %q, %v", s, err)
	}
	sum := sha256.Sum256(b)
	if got := k.ContentName(sum[:]); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("ContentName = %s", got)
	}
	if k.Bytes() != nil {
		t.Fatal("a nil key has bytes")
	}
}

func TestContentNamesAreKeyed(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	sum := sha256.Sum256([]byte("the same table in two jobs"))
	if a.ContentName(sum[:]) != a.ContentName(sum[:]) {
		t.Fatal("a job's content name is not stable")
	}
	if a.ContentName(sum[:]) == b.ContentName(sum[:]) || a.ContentName(sum[:]) == hex.EncodeToString(sum[:]) {
		t.Fatal("two jobs name equal content alike, or a name reveals the plain hash")
	}
	back, err := ParseJobKey(a.Bytes())
	if err != nil || back.ContentName(sum[:]) != a.ContentName(sum[:]) {
		t.Fatalf("a parsed key names differently: %v", err)
	}
	sealed, _ := a.SealBytes([]byte("state"), "o")
	if got, err := back.OpenBytes(sealed, "o"); err != nil || string(got) != "state" {
		t.Fatalf("a parsed key does not open: %q %v", got, err)
	}
}

func TestKEK(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	if err := GenerateKEKFile(path); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if err := GenerateKEKFile(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
		t.Fatal("GenerateKEKFile replaced an existing key")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
	kek, err := OpenKEK(ctx, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer kek.Close()
	if strings.Contains(kek.String(), strings.TrimSpace(string(first))[12:]) {
		t.Fatalf("the KEK's name %q shows its key", kek)
	}
	job := mustKey(t)
	rec, err := Stored(ctx, kek, job, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec, job.Bytes()[4:20]) {
		t.Fatal("the stored record holds the data key in clear")
	}
	back, err := Load(ctx, kek, "j1", rec)
	if err != nil || !bytes.Equal(back.Bytes(), job.Bytes()) {
		t.Fatalf("Load = %v", err)
	}
	other := filepath.Join(dir, "other")
	GenerateKEKFile(other)
	otherKEK, _ := OpenKEK(ctx, "file:"+other)
	defer otherKEK.Close()
	if _, err := Load(ctx, otherKEK, "j1", rec); err == nil {
		t.Fatal("another KEK unwrapped the data key")
	}
	_, err = Load(ctx, kek, "j1", Tombstone(1767225600000, "admin alice"))
	if !errors.Is(err, ErrPurged) || !strings.Contains(err.Error(), "job j1 was purged at 2026-01-01T00:00:00Z by admin alice") {
		t.Fatalf("a purged key: %v", err)
	}

	for _, tc := range []struct{ spec, want string }{
		{"base64key://smGbjm71Nxd1Ig5FS0wj9SlbzAIrnolCz9bQQ6uAhl4=", "would put the key in the command line"},
		{"file:" + filepath.Join(dir, "missing"), "no such file"},
		{"ftp://x", `unknown key scheme "ftp"`},
		{"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "build with -tags gcpkms"},
		{"awskms://alias/x?region=us-east-1&access_key=SECRET", ""},
	} {
		_, err := OpenKEK(ctx, tc.spec)
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("--kek %s: %v, want %q", tc.spec, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("--kek %s: the error shows the URL's query: %v", tc.spec, err)
		}
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, first, 0o644)
	if _, err := OpenKEK(ctx, "file:"+open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key file: %v", err)
	}
	if k, err := OpenKEK(ctx, "none"); k != nil || err != nil {
		t.Errorf("--kek none: %v %v", k, err)
	}
}

// FuzzOpen: whatever the store hands back, Open returns the sealed
// plaintext or an error, never other bytes, and never panics.
func FuzzOpen(f *testing.F) {
	k := mustKey(f)
	sealed, _ := k.SealBytes([]byte("some state"), "o")
	f.Add(sealed)
	f.Add([]byte{})
	f.Add(sealed[:len(sealed)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := k.OpenBytes(b, "o")
		if err == nil && string(got) != "some state" {
			t.Fatalf("opened %q", got)
		}
	})
}

// FuzzParseJobKey: a job key from anywhere but Bytes is refused with an
// error, never a panic, and one that parses seals and opens.
func FuzzParseJobKey(f *testing.F) {
	f.Add(mustKey(f).Bytes())
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseJobKey(b)
		if err != nil || k == nil {
			return
		}
		sealed, err := k.SealBytes([]byte("state"), "o")
		if err != nil {
			t.Fatalf("a parsed key does not seal: %v", err)
		}
		if got, err := k.OpenBytes(sealed, "o"); err != nil || string(got) != "state" {
			t.Fatalf("a parsed key opens %q, %v", got, err)
		}
	})
}
