// Package coordinator is weir's jobmanager. Run campaigns for leadership in
// etcd; the leader serves JobService (the CLI) and ClusterService (workers),
// keeps the cluster's jobs and workers in one loop goroutine, drives each
// job's lifecycle (package jobmaster) and placement (package scheduler), and
// records jobs in etcd through writes fenced by its leadership. It addresses
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
