// Package worker is weir's taskmanager. Run registers the worker with the
// leading coordinator (found through etcd, followed across leader changes),
// offers its slots, heartbeats, and for each deployment fetches the job
// binary into a verified cache (bincache), starts it in task mode as a child
// process (supervisor), serves TaskService to it, and relays between the
// process and the coordinator: assignments and start routes down, task
// states and exits up.
//
// The task runtime the job process runs lives in sdk (see its doc): job
// binaries may import only sdk, proto and internal.
package worker
