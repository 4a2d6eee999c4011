package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// repairCrash keeps committable the transactions open when the embedded
// broker was killed, and returns those it now keeps open and those it
// aborted because their timeout passed while the broker was down.
//
// kfake, starting on the log of a broker that crashed, treats every
// transaction left open as aborted: it lists it in its aborted-transaction
// index, writes no abort marker, and bumps its producer's epoch. Nothing
// a client can send takes a transaction out of that index, so committing
// it in place (a COMMIT marker) would leave its records hidden from
// read_committed readers, and, the index listing it with no abort marker
// after it, every later record of its producer id too (the exactly-once
// sink keeps its producer ids across restarts). Kafka instead keeps an open
// transaction across a restart, for its producer (an exactly-once sink
// recommitting the transaction it pre-committed for a completed checkpoint)
// to commit until its timeout.
//
// So this starts kfake on the data alone, on a private port, finds each
// transaction open at the end of its partition's log that the broker lists
// as aborted, and, in this order, each step durable before the next (a
// kill during the repair is repaired at the next start):
//   - journals it (openTxnsFile: transactional id, producer id, epoch,
//     timeout, its records' offsets);
//   - writes its abort marker (WriteTxnMarkers), which ends the hiding of
//     the producer's later records;
//   - copies its records, after the marker, into a recovery transaction of
//     its own, left open (see kafka_txns.go), which the running broker
//     commits when the producer commits the original.
//
// It then shuts the broker down cleanly, which keeps the markers and the
// open recovery transactions. A recovery transaction open at a crash (the
// broker was killed again before the producer ended the original) is
// aborted and copied again from the original's records.
//
// auth are the broker's SASL options and self its own client's.
func repairCrash(dir string, auth []kfake.Opt, self []kgo.Opt) (kept, expired []*openTxn, _ error) {
	if _, err := os.Stat(filepath.Join(dir, "topics.json")); err != nil {
		return nil, nil, nil // nothing written yet
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(dir),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") })}, auth...)...)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	// The session file went as this broker loaded it: a kill -9 during the
	// repair must not leave the snapshots to be trusted without it.
	if err := dropSnapshots(dir); err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, self...)...)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	crashed, err := crashOpenTxns(ctx, c, cl, self)
	if err != nil {
		return nil, nil, err
	}
	journal, err := readOpenTxns(dir)
	if err != nil {
		return nil, nil, err
	}
	if len(crashed) > 0 {
		ids, err := txnIDs(ctx, cl)
		if err != nil {
			return nil, nil, err
		}
	next:
		for pid, t := range crashed {
			for _, o := range journal {
				switch {
				case o.Outcome == "" && o.Copied && o.RecoveryPID == pid:
					o.Copied = false // a recovery transaction the crash broke
					continue next
				case o.ProducerID == pid && o.Epoch == t.Epoch:
					continue next // journaled by a repair that was killed
				}
			}
			id := ids[pid]
			if strings.HasPrefix(id.TransactionalID, recoveryTxnPrefix) {
				continue // a copy a killed repair left unjournaled: its original is copied again
			}
			timeout := id.TimeoutMillis
			if timeout <= 0 {
				timeout = 60_000 // the broker forgot the id: Kafka's default
			}
			t.TxnID, t.Timeout = id.TransactionalID, timeout
			// The clock restarts with the broker: kfake pauses a
			// transaction's timeout while it is down (at a clean
			// restart), and the time before the crash is not known.
			t.Deadline = time.Now().Add(time.Duration(timeout) * time.Millisecond)
			journal = append(journal, t)
		}
		if err := writeOpenTxns(dir, journal); err != nil {
			return nil, nil, err
		}
		for pid, t := range crashed {
			for _, s := range t.Sources {
				if err := writeAbortMarker(ctx, cl, s.Topic, s.Partition, pid, t.Epoch); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	for _, o := range journal {
		if o.Outcome != "" || o.Copied {
			continue
		}
		if time.Now().After(o.Deadline) {
			o.Outcome = "aborted"
			expired = append(expired, o)
		} else {
			if err := copyTxn(ctx, c.ListenAddrs(), self, o); err != nil {
				return kept, expired, err
			}
			kept = append(kept, o)
		}
		if err := writeOpenTxns(dir, journal); err != nil {
			return kept, expired, err
		}
	}
	return kept, expired, nil
}

// crashOpenTxns are the transactions open at the end of the log that the
// broker lists as aborted, by producer id: those a crash left open. (A
// transaction open at a clean shutdown the broker keeps open.)
func crashOpenTxns(ctx context.Context, c *kfake.Cluster, cl *kgo.Client, self []kgo.Opt) (map[int64]*openTxn, error) {
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
	ends, err := listOffsets(ctx, cl, parts, -1)
	if err != nil {
		return nil, err
	}
	// A partition trimmed to its end (DeleteRecords, retention) has no
	// record to read up to it.
	starts, err := listOffsets(ctx, cl, parts, -2)
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
			if starts[t][p] < end {
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
	crashed := map[int64]*openTxn{}
	for k, ps := range opens {
		for pid, o := range ps {
			aborted, err := listedAborted(ctx, cl, k.topic, ids[k.topic], k.part, pid, o.first)
			if err != nil {
				return nil, err
			}
			if !aborted {
				continue // resumed from a clean shutdown: still open
			}
			t := crashed[pid]
			if t == nil {
				t = &openTxn{ProducerID: pid, Epoch: o.epoch}
				crashed[pid] = t
			}
			t.Sources = append(t.Sources, txnSource{Topic: k.topic, Partition: k.part, First: o.first, Last: o.last, Records: o.records})
		}
	}
	for _, t := range crashed {
		slices.SortFunc(t.Sources, func(a, b txnSource) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
	}
	return crashed, nil
}

// listOffsets are the offsets of parts at timestamp ts: -1 their high
// watermarks, -2 their log start offsets.
func listOffsets(ctx context.Context, cl *kgo.Client, parts map[string]map[int32]kgo.Offset, ts int64) (map[string]map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	for t, ps := range parts {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = t
		for p := range ps {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, ts
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
				return nil, fmt.Errorf("offset of %s/%d: %w", t.Topic, p.Partition, err)
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
