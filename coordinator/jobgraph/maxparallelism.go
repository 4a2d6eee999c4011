package jobgraph

const (
	// lowerBoundMaxParallelism is Flink's floor for a derived max
	// parallelism: a small job still gets enough key groups to be scaled out
	// later without losing its state.
	lowerBoundMaxParallelism = 128
	// upperBoundMaxParallelism is Flink's ceiling (1<<15): key groups are
	// addressed in state keys and savepoint metadata, and more of them only
	// adds per-key-group overhead.
	upperBoundMaxParallelism = 1 << 15
)

// DefaultMaxParallelism is Flink's rule for a job that set no max
// parallelism: min(32768, max(128, roundUpToPowerOfTwo(p + p/2))). The 1.5
// factor leaves headroom to scale up without a savepoint migration, since the
// number of key groups can never change for the lifetime of the job's state.
func DefaultMaxParallelism(p int) int {
	if p <= 0 {
		return lowerBoundMaxParallelism
	}
	// Compare before rounding so a huge p cannot overflow.
	want := p + p/2
	if want >= upperBoundMaxParallelism || want < p {
		return upperBoundMaxParallelism
	}
	return max(lowerBoundMaxParallelism, roundUpToPowerOfTwo(want))
}

// roundUpToPowerOfTwo returns the smallest power of two >= x, for 1 <= x <= 1<<30.
func roundUpToPowerOfTwo(x int) int {
	r := 1
	for r < x {
		r <<= 1
	}
	return r
}
