// Package procstat reads the running Go process's memory and GC statistics,
// which workers and job processes report for the status page and /metrics,
// and the CPU time it has used, which the benchmarks measure by.
package procstat
