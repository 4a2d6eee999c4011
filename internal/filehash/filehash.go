// Package filehash hashes files the way weir names content: the sha256 of
// the bytes, written as 64 lower-case hex characters. Job binaries (the CLI
// before uploading, workers after fetching) and checkpoint files (shared
// SSTs are stored under their digest) are hashed with it.
package filehash

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNotRegular is returned (wrapped) for a path that is not a regular file
// (a directory, a FIFO that would block the read, a device).
var ErrNotRegular = errors.New("not a regular file")

// SHA256 returns the hex sha256 of the regular file at path and its size.
// Errors from the file system are returned as they are (an *fs.PathError),
// so callers can add their own context.
func SHA256(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	h := sha256.New()
	size, err = io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}
