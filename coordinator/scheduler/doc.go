// Package scheduler owns slot placement: given how many shared slots a job
// needs (see jobgraph.SlotsNeeded) and the free slots each worker offers, it
// decides which worker hosts each slot.
//
// It is pure and deterministic, so the same cluster view always yields the
// same placement: a new leader recomputing a placement, a test, and the
// status page all agree. The coordinator's driver owns the cluster view and
// turns a placement into DeployProcess messages, one per worker.
package scheduler
