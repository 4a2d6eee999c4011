// Package cluster starts weir daemons as separate processes on this machine
// and drives them through the weir CLI, for the harnesses under bench/: the
// Nexmark bench (one etcd, one coordinator, workers) and the chaos campaign
// (three etcd members, two coordinators, workers, a broker and an S3 store,
// each its own process). Every process writes its output to NAME.log in
// the cluster's directory.
package cluster
