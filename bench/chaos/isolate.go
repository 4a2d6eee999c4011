package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The size-limited data directory each worker gets for the disk-full
// fault: a tmpfs of its own (root mounts one; the kernel enforces both
// limits, as a full disk would), large enough for the jobs' binaries.
const (
	diskSize   = 512 << 20
	diskInodes = 4096
	ballastDir = ".chaos-ballast"
)

// mountDisk mounts a tmpfs of diskSize bytes and diskInodes inodes on dir.
func mountDisk(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0755", diskSize, diskInodes)
	if err := unix.Mount("weir-chaos", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount a %d MiB tmpfs on %s (needs root): %w", diskSize>>20, dir, err)
	}
	return nil
}

// unmountDisk detaches the tmpfs on dir.
func unmountDisk(dir string) { unix.Unmount(dir, unix.MNT_DETACH) }

// fillDisk fills the filesystem of dir: every free block (one
// preallocated file) and every free inode (empty files), so that neither
// a write nor a new file or directory fits. It returns what it took.
func fillDisk(dir string) (bytes int64, files int, err error) {
	b := filepath.Join(dir, ballastDir)
	if err := os.MkdirAll(b, 0o755); err != nil {
		return 0, 0, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	f, err := os.Create(filepath.Join(b, "blocks"))
	if err != nil {
		return 0, 0, err
	}
	free := int64(st.Bavail) * st.Bsize
	// Fallocate reserves the blocks at once on tmpfs, or nothing when it
	// fails (the jobs wrote meanwhile): then a little less. What is left
	// is written.
	var off int64
	for size := free; size >= 1<<20; size -= size / 8 {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err == nil {
			off = size
			break
		}
		if !errors.Is(err, syscall.ENOSPC) {
			f.Close()
			return 0, 0, fmt.Errorf("fallocate %d bytes: %w", size, err)
		}
	}
	chunk := make([]byte, 64<<10)
	for {
		n, err := f.WriteAt(chunk, off)
		off += int64(n)
		if err != nil {
			break
		}
	}
	f.Close()
	bytes = off
	for ; files < 2*diskInodes; files++ {
		g, err := os.Create(filepath.Join(b, fmt.Sprintf("i%d", files)))
		if err != nil {
			break
		}
		g.Close()
	}
	return bytes, files, nil
}

// freeDisk removes what fillDisk took.
func freeDisk(dir string) error { return os.RemoveAll(filepath.Join(dir, ballastDir)) }

// iptables runs iptables (waiting for its lock).
func iptables(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("iptables", append([]string{"-w", "5"}, args...)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// isolationRule drops every packet sent by a socket of group gid: all a
// worker's (and its job processes') TCP connections, whoever opened them,
// stall, as at a full partition of its host. Loopback packets pass
// through OUTPUT too.
func isolationRule(gid uint32) []string {
	return []string{"OUTPUT", "-m", "owner", "--gid-owner", fmt.Sprint(gid), "-j", "DROP"}
}

// canIsolate reports why workers cannot be isolated (nil: they can).
func canIsolate() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: a worker cannot run as a group of its own, nor iptables drop its packets")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return err
	}
	return iptables("-n", "-L", "OUTPUT")
}

// isolate drops every packet of group gid; unisolate undoes it (every
// copy of the rule).
func isolate(gid uint32) error { return iptables(append([]string{"-I"}, isolationRule(gid)...)...) }

func unisolate(gid uint32) {
	for range 10 {
		if iptables(append([]string{"-D"}, isolationRule(gid)...)...) != nil {
			return
		}
	}
}

// logSizes are the sizes of every component's log now.
func logSizes(t *topology) map[string]int64 {
	sizes := map[string]int64{}
	for name := range t.comps {
		if fi, err := os.Stat(filepath.Join(t.dir, name+".log")); err == nil {
			sizes[name] = fi.Size()
		}
	}
	return sizes
}

// firstLogLine is the first line containing substr that a component
// logged past offsets, as "NAME: LINE" ("" if none).
func firstLogLine(t *topology, offsets map[string]int64, substr string) string {
	names := make([]string, 0, len(t.comps))
	for name := range t.comps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f, err := os.Open(filepath.Join(t.dir, name+".log"))
		if err != nil {
			continue
		}
		f.Seek(offsets[name], io.SeekStart)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if l := sc.Text(); strings.Contains(l, substr) {
				f.Close()
				if len(l) > 400 {
					l = l[:400] + "…"
				}
				return name + ": " + l
			}
		}
		f.Close()
	}
	return ""
}
