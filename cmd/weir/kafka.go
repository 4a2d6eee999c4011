package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// localKafkaPartitions is the partition count of topics the embedded broker
// creates on first use: enough for the parallelism of a local cluster.
const localKafkaPartitions = 4

// startKafka runs franz-go's in-process Kafka broker on addr, keeping its
// log in dir so that topics, offsets and open transactions survive a
// restart of `weir local`.
func startKafka(addr, dir string) (*kfake.Cluster, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageErrorf("--kafka-addr %s: %v", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, usageErrorf("--kafka-addr %s: bad port", addr)
	}
	if port == 0 {
		// kfake picks ports itself; find a free one so the address can be
		// printed and reused.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("kafka: %v", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.DataDir(dir),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(localKafkaPartitions),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka on %s: %v", addr, err)
	}
	return c, nil
}
