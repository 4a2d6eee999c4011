package coordinator

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/sealing"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func kekFile(t *testing.T) *sealing.KEK {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kek")
	if err := sealing.GenerateKEKFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := sealing.OpenKEK(context.Background(), "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// TestRotateKeys: with the old KEK as the previous one, a rotation
// re-encrypts every job key and secret by the new KEK alone, keeps a purge
// tombstone as it is, and reports what no KEK it holds can open; nothing
// else changes.
func TestRotateKeys(t *testing.T) {
	ctx := context.Background()
	old, stranger := kekFile(t), kekFile(t)
	current := kekFile(t)
	h := startLeaderHarness(t, harnessOpts{kek: current.WithPrevious(old)})

	jobKey, _ := sealing.NewJobKey()
	put := func(key string, val []byte) {
		t.Helper()
		if _, err := h.etcd.Put(ctx, key, string(val)); err != nil {
			t.Fatal(err)
		}
	}
	rec, _ := sealing.Stored(ctx, old, jobKey, 1)
	put(etcdkeys.JobKeys+"j-old", rec)
	put(etcdkeys.JobKeys+"j-purged", sealing.Tombstone(2, "admin"))
	foreign, _ := sealing.Stored(ctx, stranger, jobKey, 3)
	put(etcdkeys.JobKeys+"j-foreign", foreign)
	wrapped, _ := old.Encrypt(ctx, []byte("pw-123"), "test")
	sec, _ := proto.Marshal(&weirv1.StoredSecret{Wrapped: wrapped, UpdatedUnixMs: 4, UpdatedBy: "alice", SizeBytes: 6})
	put(etcdkeys.Secrets+"kafka-creds", sec)

	resp, err := h.api.RotateKeys(ctx, &weirv1.RotateKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.JobKeys != 2 || resp.Secrets != 1 || len(resp.Failed) != 1 || !strings.HasPrefix(resp.Failed[0], etcdkeys.JobKeys+"j-foreign: ") {
		t.Fatalf("rotation: %+v, want 2 job keys, 1 secret and j-foreign failed", resp)
	}
	get := func(key string) []byte {
		t.Helper()
		r, err := h.etcd.Get(ctx, key)
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("get %s: %v", key, err)
		}
		return r.Kvs[0].Value
	}
	// The current KEK alone opens everything now.
	alone := current.WithPrevious(nil)
	back, err := sealing.Load(ctx, alone, "j-old", get(etcdkeys.JobKeys+"j-old"))
	if err != nil || !bytes.Equal(back.Bytes(), jobKey.Bytes()) {
		t.Fatalf("the rotated job key: %v", err)
	}
	if _, err := sealing.Load(ctx, old, "j-old", get(etcdkeys.JobKeys+"j-old")); err == nil {
		t.Fatal("the old KEK still opens the rotated job key")
	}
	if got := get(etcdkeys.JobKeys + "j-purged"); !bytes.Equal(got, sealing.Tombstone(2, "admin")) {
		t.Fatal("the rotation changed a tombstone")
	}
	if got := get(etcdkeys.JobKeys + "j-foreign"); !bytes.Equal(got, foreign) {
		t.Fatal("the rotation changed what it could not open")
	}
	var rs weirv1.StoredSecret
	proto.Unmarshal(get(etcdkeys.Secrets+"kafka-creds"), &rs)
	if v, err := alone.Decrypt(ctx, rs.Wrapped, "test"); err != nil || string(v) != "pw-123" || rs.UpdatedBy != "alice" {
		t.Fatalf("the rotated secret: %q %v %+v", v, err, &rs)
	}
}
