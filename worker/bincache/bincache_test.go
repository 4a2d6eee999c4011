package bincache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary, run as a cached job binary, print
// helperOutput and exit instead of running tests.
const (
	helperEnv    = "WEIR_BINCACHE_TEST_HELPER"
	helperOutput = "the verified binary ran"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		fmt.Println(helperOutput)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fakeFetcher serves content by sha and counts fetches. gate, if set, holds
// every fetch until closed, so tests can pile up concurrent callers.
type fakeFetcher struct {
	content map[string][]byte
	gate    chan struct{}
	calls   atomic.Int32
}

func (f *fakeFetcher) fetch(ctx context.Context, sha string) (io.ReadCloser, error) {
	f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b, ok := f.content[sha]
	if !ok {
		return nil, errors.New("no such binary")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func newCache(t *testing.T, dir string, f *fakeFetcher) *Cache {
	t.Helper()
	c, err := New(dir, f.fetch, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func assertBinary(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", path, got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s has mode %v, want 0700", path, fi.Mode().Perm())
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("leftover temporary file %s", e.Name())
		}
	}
}

func TestFetchOnceUnderConcurrency(t *testing.T) {
	content := []byte("#!/bin/sh\necho job\n")
	sha := digest(content)
	f := &fakeFetcher{content: map[string][]byte{sha: content}, gate: make(chan struct{})}
	dir := t.TempDir()
	c := newCache(t, dir, f)

	const n = 8
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { paths[i], errs[i] = c.Path(context.Background(), sha) })
	}
	// Let the callers reach the cache before the one fetch completes.
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(f.gate)
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if paths[i] != filepath.Join(dir, sha) {
			t.Fatalf("caller %d got %q, want %q", i, paths[i], filepath.Join(dir, sha))
		}
	}
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("fetched %d times, want 1", got)
	}
	assertBinary(t, paths[0], content)
	assertNoTemps(t, dir)

	// A hit neither fetches nor rehashes.
	if _, err := c.Path(context.Background(), sha); err != nil {
		t.Fatal(err)
	}
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("fetched %d times after a hit, want 1", got)
	}
}

func TestDigestMismatch(t *testing.T) {
	sha := digest([]byte("what was asked for"))
	f := &fakeFetcher{content: map[string][]byte{sha: []byte("what came back")}}
	dir := t.TempDir()
	c := newCache(t, dir, f)

	_, err := c.Path(context.Background(), sha)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Path err = %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sha)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a mismatched binary is in the cache: stat err = %v", err)
	}
	assertNoTemps(t, dir)

	// Failures are not cached: the next call fetches again.
	if _, err := c.Path(context.Background(), sha); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("second Path err = %v, want ErrDigestMismatch", err)
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("fetched %d times, want 2", got)
	}
}

func TestCorruptCachedFileIsRefetched(t *testing.T) {
	content := []byte("\x7fELF the real job")
	sha := digest(content)
	f := &fakeFetcher{content: map[string][]byte{sha: content}}
	dir := t.TempDir()

	path, err := newCache(t, dir, f).Path(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	// Same size, different bytes: only a hash can tell.
	corrupt := bytes.Clone(content)
	corrupt[len(corrupt)-1] ^= 0xff
	if err := os.WriteFile(path, corrupt, 0o755); err != nil {
		t.Fatal(err)
	}

	// A new process (a new Cache) must not trust the file on sight.
	path, err = newCache(t, dir, f).Path(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	assertBinary(t, path, content)
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("fetched %d times, want 2 (first fetch and refetch)", got)
	}
}

func TestGoodCachedFileIsReusedAcrossProcesses(t *testing.T) {
	content := []byte("cached job")
	sha := digest(content)
	f := &fakeFetcher{content: map[string][]byte{sha: content}}
	dir := t.TempDir()
	if _, err := newCache(t, dir, f).Path(context.Background(), sha); err != nil {
		t.Fatal(err)
	}
	// A partial download left by a crashed worker is cleaned up by New.
	stale := filepath.Join(dir, tempPrefix+"stale")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, dir, f)
	assertNoTemps(t, dir)
	path, err := c.Path(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	assertBinary(t, path, content)
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("fetched %d times, want 1", got)
	}
}

func TestRemovedFileIsRefetched(t *testing.T) {
	content := []byte("job")
	sha := digest(content)
	f := &fakeFetcher{content: map[string][]byte{sha: content}}
	c := newCache(t, t.TempDir(), f)
	path, err := c.Path(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Path(context.Background(), sha); err != nil {
		t.Fatal(err)
	}
	assertBinary(t, path, content)
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("fetched %d times, want 2", got)
	}
}

func TestFetchErrorAndInvalidDigest(t *testing.T) {
	f := &fakeFetcher{content: map[string][]byte{}}
	c := newCache(t, t.TempDir(), f)
	if _, err := c.Path(context.Background(), digest([]byte("absent"))); err == nil || !strings.Contains(err.Error(), "no such binary") {
		t.Fatalf("Path err = %v, want the fetcher's error", err)
	}
	for _, bad := range []string{"", "../x", strings.ToUpper(digest(nil))} {
		if _, err := c.Path(context.Background(), bad); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Path(%q) err = %v, want ErrInvalidDigest", bad, err)
		}
	}
}

// A waiter whose leader gives up takes over instead of failing with the
// leader's context error.
func TestWaiterSurvivesLeaderCancel(t *testing.T) {
	content := []byte("job")
	sha := digest(content)
	f := &fakeFetcher{content: map[string][]byte{sha: content}, gate: make(chan struct{})}
	c := newCache(t, t.TempDir(), f)

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Path(leaderCtx, sha)
		leaderErr <- err
	}()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	waiterErr := make(chan error, 1)
	go func() {
		_, err := c.Path(context.Background(), sha)
		waiterErr <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader err = %v, want context.Canceled", err)
	}
	close(f.gate)
	if err := <-waiterErr; err != nil {
		t.Fatalf("waiter err = %v, want success", err)
	}
}

// TestTamperedCacheEntryNeverRuns: a cached binary replaced by a file of
// the same size and mode after it was verified (a shell script that would
// touch a marker) is refused with a logged one-line error, fetched again,
// and what runs is the verified binary; the script never does.
func TestTamperedCacheEntryNeverRuns(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	sha := digest(content)
	f := &fakeFetcher{content: map[string][]byte{sha: content}}
	dir := t.TempDir()
	var logs bytes.Buffer
	c, err := New(dir, f.fetch, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	run := func() string {
		t.Helper()
		e, err := c.Exec(context.Background(), sha)
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		defer e.Close()
		cmd := exec.Command(e.Path())
		cmd.Env = []string{helperEnv + "=1"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %s: %v: %s", e.Path(), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run(); got != helperOutput {
		t.Fatalf("first run printed %q", got)
	}

	marker := filepath.Join(t.TempDir(), "tampered-binary-ran")
	script := []byte("#!/bin/sh\ntouch " + marker + "\nexit 0\n")
	if len(script) > len(content) {
		t.Fatal("test binary smaller than the script")
	}
	script = append(script, bytes.Repeat([]byte("#"), len(content)-len(script))...)
	path := filepath.Join(dir, sha)
	if err := os.WriteFile(path, script, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != helperOutput {
		t.Fatalf("run after tampering printed %q", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the tampered binary ran")
	}
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (the first, and once after the tampering)", n)
	}
	assertBinary(t, path, content)
	want := "binary " + sha + " in the cache does not match; refusing to run it"
	if got := strings.Count(logs.String(), want); got != 1 {
		t.Fatalf("logged %q %d times, want once; logs:\n%s", want, got, logs.String())
	}
}
