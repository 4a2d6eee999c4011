// Package describe runs a job binary in describe mode (--mode=describe, see
// internal/taskenv) and reads its job graph out of what it printed. `weir
// run` runs a binary on the submitter's machine with it, and a worker runs
// one the submitter's machine cannot run (JobService.DescribeBinary) with it
// in a sandbox; both results are a weirv1.DescribeOutcome that Graph reads,
// so a graph described on a worker is the one a local run gives, and so is
// every error.
package describe
