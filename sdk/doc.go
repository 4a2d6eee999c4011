// Package sdk is the public API for writing weir jobs: a pipeline of typed
// streams (sources, Map, Filter, FlatMap, Union, KeyBy, keyed Reduce and
// Aggregate, keyed state, windows, inner, left-outer and anti joins, timers,
// sinks), codecs, options, and Main, which turns a
// Go program into a job binary that can describe its graph, run locally, or
// run subtasks for a worker.
//
// The task runtime linked into every job binary lives in sdk/internal/runtime:
// the subtask loop, deployment, checkpointing, taps and metrics, and the
// typed output writers. sdk compiles a Pipeline into the runtime's untyped
// graph (compile.go): each operator becomes factories that close over the
// user's types, and each stream a runtime.StreamType made from its codec.
// The runtime's package documentation writes down what an operator may
// assume of it. Both live under sdk, not worker/, because the import rules
// let job binaries import only sdk and sdk import only proto and internal,
// and the typed half of the runtime (encoding, partitioning by key) needs
// the user's types.
//
// Go has no generic methods, so transformations are functions:
//
//	words := sdk.FlatMap(lines, split)
//	counts := sdk.Aggregate(sdk.KeyBy(words, word), sdk.Count[string](), sdk.EmitFinal())
package sdk
