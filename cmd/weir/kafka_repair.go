package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// repairCrashAborts makes a crash of the embedded broker lose only the
// transactions open at the crash, and returns how many there were.
//
// kfake, starting on the log of a broker that crashed, treats every
// transaction left open as aborted: it adds it to its aborted-transaction
// index but writes no abort marker. Kafka's read_committed readers skip a
// listed producer's records from the aborted transaction's first offset
// until that producer's abort marker, so without one they skip every later
// record of the producer id (the same transactional id keeps its producer
// id across epochs): the exactly-once sink's transactions committed after
// the restart vanish for them. This starts kfake on the data alone, on a
// private port, finds each transaction that is open at the end of its
// partition's log and that the broker lists as aborted, writes its abort
// marker (WriteTxnMarkers), and shuts the broker down cleanly, which keeps
// the markers.
//
// Kafka itself keeps an open transaction across a restart until its
// timeout, so that its producer (an exactly-once sink recommitting the
// transaction it pre-committed for a completed checkpoint) can still
// commit it; kfake cannot, and such a transaction's records are lost. It
// returns each transaction it aborted, for the broker to name in its log.
//
// auth are the broker's SASL options and self its own client's.
func repairCrashAborts(dir string, auth []kfake.Opt, self []kgo.Opt) ([]lostTxn, error) {
	if _, err := os.Stat(filepath.Join(dir, "topics.json")); err != nil {
		return nil, nil // nothing written yet
	}
	return repairCrash(dir, auth, self)
}

// lostTxn is a transaction open at a crash, which the restarted broker
// aborted.
type lostTxn struct {
	Topic             string
	Partition         int32
	ProducerID        int64
	Epoch             int16
	FirstOffset, Last int64 // its records' offsets
	Records           int
}

func (l lostTxn) String() string {
	return fmt.Sprintf("%s/%d producer id %d epoch %d: %d records at offsets %d-%d",
		l.Topic, l.Partition, l.ProducerID, l.Epoch, l.Records, l.FirstOffset, l.Last)
}

func repairCrash(dir string, auth []kfake.Opt, self []kgo.Opt) (lost []lostTxn, _ error) {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(dir),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") })}, auth...)...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, self...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	parts := map[string]map[int32]kgo.Offset{}
	ids := map[string][16]byte{}
	for _, t := range meta.Topics {
		if t.Topic == nil || t.IsInternal {
			continue
		}
		ids[*t.Topic] = t.TopicID
		parts[*t.Topic] = map[int32]kgo.Offset{}
		for _, p := range t.Partitions {
			parts[*t.Topic][p.Partition] = kgo.NewOffset().AtStart()
		}
	}
	ends, err := endOffsets(ctx, cl, parts)
	if err != nil {
		return nil, err
	}
	// Every record and marker, to find each producer's transaction open at
	// the end of each partition's log.
	type tp struct {
		topic string
		part  int32
	}
	type open struct {
		first, last int64
		epoch       int16
		records     int
	}
	opens := map[tp]map[int64]open{}
	remaining := 0
	for t, ps := range ends {
		for p, end := range ps {
			if end > 0 {
				remaining++
			}
			opens[tp{t, p}] = map[int64]open{}
		}
	}
	if remaining > 0 {
		rd, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumePartitions(parts),
			kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords()}, self...)...)
		if err != nil {
			return nil, err
		}
		defer rd.Close()
		done := map[tp]bool{}
		for len(done) < remaining {
			fs := rd.PollFetches(ctx)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("read the log: %w", ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) {
				k := tp{r.Topic, r.Partition}
				switch {
				case r.Attrs.IsControl():
					delete(opens[k], r.ProducerID)
				case r.Attrs.IsTransactional():
					o, ok := opens[k][r.ProducerID]
					if !ok {
						o = open{first: r.Offset, epoch: r.ProducerEpoch}
					}
					o.last, o.records = r.Offset, o.records+1
					opens[k][r.ProducerID] = o
				}
				if r.Offset+1 >= ends[r.Topic][r.Partition] {
					done[k] = true
				}
			})
		}
	}
	for k, ps := range opens {
		for pid, o := range ps {
			aborted, err := listedAborted(ctx, cl, k.topic, ids[k.topic], k.part, pid, o.first)
			if err != nil {
				return lost, err
			}
			if !aborted {
				continue // resumed from a clean shutdown: still open
			}
			if err := writeAbortMarker(ctx, cl, k.topic, k.part, pid, o.epoch); err != nil {
				return lost, err
			}
			lost = append(lost, lostTxn{Topic: k.topic, Partition: k.part, ProducerID: pid, Epoch: o.epoch,
				FirstOffset: o.first, Last: o.last, Records: o.records})
		}
	}
	return lost, nil
}

// endOffsets are the high watermarks of parts.
func endOffsets(ctx context.Context, cl *kgo.Client, parts map[string]map[int32]kgo.Offset) (map[string]map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	for t, ps := range parts {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = t
		for p := range ps {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	ends := map[string]map[int32]int64{}
	for _, t := range resp.Topics {
		ends[t.Topic] = map[int32]int64{}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t.Topic, p.Partition, err)
			}
			ends[t.Topic][p.Partition] = p.Offset
		}
	}
	return ends, nil
}

// listedAborted reports whether a read_committed fetch of the partition
// from first lists producer pid's transaction starting there as aborted.
func listedAborted(ctx context.Context, cl *kgo.Client, topic string, id [16]byte, part int32, pid, first int64) (bool, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes, req.IsolationLevel = -1, 1<<20, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = part, first, 1<<20, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return false, err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return false, fmt.Errorf("fetch %s/%d: %w", topic, part, err)
			}
			for _, a := range p.AbortedTransactions {
				if a.ProducerID == pid && a.FirstOffset == first {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// writeAbortMarker writes producer pid's abort marker to the partition.
func writeAbortMarker(ctx context.Context, cl *kgo.Client, topic string, part int32, pid int64, epoch int16) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, false
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{part}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("abort marker on %s/%d: %w", topic, part, err)
	}
	var errs []error
	for _, rm := range resp.Markers {
		for _, t := range rm.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("abort marker on %s/%d: %w", t.Topic, p.Partition, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
