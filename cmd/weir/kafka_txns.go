package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A transaction open when the embedded broker was killed stays committable
// by its producer, as on Kafka, although kfake aborts it when it reloads
// the log (it keeps no transaction state on disk, and lists the
// transaction as aborted in a way no request can undo). Its records are
// copied, at the restart and before anyone else can write, into a
// transaction of the broker's own (a recovery transaction) that stays
// open; the producer's EndTxn for the original transaction (same
// transactional id, producer id and epoch) ends the copy instead. So
// read_committed readers see the records exactly once if the producer
// commits (the copies; the originals stay aborted), and never if it aborts,
// re-initialises the transactional id (a fence), or lets the transaction
// time out. The copies keep key, value, headers and timestamp, and come
// right after the originals in each partition; their offsets differ.
//
// What is not kept: further produce requests to the original transaction
// (its producer epoch was bumped by kfake's reload, so they are fenced;
// the exactly-once sink never writes to a pre-committed transaction), and
// offsets a consume-transform-produce application added to it
// (TxnOffsetCommit), which kfake keeps in memory only.
//
// kfake runs control functions before its SASL check, and tells them
// nothing of the connection: with SASL, a client that has not
// authenticated can end a recovered transaction if it knows its
// transactional id, producer id and epoch (docs/security.md).

// openTxnsFile is the journal of transactions open at a crash, in the data
// dir next to kfake's files.
const openTxnsFile = "weir-open-txns.json"

// recoveryTxnPrefix starts the transactional id of a recovery transaction.
const recoveryTxnPrefix = "weir-kafka-recovery-"

// openTxn is a transaction open when the broker was killed.
type openTxn struct {
	TxnID      string      `json:"transactional_id"` // "" if the broker no longer knew it
	ProducerID int64       `json:"producer_id"`
	Epoch      int16       `json:"epoch"`
	Timeout    int32       `json:"timeout_ms"`
	Deadline   time.Time   `json:"deadline"` // aborted then unless ended before
	Sources    []txnSource `json:"sources"`  // its records, aborted in the log
	// Copied: the recovery transaction RecoveryPID/RecoveryEpoch holds
	// the copies of the records, open.
	Copied        bool  `json:"copied"`
	RecoveryPID   int64 `json:"recovery_producer_id"`
	RecoveryEpoch int16 `json:"recovery_epoch"`
	// Outcome is "" while the transaction is open, then "committed" or
	// "aborted"; an ended transaction stays in the journal, so that a
	// retried EndTxn gets the same answer, until its transactional id is
	// initialised again.
	Outcome string `json:"outcome,omitempty"`

	busy chan struct{} // closed when a running end finishes
}

// txnSource is an open transaction's records in one partition.
type txnSource struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first_offset"` // of its first record
	Last      int64  `json:"last_offset"`  // of its last record
	Records   int    `json:"records"`
}

func (o *openTxn) recoveryID() string {
	return fmt.Sprintf("%s%d-%d", recoveryTxnPrefix, o.ProducerID, o.Epoch)
}

func (o *openTxn) String() string {
	var parts []string
	for _, s := range o.Sources {
		parts = append(parts, fmt.Sprintf("%s/%d: %d records at offsets %d-%d", s.Topic, s.Partition, s.Records, s.First, s.Last))
	}
	return fmt.Sprintf("transactional id %q producer id %d epoch %d (%s)", o.TxnID, o.ProducerID, o.Epoch, strings.Join(parts, ", "))
}

func (o *openTxn) records() (n int) {
	for _, s := range o.Sources {
		n += s.Records
	}
	return n
}

// readOpenTxns reads the journal; a missing one is empty.
func readOpenTxns(dir string) ([]*openTxn, error) {
	b, err := os.ReadFile(filepath.Join(dir, openTxnsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var txns []*openTxn
	if err := json.Unmarshal(b, &txns); err != nil {
		return nil, fmt.Errorf("%s: %v", openTxnsFile, err)
	}
	return txns, nil
}

// writeOpenTxns replaces the journal durably: a kill at any point leaves
// the old journal or the new one.
func writeOpenTxns(dir string, txns []*openTxn) error {
	path := filepath.Join(dir, openTxnsFile)
	if len(txns) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return syncDir(dir)
	}
	b, err := json.MarshalIndent(txns, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// dropSnapshots removes the partition snapshots kfake wrote at its last
// clean shutdown, once the broker has loaded them. kfake trusts a snapshot
// whose segment sizes match the log, and takes a transaction's state from
// the session file it deletes on loading: a kill -9 before the next write
// to a partition would leave the transactions the clean shutdown kept open
// (recovery ones included) neither open nor aborted, so read_committed
// readers would see their records, committed by nobody. Without the
// snapshot, the start after such a kill replays the log and finds them
// open at the crash. (The next clean shutdown writes new snapshots.)
func dropSnapshots(dir string) error {
	snaps, err := filepath.Glob(filepath.Join(dir, "partitions", "*", "snapshot.json"))
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if err := os.Remove(s); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(s)); err != nil {
			return err
		}
	}
	return nil
}

// txnIDs maps the producer ids the broker knows to their transactional ids
// and transaction timeouts.
func txnIDs(ctx context.Context, cl *kgo.Client) (map[int64]kmsg.DescribeTransactionsResponseTransactionState, error) {
	list, err := kmsg.NewPtrListTransactionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	if err := kerr.ErrorForCode(list.ErrorCode); err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	desc := kmsg.NewPtrDescribeTransactionsRequest()
	for _, s := range list.TransactionStates {
		desc.TransactionalIDs = append(desc.TransactionalIDs, s.TransactionalID)
	}
	ids := map[int64]kmsg.DescribeTransactionsResponseTransactionState{}
	if len(desc.TransactionalIDs) == 0 {
		return ids, nil
	}
	resp, err := desc.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("describe transactions: %w", err)
	}
	for _, s := range resp.TransactionStates {
		if kerr.ErrorForCode(s.ErrorCode) == nil {
			ids[s.ProducerID] = s
		}
	}
	return ids, nil
}

// copyTxn copies an open transaction's records into its recovery
// transaction and leaves that open (the client closes without ending it,
// and the broker's clean shutdown keeps it), recording its producer id and
// epoch.
func copyTxn(ctx context.Context, brokers []string, self []kgo.Opt, o *openTxn) error {
	parts := map[string]map[int32]kgo.Offset{}
	for _, s := range o.Sources {
		if parts[s.Topic] == nil {
			parts[s.Topic] = map[int32]kgo.Offset{}
		}
		parts[s.Topic][s.Partition] = kgo.NewOffset().At(s.First)
	}
	rd, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(parts),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted())}, self...)...)
	if err != nil {
		return err
	}
	defer rd.Close()
	type tp struct {
		topic string
		part  int32
	}
	want := map[tp]txnSource{}
	for _, s := range o.Sources {
		want[tp{s.Topic, s.Partition}] = s
	}
	var recs []*kgo.Record
	for done := map[tp]bool{}; len(done) < len(want); {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read transaction %d/%d: %w", o.ProducerID, o.Epoch, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			s := want[k]
			if done[k] || r.Offset > s.Last {
				done[k] = true
				return
			}
			if r.ProducerID == o.ProducerID && r.Attrs.IsTransactional() {
				recs = append(recs, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value,
					Headers: r.Headers, Timestamp: r.Timestamp})
			}
			if r.Offset == s.Last {
				done[k] = true
			}
		})
	}
	w, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.TransactionalID(o.recoveryID()),
		kgo.TransactionTimeout(time.Duration(o.Timeout) * time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner())}, self...)...)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.BeginTransaction(); err != nil {
		return err
	}
	if err := w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("copy transaction %d/%d: %w", o.ProducerID, o.Epoch, err)
	}
	pid, epoch, err := w.ProducerID(ctx)
	if err != nil {
		return err
	}
	o.RecoveryPID, o.RecoveryEpoch, o.Copied = pid, epoch, true
	return nil
}

// txnRecovery serves the end of the transactions open at a crash, on the
// running broker.
type txnRecovery struct {
	dir    string
	cl     *kgo.Client // the broker's own client
	logger *slog.Logger

	mu     sync.Mutex
	txns   []*openTxn
	timers []*time.Timer
	closed bool
}

// recoverOpenTxns makes the running broker c end each open transaction of
// the journal when its producer does, or when it times out.
func recoverOpenTxns(c *kfake.Cluster, dir string, self []kgo.Opt, logger *slog.Logger) (*txnRecovery, error) {
	txns, err := readOpenTxns(dir)
	if err != nil || len(txns) == 0 {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, self...)...)
	if err != nil {
		return nil, err
	}
	r := &txnRecovery{dir: dir, cl: cl, logger: logger, txns: txns}
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		return r.endTxn(c, req.(*kmsg.EndTxnRequest))
	})
	c.ControlKey(int16(kmsg.InitProducerID), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.initProducerID(c, req.(*kmsg.InitProducerIDRequest))
		return nil, nil, false // the broker initialises it as usual
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range txns {
		if o.Outcome == "" {
			var t *time.Timer
			t = time.AfterFunc(time.Until(o.Deadline), func() {
				if r.end(o, false, "timed out") == "" {
					r.mu.Lock()
					if !r.closed {
						t.Reset(time.Second) // the broker did not answer: again
					}
					r.mu.Unlock()
				}
			})
			r.timers = append(r.timers, t)
		}
	}
	return r, nil
}

// Close stops the timers and the client; the broker must be closed first.
func (r *txnRecovery) Close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.closed = true
	for _, t := range r.timers {
		t.Stop()
	}
	r.mu.Unlock()
	r.cl.Close()
}

// find is the journal's transaction of producer pid at epoch.
func (r *txnRecovery) find(txnID string, pid int64, epoch int16) *openTxn {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.txns {
		if o.ProducerID == pid && o.Epoch == epoch && (o.TxnID == "" || o.TxnID == txnID) {
			return o
		}
	}
	return nil
}

// endTxn answers an EndTxn of a journal's transaction, whether it is open
// or already ended; it leaves every other EndTxn to the broker.
func (r *txnRecovery) endTxn(c *kfake.Cluster, req *kmsg.EndTxnRequest) (kmsg.Response, error, bool) {
	if strings.HasPrefix(req.TransactionalID, recoveryTxnPrefix) {
		return nil, nil, false // this broker's own end of a recovery transaction
	}
	o := r.find(req.TransactionalID, req.ProducerID, req.ProducerEpoch)
	if o == nil {
		return nil, nil, false
	}
	c.KeepControl()
	// The end is a request to this broker: sleeping lets the broker serve
	// it, and every other client, meanwhile. A broker shutting down wakes
	// the sleep early, with the end still running: no answer then.
	ended := make(chan string, 1)
	c.SleepControl(func() { ended <- r.end(o, req.Commit, "") })
	var outcome string
	select {
	case outcome = <-ended:
	default:
	}
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	if outcome == "" {
		resp.ErrorCode = kerr.ConcurrentTransactions.Code // retried by producers
		return resp, nil, true
	}
	if want := map[bool]string{true: "committed", false: "aborted"}[req.Commit]; outcome != want {
		// Committing what was aborted (it timed out, or its
		// recovery failed): what Kafka answers, and what the
		// exactly-once sink reports as lost records.
		resp.ErrorCode = kerr.InvalidTxnState.Code
		return resp, nil, true
	}
	if req.Version >= 5 {
		// KIP-890: the next epoch, which the broker already gave the
		// producer id when it reloaded the log.
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
	}
	return resp, nil, true
}

// initProducerID aborts the open transaction of a transactional id being
// initialised again (a fence, as on Kafka), and forgets the journal's
// transactions of that id: from now on the broker's own answers are right.
func (r *txnRecovery) initProducerID(c *kfake.Cluster, req *kmsg.InitProducerIDRequest) {
	if req.TransactionalID == nil || strings.HasPrefix(*req.TransactionalID, recoveryTxnPrefix) {
		return
	}
	id := *req.TransactionalID
	r.mu.Lock()
	var of []*openTxn
	for _, o := range r.txns {
		if o.TxnID == id {
			of = append(of, o)
		}
	}
	r.mu.Unlock()
	if len(of) == 0 {
		return
	}
	c.SleepControl(func() {
		for _, o := range of {
			r.end(o, false, "fenced: its transactional id was initialised again")
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.txns = slices.DeleteFunc(r.txns, func(o *openTxn) bool { return slices.Contains(of, o) })
		if err := writeOpenTxns(r.dir, r.txns); err != nil {
			r.logger.Error("kafka: cannot update the journal of transactions open at the crash", "err", err)
		}
	})
}

// end ends an open transaction by ending its recovery transaction, once,
// and returns its outcome. why names what aborts it, "" for its producer.
func (r *txnRecovery) end(o *openTxn, commit bool, why string) string {
	r.mu.Lock()
	for o.busy != nil {
		ch := o.busy
		r.mu.Unlock()
		<-ch
		r.mu.Lock()
	}
	if o.Outcome != "" {
		defer r.mu.Unlock()
		return o.Outcome
	}
	ch := make(chan struct{})
	o.busy = ch
	r.mu.Unlock()

	err := errors.New("its records were not copied")
	if o.Copied {
		err = r.endRecovery(o, commit)
	}
	if _, definite := errors.AsType[*kerr.Error](err); err != nil && !definite && o.Copied {
		// The broker did not answer (it is shutting down): the
		// transaction stays open, for the producer to retry.
		r.mu.Lock()
		o.busy = nil
		close(ch)
		r.mu.Unlock()
		return ""
	}
	outcome := "aborted"
	switch {
	case err == nil && commit:
		outcome = "committed"
		r.logger.Info("kafka: committed a transaction open at the crash, for its producer", "transaction", o.String())
	case err != nil && commit:
		r.logger.Error("kafka: LOST TRANSACTION "+o.String()+": open when the broker was killed; its producer committed it "+
			"after the restart, but the broker could not: "+err.Error()+"; its records are lost output",
			"transactional_id", o.TxnID, "producer_id", o.ProducerID, "epoch", o.Epoch, "records", o.records())
	case why == "timed out":
		r.logger.Warn("kafka: aborted a transaction open at the crash: its producer did not end it within its timeout "+
			"(if an exactly-once sink had pre-committed it for a checkpoint, its records are lost output)",
			"transaction", o.String(), "timeout", time.Duration(o.Timeout)*time.Millisecond)
	default:
		if why == "" {
			why = "by its producer"
		}
		r.logger.Info("kafka: aborted a transaction open at the crash, "+why, "transaction", o.String())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o.Outcome, o.busy = outcome, nil
	close(ch)
	if err := writeOpenTxns(r.dir, r.txns); err != nil {
		r.logger.Error("kafka: cannot update the journal of transactions open at the crash", "err", err)
	}
	return outcome
}

// endRecovery commits or aborts o's recovery transaction.
func (r *txnRecovery) endRecovery(o *openTxn, commit bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = o.recoveryID(), o.RecoveryPID, o.RecoveryEpoch, commit
		resp, err := req.RequestWith(ctx, r.cl)
		if err != nil {
			return err
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		if err == nil || !(kerr.IsRetriable(err) || errors.Is(err, kerr.ConcurrentTransactions)) {
			// Fenced or unknown: the broker aborted the copy itself,
			// at its timeout.
			return err
		}
		select {
		case <-ctx.Done():
			// Still retriable: no answer, the transaction stays open
			// (the error must not read as the broker's definite one).
			return fmt.Errorf("%w (last answer: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
