// Package storelayout owns every object key in weir's object store: job
// binaries, which the CLI uploads through the coordinator and workers fetch,
// and checkpoint objects, which job processes write and the coordinator
// reads and deletes. Content-addressed keys take the sha256 as 64 lower-case
// hex characters (internal/filehash); callers validate digests before
// building keys from them.
//
//	binaries/<sha256>                              a job binary
//	checkpoints/<job>/shared/<sha256>.sst          SST files, shared by a job's checkpoints
//	checkpoints/<job>/chk-<id>/v<vertex>-s<sub>/   a checkpoint's private files
//	checkpoints/<job>/chk-<id>/v<vertex>-s<sub>/_inflight  in-flight records of an unaligned snapshot
//	checkpoints/<job>/chk-<id>/_manifest           its manifest (CheckpointManifest)
//	savepoints/<job>/sp-<id>/...                   a savepoint: self-contained
package storelayout

import (
	"fmt"
	"strings"
)

// Binaries is the prefix of every job binary.
const Binaries = "binaries/"

// Binary is the key of the job binary whose sha256 is sha.
func Binary(sha string) string { return Binaries + sha }

// Shared is the prefix of a job's shared SST files.
func Shared(job string) string { return "checkpoints/" + job + "/shared/" }

// SharedFile is the content-addressed key of a shared file under shared (a
// prefix returned by Shared): its sha256 and its file name's extension, so
// that sharing is decided by content, never by Pebble's file numbers (which
// repeat across DB instances).
func SharedFile(shared, sha, ext string) string { return shared + sha + ext }

func dir(job string, id int64, savepoint bool) string {
	if savepoint {
		return fmt.Sprintf("savepoints/%s/sp-%d/", job, id)
	}
	return fmt.Sprintf("checkpoints/%s/chk-%d/", job, id)
}

// Private is the prefix of one subtask's own files in a checkpoint.
func Private(job string, id int64, savepoint bool, vertex, subtask int) string {
	return fmt.Sprintf("%sv%d-s%d/", dir(job, id, savepoint), vertex, subtask)
}

// InFlight is the key of one subtask's in-flight records in an unaligned
// checkpoint. Pebble names no file so, so it cannot clash with the subtask's
// private files.
func InFlight(job string, id int64, savepoint bool, vertex, subtask int) string {
	return Private(job, id, savepoint, vertex, subtask) + "_inflight"
}

// Manifest is the key of a checkpoint's or savepoint's manifest.
func Manifest(job string, id int64, savepoint bool) string {
	return dir(job, id, savepoint) + "_manifest"
}

// URL joins a store URL and an object key into the location users see, and
// Split takes it apart: file:///data/store + savepoints/j/sp-3/_manifest.
func URL(store, key string) string {
	base, query, _ := strings.Cut(store, "?")
	u := strings.TrimSuffix(base, "/") + "/" + key
	if query != "" {
		u += "?" + query
	}
	return u
}

// Split returns the store URL and key of a location made by URL: the key
// starts at "savepoints/" or "checkpoints/".
func Split(location string) (store, key string, err error) {
	base, query, _ := strings.Cut(location, "?")
	for _, top := range []string{"/savepoints/", "/checkpoints/"} {
		if i := strings.LastIndex(base, top); i >= 0 {
			store = base[:i]
			if query != "" {
				store += "?" + query
			}
			return store, base[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("storelayout: %q is not a savepoint or checkpoint location", location)
}

// JobPrefixes are the prefixes of every object job owns: its checkpoints
// and, with savepoints, its savepoints (see Owns). It refuses a job id that
// could reach beyond them (empty, or holding "/" or ".."), so deleting what
// lies under the prefixes never deletes another job's objects.
func JobPrefixes(job string, savepoints bool) ([]string, error) {
	if job == "" || strings.Contains(job, "/") || strings.Contains(job, "..") {
		return nil, fmt.Errorf("storelayout: %q is not a job id", job)
	}
	ps := []string{"checkpoints/" + job + "/"}
	if savepoints {
		ps = append(ps, "savepoints/"+job+"/")
	}
	return ps, nil
}

// Owns reports whether key lies under one of job's own prefixes, the only
// objects a job's processes may name and the coordinator may delete for it:
// never a binary, never another job's files.
func Owns(job, key string) bool {
	if job == "" || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		return false
	}
	return strings.HasPrefix(key, "checkpoints/"+job+"/") || strings.HasPrefix(key, "savepoints/"+job+"/")
}

// JobOf is the job whose checkpoint or savepoint holds key, "" for a key
// outside every job's prefixes.
func JobOf(key string) string {
	for _, top := range []string{"checkpoints/", "savepoints/"} {
		if rest, ok := strings.CutPrefix(key, top); ok {
			if job, _, ok := strings.Cut(rest, "/"); ok && job != "" && Owns(job, key) {
				return job
			}
		}
	}
	return ""
}
