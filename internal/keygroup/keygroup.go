// Package keygroup owns the mapping of keys to key groups and of key groups
// to subtasks. Both the SDK (which routes records, and on a rescale restores
// keyed state by key-group range) and the coordinator (which validates
// parallelism against the max parallelism) use it, so the rule lives in one
// place.
//
// A key hashes to one of maxParallelism key groups; subtask s of p owns the
// contiguous range of groups g with g*p/maxParallelism == s. Keyed state is
// stored by key group, so a rescale moves whole ranges.
package keygroup

import "github.com/cespare/xxhash/v2"

// MaxLimit is the largest supported max parallelism (Flink's limit).
const MaxLimit = 1 << 15

// DefaultMaxParallelism is Flink's default for a job whose largest operator
// parallelism is p: 1.5 p rounded up to a power of two, within [128, 32768].
// The headroom lets a job scale out later without losing its state layout.
func DefaultMaxParallelism(p int) int {
	const floor = 128
	if p <= 0 {
		return floor
	}
	// Compare before rounding so a huge p cannot overflow.
	want := p + p/2
	if want >= MaxLimit || want < p {
		return MaxLimit
	}
	n := 1
	for n < want {
		n <<= 1
	}
	return max(floor, n)
}

// Hash is the stable hash of a key's encoded bytes. It must never change:
// state written under one version is found under the next.
func Hash(key []byte) uint64 { return xxhash.Sum64(key) }

// Of returns the key group of a key hash.
func Of(hash uint64, maxParallelism int) int { return int(hash % uint64(maxParallelism)) }

// Subtask returns the subtask of parallelism p that owns key group g.
func Subtask(g, maxParallelism, p int) int { return g * p / maxParallelism }

// Range returns the key groups [start, end) owned by subtask s of p.
func Range(s, p, maxParallelism int) (start, end int) {
	return (s*maxParallelism + p - 1) / p, ((s+1)*maxParallelism + p - 1) / p
}
