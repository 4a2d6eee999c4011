// Package jobgraph owns the coordinator's view of a job graph before it runs:
// it validates a *weirv1.JobGraph that a job binary described, orders its
// vertices, and expands it into the parallel subtasks the scheduler places.
//
// The coordinator never runs user code, so operators are opaque here: only
// their uids (which key savepoint state) and the shape of the graph matter.
//
// The package is pure: no I/O, no clocks, no goroutines. Functions never
// modify the graph they are given.
//
// Slot sharing follows Flink's default: every vertex is in one sharing group,
// and slot i hosts subtask i of every vertex. A job therefore needs as many
// slots as its widest vertex, and a pipeline's subtasks that exchange records
// over forward edges sit in the same slot.
package jobgraph
