//go:build !linux

package bincache

// sealedCopy hashes the cached file again and executes it in place: there
// is no memfd here, so a write between this hash and the exec would go
// unnoticed. Workers run on Linux.
func sealedCopy(path, sha string) (*Executable, error) {
	if _, err := hashFile(path, sha); err != nil {
		return nil, err
	}
	return &Executable{path: path, close: func() error { return nil }}, nil
}
