package nexmark

import (
	"math"
	"math/bits"
)

// SinkReport is what one subtask of a bench job's checksum sink writes when
// its input ends, and the bench harness reads: the output's checksum, and
// the time and CPU the job process spent.
type SinkReport struct {
	Query    string   `json:"query"`
	Subtask  int      `json:"subtask"`
	Attempt  int64    `json:"attempt"`
	PID      int      `json:"pid"`
	OpenNs   int64    `json:"open_unix_ns"`   // when this subtask's sink opened
	FinishNs int64    `json:"finish_unix_ns"` // when its input ended
	CPUNs    int64    `json:"cpu_ns"`         // user+system CPU of the whole job process so far
	Checksum Checksum `json:"checksum"`
	// Latency of the outputs written, from their EmitTime to the sink.
	Latency Histogram `json:"latency"`
	// FirstWriteNs is when the sink saw its first record in this attempt
	// (unix ns): after a restore, when records flow again.
	FirstWriteNs int64 `json:"first_write_unix_ns"`
}

// Histogram counts durations (ns) in log-linear buckets: 8 per power of
// two, so a percentile is within 9% of the true value, in 4 KiB.
type Histogram struct {
	Counts [histBuckets]uint64 `json:"counts"`
	Total  uint64              `json:"total"`
	Max    int64               `json:"max_ns"`
}

const (
	histSub     = 3 // 2^3 buckets per power of two
	histBuckets = 64 << histSub
)

func bucketOf(ns int64) int {
	if ns < 1<<histSub {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 1 // ns in [2^e, 2^(e+1))
	return e<<histSub | int(uint64(ns)>>(e-histSub))&(1<<histSub-1)
}

// bucketLow is the smallest duration in bucket b.
func bucketLow(b int) int64 {
	if b < 1<<histSub {
		return int64(b)
	}
	e, m := b>>histSub, b&(1<<histSub-1)
	return int64(1<<histSub|m) << (e - histSub)
}

// Record counts one duration.
func (h *Histogram) Record(ns int64) {
	h.Counts[bucketOf(ns)]++
	h.Total++
	h.Max = max(h.Max, ns)
}

// Merge adds another histogram's counts.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Total += o.Total
	h.Max = max(h.Max, o.Max)
}

// Quantile is the duration below which fraction q of the counts lie (the
// middle of its bucket), or 0 without counts.
func (h *Histogram) Quantile(q float64) int64 {
	if h.Total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.Total)))
	if rank >= h.Total {
		return h.Max
	}
	var seen uint64
	for b, c := range h.Counts {
		seen += c
		if seen >= max(rank, 1) {
			lo, hi := bucketLow(b), bucketLow(b+1)
			return min((lo+hi)/2, h.Max)
		}
	}
	return h.Max
}

// RunResult is the JSON line a single-process run prints: a baseline
// (bench/cmd/baseline) or a peer (bench/peers/beam), for the harness.
type RunResult struct {
	Query    string   `json:"query"`
	Events   int64    `json:"events"`
	WallSec  float64  `json:"wall_s"`
	CPUSec   float64  `json:"cpu_s"`
	Checksum Checksum `json:"checksum"`
}
