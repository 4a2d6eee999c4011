// Package bincache owns a worker's local cache of job binaries, keyed by
// their sha256: the directory the worker executes job binaries from.
//
// A binary gets into the cache only through a verified fetch, and a binary
// already on disk (from an earlier run of the worker) is trusted only after
// it has been hashed again in this process: the cache directory outlives
// the process and may have been truncated by a crash or damaged on disk.
package bincache
