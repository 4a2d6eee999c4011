// Package leader owns coordinator leader election in etcd and the fenced
// writes of cluster metadata.
//
// Coordinators campaign through an Elector (a concurrency.Election under a
// prefix such as "/weir/leader"), publishing their API address as the
// election value. The leader key's create revision is the fencing token:
// every write through the leader's Store is a transaction conditioned on
// that key still existing with that revision, so a deposed leader (session
// expired, resigned, partitioned) cannot commit anything, such as a
// checkpoint, after a successor may have started. Writes it attempts fail
// with ErrFenced.
//
// Followers, workers and CLIs find the leader with etcdkeys.CurrentLeader and follow
// changes with Watch; neither needs a session.
//
// Error classes: ErrFenced is the fenced class (stop acting as leader, never
// retry); ErrClosed and configuration errors are fatal; anything else from
// etcd (unavailable, deadline) is retryable, but for a write its outcome is
// unknown, and only the caller can decide whether retrying is safe.
package leader
