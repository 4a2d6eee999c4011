// Package coordinator is weir's jobmanager. Run campaigns for leadership in
// etcd; the leader serves JobService (the CLI) and ClusterService (workers),
// keeps the cluster's jobs and workers in one loop goroutine, drives each
// job's lifecycle (package jobmaster), checkpoints (package checkpoint) and
// placement (package scheduler), and records jobs in etcd through writes
// fenced by its leadership. The loop does no I/O of its own: each job's
// jobDriver hands the I/O its machines ask for to executors that report back
// as events (driver.go), so a slow store stalls only that job. It addresses
// a job process with a ProcessCommand keyed by (job, attempt, region), which
// the process's worker forwards as is, and reads which process a report is
// from only from the key its worker stamped on it (onProcessMessage). A standby
// coordinator serves the same API but refuses calls with the leader's
// address, so clients can go there.
//
// Subpackages hold the pure parts: jobgraph (validate, expand), scheduler
// (slot placement), jobmaster (lifecycle state machine), and leader (etcd
// election and fenced store).
package coordinator
