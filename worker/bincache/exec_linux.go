//go:build linux

package bincache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sealedCopy copies the file at path into a memfd, hashing it as it goes,
// and seals the memfd against every change once the hash matches sha. The
// executable is a read-only descriptor of the memfd: a descriptor open for
// writing would make exec fail with ETXTBSY.
func sealedCopy(path, sha string) (*Executable, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bincache: %w", err)
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return nil, fmt.Errorf("bincache: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrDigestMismatch, path)
	}
	fd, err := memfd("weir-job-" + sha[:16])
	if err != nil {
		return nil, fmt.Errorf("bincache: memfd_create: %w", err)
	}
	rw := os.NewFile(uintptr(fd), "memfd")
	defer rw.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(rw, h), src)
	if err != nil {
		return nil, fmt.Errorf("bincache: copy %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return nil, fmt.Errorf("%w: %s (%d bytes) hashes to %s", ErrDigestMismatch, path, n, got)
	}
	if _, err := unix.FcntlInt(rw.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		return nil, fmt.Errorf("bincache: seal: %w", err)
	}
	ro, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", rw.Fd()), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bincache: reopen the sealed copy: %w", err)
	}
	return &Executable{path: fmt.Sprintf("/proc/self/fd/%d", ro.Fd()), close: ro.Close}, nil
}

// memfd creates an executable memfd, asking for MFD_EXEC explicitly where
// the kernel knows it (vm.memfd_noexec may make memfds non-executable by
// default).
func memfd(name string) (int, error) {
	const mfdExec = 0x10 // MFD_EXEC, Linux 6.3
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|mfdExec)
	if err == unix.EINVAL {
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	return fd, err
}
