// Package runtime is the task runtime linked into every job binary. It runs
// the subtasks of a compiled job graph: operator chains fused into one
// goroutine each, typed output writers that partition and batch records
// into internal/exchange, watermark and barrier alignment, checkpoints
// (operator state, keyed state in Pebble, uploads and acks), taps, metrics,
// and the two ways of running a graph: all of it in one process (RunLocal)
// or the subtasks a worker assigns (RunTask).
//
// It also owns the untyped contract between operators and the runtime:
// Graph, Vertex, Edge and Operator with its factories; OpRun and SourceRun,
// one subtask's instance of an operator; Env, the operator's view of its
// subtask; Poll and SourceLag; and StreamType, made by Records from a Codec,
// which is all the runtime knows of a record type. Package sdk compiles a
// Pipeline into a Graph and keeps the typed streams and the public API; the
// runtime never imports sdk (internal/invariants checks it), so this
// contract is the whole of what they share. The name is the role: sdk code
// reads runtime.Graph, runtime.Env, and no package here needs the standard
// library's runtime itself (runtime/debug is imported as debug).
//
// # The operator contract
//
// What an operator instance may assume:
//
//   - Calls. Each factory is called once per subtask, in the subtask's
//     goroutine, tail of the chain first: emit is the next operator's In (or
//     the output's writer), a func(T) of the operator's output type, and
//     Env.Sides holds the tail's side outputs. Every func of OpRun and
//     SourceRun is then called from that same goroutine, one at a time,
//     never concurrently, so an instance needs no locks; it must call emit
//     and Env only from within those calls. A record passed to emit may be
//     kept by the runtime (batches to subtasks in the same process hold the
//     values), so it must not be changed afterwards.
//   - Errors. Per-record handlers return nothing: they report with Env.Fail,
//     and the task loop stops after the current batch. The first error, a
//     returned one or a panic fails the subtask, and with it the attempt;
//     Permanent marks an error no restart can cure.
//   - Watermarks. The chain's input watermark only advances, and reaches the
//     first operator with a Watermark handler; that handler fires what is
//     due, then forwards with Env.EmitWatermark what it lets through (never
//     less than it forwarded before). Operators without a handler pass
//     watermarks on untouched. Idleness goes downstream through SetIdle.
//   - Processing time. Env.Now is the subtask's clock; Env.Wake(at) has the
//     loop call every OnTime of the chain at or after at. Flush is called
//     when output has waited for the buffer timeout, when a gate-fed
//     subtask runs out of input or a source is to wait past that timeout,
//     and before a snapshot: whatever an operator buffers it must emit
//     then.
//   - Checkpoints. A source chain snapshots between two polls when the
//     coordinator triggers it; other chains when the barrier has arrived on
//     every input. The chain is flushed, then SourceRun.Snapshot and every
//     OpRun.Snapshot run, head first, and only then is the barrier sent on:
//     a snapshot covers exactly the records before the barrier. A checkpoint
//     may be abandoned; Notify(id) says checkpoint id, and every earlier
//     one, completed, but a process may die before it is delivered, so
//     a two-phase-commit sink also commits what its restored state holds.
//     A restored operator finds its items in Env.Restored (its own old
//     subtask's at the same parallelism, dealt round robin otherwise) and
//     every old subtask's in Env.RestoredAll. Keyed state lives in
//     Env.State, shared by the chain: each key starts with the record's
//     2-byte big-endian key group and the operator's own prefix, so that a
//     restore at another parallelism splits it by key group. The keyed
//     state is checkpointed after every Snapshot ran, so an operator may
//     keep keyed state in memory and write it to Env.State in its
//     Snapshot.
//   - End of input. When every input has ended (a source's Poll said Done),
//     the final watermark, math.MaxInt64, goes through the chain, then
//     Finish is called head first; an operator may still emit in Finish,
//     and the operators after it see those records before their own
//     Finish. Finish is never called when the subtask fails or is
//     cancelled. When the job checkpoints (Env.Checkpointing), a final
//     checkpoint follows (Flink's FLIP-147, finish.go): the subtask keeps
//     its output open, snapshots on every trigger (Snapshot runs after
//     Finish, and the snapshot is marked finished) and ends once a
//     checkpoint taken after Finish completed and its Notify ran; so a
//     two-phase-commit sink commits its last output in Notify, not in
//     Finish. A subtask restored finished builds its operators with their
//     restored state but runs neither its input nor Finish. Close is
//     always called, once, last, tail first, failure or not.
package runtime
