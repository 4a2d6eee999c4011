// Package chaos is weir's fault-injection campaign, Jepsen style: it starts
// a real multi-process cluster on loopback (three `weir etcd` members, two
// coordinators, three workers, `weir kafka` and versitygw as the S3 store,
// each its own process, with toxiproxy on every link between them), runs
// a Kafka→Kafka exactly-once job with keyed state (eoscount), one with
// session windows (bayvisits) and a file job of two regions with the
// exactly-once file sink (tworegions) at once, injects faults from a seeded schedule, and
// has an independent verifier judge the outcome from what the jobs wrote:
// read_committed output against a reference computed from the input
// topics as they stand, committed files against the generator's counts,
// jobs FINISHED or RUNNING with checkpoints completing after the last
// fault, no leaked job process, every daemon's RSS under a bound.
//
// Soak runs the same cluster and jobs without faults for a long time and
// reports the trend of every daemon's RSS and goroutines.
//
// bench/cmd/chaos is its command line; TestCampaign runs a short campaign
// in CI. docs/chaos.md describes the fault kinds, the verdict and the soak.
package chaos
