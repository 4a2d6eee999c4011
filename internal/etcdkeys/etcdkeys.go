// Package etcdkeys owns the layout of weir's keys in etcd and the lookup of
// the leading coordinator, which coordinators, workers and the CLI share
// (workers may not import coordinator packages).
//
//	/weir/leader/<lease>   election candidates; the oldest holds the leader's API address
//	/weir/jobs/<id>        JobStatus records (protobuf), written fenced by the leader
package etcdkeys

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// Election is the concurrency.Election prefix coordinators campaign on.
	Election = "/weir/leader"
	// Jobs prefixes the job records.
	Jobs = "/weir/jobs/"
)

// ErrNoLeader means no coordinator currently leads.
var ErrNoLeader = errors.New("etcdkeys: no coordinator leads")

// LeaderAddress returns the API address the leading coordinator published:
// the value of the oldest candidate key, as concurrency.Election.Leader reads it.
func LeaderAddress(ctx context.Context, cli *clientv3.Client) (string, error) {
	resp, err := cli.Get(ctx, Election+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", ErrNoLeader
	}
	return string(resp.Kvs[0].Value), nil
}
