// Package worker is weir's taskmanager. Run registers the worker with the
// leading coordinator (found through etcd, followed across leader changes),
// offers its slots, heartbeats, and for each deployment fetches the job
// binary into a verified cache (bincache), starts it in task mode as a child
// process (supervisor) and serves TaskService to it.
//
// Between the coordinator and its job processes the worker is a router, not
// a relay: a CoordinatorMessage carrying a ProcessCommand goes to the
// process its key names as it came, and a process's ProcessMessage goes up
// in a WorkerMessage with the key of the stream it came on (a process never
// names its own job or attempt to the coordinator). The worker interprets
// only its own messages: DeployProcess (whose AssignTasks it hands the
// process when it attaches), a cancel command (it stops the process),
// ProcessReady and ProcessExited, and heartbeats. See proto/weir/v1/control.proto.
//
// The task runtime the job process runs lives in sdk (see its doc): job
// binaries may import only sdk, proto and internal.
package worker
