// Package bincache owns a worker's local cache of job binaries, keyed by
// their sha256: the directory (mode 0700) the worker takes job binaries
// from.
//
// A binary gets into the cache only through a verified fetch, and a binary
// already on disk (from an earlier run of the worker) is trusted only after
// it has been hashed again in this process: the cache directory outlives
// the process and may have been truncated by a crash or damaged on disk.
// Exec hashes the file once more before every start, as it copies it into
// a sealed memfd that is what runs: a file replaced in the cache, even by
// one of the same size, is refused, fetched again, and never executed.
package bincache
