package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	if err := persistAutoCreated(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka on %s: %v", addr, err)
	}
	return c, nil
}

// persistAutoCreated makes topics the broker creates on first use durable
// at once. kfake writes its topic list on CreateTopics and on config
// changes, but keeps a topic a metadata request created in memory until a
// clean shutdown, so a crash of `weir local` would lose it and its records.
// After each metadata request that may create topics, a config change that
// changes nothing (cleanup.policy=delete, the default) of each new topic
// makes the broker write the list. It stops when the cluster closes.
func persistAutoCreated(c *kfake.Cluster) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return err
	}
	asked := make(chan []string, 256)
	c.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if m := req.(*kmsg.MetadataRequest); m.AllowAutoTopicCreation {
			var names []string
			for _, t := range m.Topics {
				if t.Topic != nil {
					names = append(names, *t.Topic)
				}
			}
			if len(names) > 0 {
				select {
				case asked <- names:
				default: // a burst; a later request names them again
				}
			}
		}
		return nil, nil, false // the broker handles it as usual
	})
	go func() {
		defer cl.Close()
		persisted := map[string]bool{}
		for {
			var names []string
			select {
			case names = <-asked:
			case <-time.After(time.Second):
				// The cluster is gone once its own client cannot reach it.
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
				cancel()
				if err != nil {
					return
				}
				continue
			}
			req := kmsg.NewPtrIncrementalAlterConfigsRequest()
			for _, n := range names {
				if persisted[n] {
					continue
				}
				r := kmsg.NewIncrementalAlterConfigsRequestResource()
				r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, n
				cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
				cfg.Name, cfg.Op, cfg.Value = "cleanup.policy", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("delete")
				r.Configs = append(r.Configs, cfg)
				req.Resources = append(req.Resources, r)
			}
			if len(req.Resources) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := req.RequestWith(ctx, cl)
			cancel()
			if err != nil {
				continue
			}
			for _, r := range resp.Resources {
				if kerr.ErrorForCode(r.ErrorCode) == nil {
					persisted[r.ResourceName] = true
				}
			}
		}
	}()
	return nil
}
