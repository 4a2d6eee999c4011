package coordinator

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weir-run/weir/internal/etcdkeys"
)

// loadClusterSecret reads the cluster secret, making it if this is the
// first leader ever. Creation is a transaction on the key's absence, so two
// first leaders agree on one secret.
func loadClusterSecret(ctx context.Context, cli *clientv3.Client) ([]byte, error) {
	fresh := make([]byte, 32)
	rand.Read(fresh)
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(etcdkeys.ClusterSecret), "=", 0)).
		Then(clientv3.OpPut(etcdkeys.ClusterSecret, string(fresh))).
		Else(clientv3.OpGet(etcdkeys.ClusterSecret)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 || len(kvs[0].Value) < 32 {
		return nil, fmt.Errorf("cluster secret at %s is malformed", etcdkeys.ClusterSecret)
	}
	return kvs[0].Value, nil
}

// channelSecret is the data-channel secret of a job attempt: the processes
// of an attempt present it to each other (exchange.Options.ChannelSecret),
// so a stranger, or a process of another job, cannot open a channel.
func (s *leaderState) channelSecret(job string, attempt int64) string {
	mac := hmac.New(sha256.New, s.clusterSecret)
	mac.Write([]byte(job + "/" + strconv.FormatInt(attempt, 10)))
	return hex.EncodeToString(mac.Sum(nil))
}
