// Package sdk is the public API for writing weir jobs: a pipeline of typed
// streams (sources, Map, Filter, FlatMap, KeyBy, keyed Reduce and Aggregate,
// sinks), codecs, options, and Main, which turns a Go program into a job
// binary that can describe its graph, run locally, or run subtasks for a
// worker.
//
// It also owns the task runtime linked into every job binary: operator
// chains fused into one goroutine, typed output writers that partition and
// batch records, and the subtask loop over internal/exchange. The runtime
// lives here, not in worker/, because the import rules let job binaries
// import only sdk and sdk import only proto and internal, and the typed half
// of the runtime (encoding, partitioning by key) needs the user's types.
//
// Go has no generic methods, so transformations are functions:
//
//	words := sdk.FlatMap(lines, split)
//	counts := sdk.Aggregate(sdk.KeyBy(words, word), sdk.Count[string](), sdk.EmitFinal())
package sdk
