package snapshot_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/s3test"
	"github.com/weir-run/weir/internal/snapshot"
)

// An upload cancelled while a large table is in flight as a multipart upload
// leaves no parts behind when the uploader aborts through the store.
func TestS3CancelledUploadLeavesNoParts(t *testing.T) {
	for _, srv := range s3Servers {
		t.Run(srv.name, func(t *testing.T) {
			url := srv.url(t)
			ctx := t.Context()
			store, err := objstore.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			dir := t.TempDir()
			big := make([]byte, 48<<20) // several 8 MiB parts
			rand.Read(big)
			if err := os.WriteFile(filepath.Join(dir, "000007.sst"), big, 0o644); err != nil {
				t.Fatal(err)
			}
			u := snapshot.NewUploader(store.Bucket(), s3Shared)
			u.OnAbort(store.CleanUpFailedWrite)
			uctx, cancel := context.WithCancel(ctx)
			go func() {
				// Cancel once the multipart upload is under way.
				for uctx.Err() == nil && len(s3test.PendingUploads(t, url)) == 0 {
					time.Sleep(2 * time.Millisecond)
				}
				cancel()
			}()
			_, _, err = u.Upload(uctx, dir, "chk-1/", false)
			cancel()
			if err == nil {
				t.Skip("the upload finished before it could be cancelled")
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(s3test.PendingUploads(t, url)) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("parts of the cancelled upload remain: %v", s3test.PendingUploads(t, url))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
