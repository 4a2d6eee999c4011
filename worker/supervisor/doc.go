// Package supervisor owns the life of one job process on a worker: starting
// the user's job binary as a child, relaying its stdout and stderr into the
// worker's structured log, noticing when it exits and why, and stopping it
// together with everything it spawned.
//
// A job process runs in its own process group, and the whole group is
// treated as the job: Stop signals the group, and when the job process
// exits, whatever it left behind in its group is killed. On Linux the child
// is also tied to the worker with a parent-death signal, so a worker that is
// kill -9ed does not leave job processes running (and writing output) with
// nobody supervising them.
//
// Deciding whether to restart a failed job is not this package's business:
// it reports a Result, and the job lifecycle decides.
package supervisor
