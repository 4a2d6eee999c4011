package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-run/weir/sdk"
)

// slots is how many transactional ids a sink subtask rotates through: one
// is open for writing while the others wait for their checkpoints to
// complete. Running out means checkpoints keep failing.
const slots = 8

// deliveryTimeout bounds how long a record may wait for the broker.
const deliveryTimeout = 2 * time.Minute

// endTimeout bounds a commit or an abort.
const endTimeout = time.Minute

// Sink writes records to Kafka with cfg.Delivery, encoding values with value.
func Sink[T any](s sdk.Stream[Record[T]], cfg SinkConfig, value sdk.Codec[T], opts ...sdk.Option) {
	sink(s, cfg, func(t sdk.TaskInfo, cfg SinkConfig) (sdk.SinkWriter[Record[T]], error) {
		return openWriter(t, cfg, value)
	}, opts)
}

// SinkKeyed writes every record v of s, of any type, as one Kafka record to
// cfg.Topic: its key is key(v) (none when empty) and its value v encoded by
// value; its timestamp is the time it is produced. It is Sink for keyed and
// windowed results, without a Map to Record: delivery, and exactly-once
// with it, is Sink's.
//
//	kafka.SinkKeyed(counts, cfg, func(kv sdk.KV[string, int64]) string { return kv.Key },
//		sdk.JSONCodec[sdk.KV[string, int64]]{}, sdk.WithUID("output"))
//
// Any sdk.Codec is an Encoder; EncoderFunc makes one of a function.
func SinkKeyed[T any, K ~string | ~[]byte](s sdk.Stream[T], cfg SinkConfig, key func(T) K, value Encoder[T], opts ...sdk.Option) {
	if key == nil || value == nil {
		s.Pipeline().Fail(errors.New("kafka sink: SinkKeyed needs a key function and a value encoder"))
		return
	}
	sink(s, cfg, func(t sdk.TaskInfo, cfg SinkConfig) (sdk.SinkWriter[T], error) {
		w, err := openWriter(t, cfg, value)
		if err != nil {
			return nil, err
		}
		return keyedWriter[T, K]{writer: w, key: key}, nil
	}, opts)
}

// Encoder encodes a sink's values; every sdk.Codec is one.
type Encoder[T any] interface {
	// Append appends the encoding of v to dst and returns the extended
	// slice; it must not retain dst.
	Append(dst []byte, v T) []byte
}

// EncoderFunc is an Encoder that calls itself:
// kafka.EncoderFunc[visit](appendVisitJSON).
type EncoderFunc[T any] func(dst []byte, v T) []byte

// Append calls f.
func (f EncoderFunc[T]) Append(dst []byte, v T) []byte { return f(dst, v) }

// sink adds a Kafka sink whose subtasks write through the writer open
// returns for the validated configuration.
func sink[T any](s sdk.Stream[T], cfg SinkConfig, open func(sdk.TaskInfo, SinkConfig) (sdk.SinkWriter[T], error), opts []sdk.Option) {
	if err := cfg.Validate(); err != nil {
		s.Pipeline().Fail(err)
	}
	cfg = cfg.withDefaults()
	base := []sdk.Option{sdk.WithName("KafkaSink")}
	if cfg.Delivery == DeliveryDefault || cfg.Delivery == ExactlyOnce {
		base = append(base, sdk.WithTransactionTimeout(cfg.TransactionTimeout))
	}
	sdk.NewSink(s, "KafkaSink", func(t sdk.TaskInfo) (sdk.SinkWriter[T], error) { return open(t, cfg) },
		append(base, opts...)...)
}

// keyedWriter is SinkKeyed's writer: it makes a Record of every value and
// writes it with the writer of Sink, whose PreCommit and Commit (the two
// phases) it shares.
type keyedWriter[T any, K ~string | ~[]byte] struct {
	*writer[T]
	key func(T) K
}

func (w keyedWriter[T, K]) Write(v T) error {
	r := Record[T]{Value: v}
	if k := w.key(v); len(k) > 0 {
		r.Key = []byte(k)
	}
	return w.writer.Write(r)
}

// txn is one transaction: its own client, since a client carries one
// transactional id.
type txn struct {
	slot    int
	cl      *kgo.Client
	promise func(*kgo.Record, error)
	pending
}

// pending is a pre-committed transaction as the checkpoint records it.
type pending struct {
	// Checkpoint is the barrier that pre-committed it; 0 while open.
	Checkpoint int64  `json:"checkpoint"`
	ID         string `json:"id"`
	ProducerID int64  `json:"producer_id"`
	Epoch      int16  `json:"epoch"`
}

// sinkState is one subtask's checkpointed state.
type sinkState struct {
	// Base is the transactional id prefix of the subtask's slots:
	// Base-<subtask>-<slot>.
	Base    string    `json:"base"`
	Subtask int       `json:"subtask"`
	Pending []pending `json:"pending"`
	// Subtasks is the most subtasks the sink has run with, so a restore at
	// lower parallelism fences every id an earlier attempt may have used.
	Subtasks int `json:"subtasks"`
}

type writer[T any] struct {
	cfg          SinkConfig
	value        Encoder[T]
	delivery     Delivery
	logger       *slog.Logger
	base         string
	subtask      int
	subtasks     int
	opts         []kgo.Opt // for every producer client
	admin        *kgo.Client
	plain        *kgo.Client // None and AtLeastOnce
	plainPromise func(*kgo.Record, error)
	cur          *txn   // ExactlyOnce: the open transaction
	pending      []*txn // pre-committed, oldest first
	// final: the job checkpoints, so a final checkpoint follows Finish
	// (FLIP-147) and commits the last transaction on its completion.
	final    bool
	nextSlot int
	buf      []byte

	mu     sync.Mutex
	failed error // the first failed produce
}

func openWriter[T any](t sdk.TaskInfo, cfg SinkConfig, value Encoder[T]) (*writer[T], error) {
	auth, err := cfg.Auth.options()
	if err != nil {
		return nil, err
	}
	cfg.ClientOptions = append(auth, cfg.ClientOptions...)
	w := &writer[T]{cfg: cfg, value: value, delivery: cfg.Delivery, logger: t.Logger(),
		base:    fmt.Sprintf("%s-%s-%s", cfg.TransactionalIDPrefix, t.JobID(), t.UID()),
		subtask: t.Subtask(), subtasks: t.Parallelism(), final: t.Checkpointing()}
	if w.delivery == DeliveryDefault {
		w.delivery = AtLeastOnce
		if t.Checkpointing() {
			w.delivery = ExactlyOnce
		}
	}
	if w.delivery == ExactlyOnce && !t.Checkpointing() {
		return nil, errors.New("kafka sink: exactly-once delivery commits with checkpoints, and the job takes none: " +
			"run it with --checkpoint-interval, or choose at-least-once delivery")
	}
	codec, _ := cfg.Compression.codec()
	w.opts = append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ProducerBatchCompression(codec),
		kgo.DefaultProduceTopic(cfg.Topic), kgo.ProducerLinger(time.Millisecond), kgo.AllowAutoTopicCreation(),
		// A broker that stays unreachable fails the records, and so the
		// task, instead of blocking it forever; the job restarts from its
		// checkpoint and writes them again.
		kgo.RecordDeliveryTimeout(deliveryTimeout)}, cfg.ClientOptions...)
	if w.delivery == None {
		w.opts = append(w.opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	}
	if w.admin, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...); err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	if err := createTopic(w.admin, cfg); err != nil {
		w.admin.Close()
		return nil, err
	}
	if w.delivery != ExactlyOnce {
		w.plainPromise = w.promise("")
		if w.plain, err = kgo.NewClient(w.opts...); err != nil {
			w.admin.Close()
			return nil, fmt.Errorf("kafka sink: %w", err)
		}
		return w, nil
	}
	if err := w.recover(t); err != nil {
		w.admin.Close()
		return nil, err
	}
	return w, nil
}

// createTopic creates the sink's topic if it does not exist, with the
// configured partitions: a topic created on first use by the broker (if it
// does that at all) would get whatever its defaults are, and some brokers
// keep such topics only in memory until they flush their metadata.
func createTopic(admin *kgo.Client, cfg SinkConfig) error {
	if cfg.Topic == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = cfg.Topic, -1, -1
	if cfg.Partitions > 0 {
		rt.NumPartitions = cfg.Partitions
	}
	if cfg.ReplicationFactor > 0 {
		rt.ReplicationFactor = cfg.ReplicationFactor
	}
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = int32(endTimeout.Milliseconds())
	resp, err := req.RequestWith(ctx, admin)
	if err != nil {
		return fmt.Errorf("kafka sink: create topic %q on %v: %w", cfg.Topic, cfg.Brokers, err)
	}
	for _, t := range resp.Topics {
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
		case errors.Is(err, kerr.InvalidPartitions), errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.TopicAuthorizationFailed):
			return sdk.Permanent(fmt.Errorf("kafka sink: cannot create topic %q: %w", cfg.Topic, err))
		default:
			return fmt.Errorf("kafka sink: create topic %q: %w", cfg.Topic, err)
		}
	}
	return nil
}

func (w *writer[T]) txnID(base string, subtask, slot int) string {
	return fmt.Sprintf("%s-%d-%d", base, subtask, slot)
}

// recover commits the transactions the restored checkpoint pre-committed
// for the old subtasks this one takes over, then fences all their ids and
// its own, aborting whatever a failed attempt left open.
func (w *writer[T]) recover(t sdk.TaskInfo) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*endTimeout)
	defer cancel()
	items, _ := t.RestoredAll()
	type ids struct {
		base    string
		subtask int
	}
	fence := map[ids]bool{{w.base, w.subtask}: true}
	for _, it := range items {
		st, err := decodeSinkState(it)
		if err != nil {
			return err
		}
		w.subtasks = max(w.subtasks, st.Subtasks)
		if st.Subtask%t.Parallelism() != w.subtask {
			continue
		}
		for _, p := range st.Pending {
			if err := recommit(ctx, w.admin, p, w.logger); err != nil {
				return err
			}
		}
		fence[ids{st.Base, st.Subtask}] = true
	}
	// Subtasks beyond the current parallelism that an earlier attempt ran.
	for j := w.subtask + t.Parallelism(); j < w.subtasks; j += t.Parallelism() {
		fence[ids{w.base, j}] = true
	}
	for id := range fence {
		for s := range slots {
			if err := fenceID(ctx, w.admin, w.txnID(id.base, id.subtask, s), w.cfg.TransactionTimeout); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeSinkState(b []byte) (sinkState, error) {
	var st sinkState
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("kafka sink: corrupt state in checkpoint: %w", err)
	}
	if st.Base == "" || st.Subtask < 0 || st.Subtasks <= st.Subtask {
		return st, fmt.Errorf("kafka sink: corrupt state in checkpoint: subtask %d of %d, base %q", st.Subtask, st.Subtasks, st.Base)
	}
	for _, p := range st.Pending {
		if p.ID == "" || p.ProducerID < 0 || p.Epoch < 0 {
			return st, fmt.Errorf("kafka sink: corrupt state in checkpoint: transaction %+v", p)
		}
	}
	return st, nil
}

func (w *writer[T]) Write(r Record[T]) error {
	if err := w.err(); err != nil {
		return err
	}
	cl, promise := w.plain, w.plainPromise
	if w.delivery == ExactlyOnce {
		if w.cur == nil {
			if err := w.begin(); err != nil {
				return err
			}
		}
		cl, promise = w.cur.cl, w.cur.promise
	}
	w.buf = w.value.Append(w.buf[:0], r.Value)
	rec := &kgo.Record{Key: r.Key, Value: append([]byte(nil), w.buf...), Topic: r.Topic, Timestamp: r.Timestamp}
	cl.Produce(context.Background(), rec, promise)
	return nil
}

// promise makes the produce callback that keeps the first failure, naming
// the transaction (made once per transaction, not per record).
func (w *writer[T]) promise(txnID string) func(*kgo.Record, error) {
	where := ""
	if txnID != "" {
		where = " in transaction " + txnID
	}
	return func(r *kgo.Record, err error) {
		if err == nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.failed == nil {
			w.failed = fmt.Errorf("kafka sink: produce to %s%s: %w", r.Topic, where, err)
		}
	}
}

func (w *writer[T]) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// begin opens a transaction on the next free slot with a fresh client,
// whose InitProducerID bumps the id's epoch: a recommit of an older
// transaction on the slot can then never commit this one.
func (w *writer[T]) begin() error {
	inUse := map[int]bool{}
	for _, p := range w.pending {
		inUse[p.slot] = true
	}
	slot := -1
	for i := range slots {
		if s := (w.nextSlot + i) % slots; !inUse[s] {
			slot = s
			break
		}
	}
	if slot < 0 {
		return fmt.Errorf("kafka sink: %d transactions wait for checkpoints that have not completed (oldest from checkpoint %d): "+
			"checkpoints are failing; see 'weir checkpoints'", len(w.pending), w.pending[0].Checkpoint)
	}
	w.nextSlot = (slot + 1) % slots
	id := w.txnID(w.base, w.subtask, slot)
	cl, err := kgo.NewClient(append(w.opts, kgo.TransactionalID(id), kgo.TransactionTimeout(w.cfg.TransactionTimeout))...)
	if err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return fmt.Errorf("kafka sink: begin transaction %s: %w", id, err)
	}
	w.cur = &txn{slot: slot, cl: cl, promise: w.promise(id), pending: pending{ID: id}}
	return nil
}

// PreCommit flushes on the barrier. Exactly-once keeps the transaction open
// and records it; the next record opens the next one.
func (w *writer[T]) PreCommit(checkpointID int64) ([][]byte, error) {
	if w.delivery == None {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	if w.delivery == AtLeastOnce {
		if err := w.plain.Flush(ctx); err != nil {
			return nil, fmt.Errorf("kafka sink: flush: %w", err)
		}
		return nil, w.err()
	}
	if t := w.cur; t != nil {
		if err := t.cl.Flush(ctx); err != nil {
			return nil, fmt.Errorf("kafka sink: flush transaction %s: %w", t.ID, err)
		}
		if err := w.err(); err != nil {
			return nil, err
		}
		pid, epoch, err := t.cl.ProducerID(ctx)
		if err != nil {
			return nil, fmt.Errorf("kafka sink: producer id of %s: %w", t.ID, err)
		}
		t.Checkpoint, t.ProducerID, t.Epoch = checkpointID, pid, epoch
		w.pending = append(w.pending, t)
		w.cur = nil
	}
	st := sinkState{Base: w.base, Subtask: w.subtask, Subtasks: max(w.subtasks, w.subtask+1)}
	for _, t := range w.pending {
		st.Pending = append(st.Pending, t.pending)
	}
	b, err := json.Marshal(st)
	return [][]byte{b}, err
}

// Commit commits every transaction pre-committed up to checkpointID.
func (w *writer[T]) Commit(checkpointID int64) error {
	for len(w.pending) > 0 && w.pending[0].Checkpoint <= checkpointID {
		if err := w.end(w.pending[0], kgo.TryCommit); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	return nil
}

func (w *writer[T]) end(t *txn, how kgo.TransactionEndTry) error {
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	err := t.cl.EndTransaction(ctx, how)
	t.cl.Close()
	if err != nil {
		verb := "commit"
		if how == kgo.TryAbort {
			verb = "abort"
		}
		return fmt.Errorf("kafka sink: %s transaction %s: %w", verb, t.ID, err)
	}
	return nil
}

// Finish flushes: the input ended. Exactly-once leaves the open
// transaction to the final checkpoint, which pre-commits it on its barrier
// and commits it on its completion, as any other: committed here, it could
// not be taken back were the job to restore from an earlier checkpoint.
// Without a final checkpoint (tests driving a writer alone), Finish
// commits everything.
func (w *writer[T]) Finish() error {
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	if w.delivery != ExactlyOnce {
		if err := w.plain.Flush(ctx); err != nil {
			return fmt.Errorf("kafka sink: flush: %w", err)
		}
		return w.err()
	}
	if w.cur != nil {
		if err := w.cur.cl.Flush(ctx); err != nil {
			return fmt.Errorf("kafka sink: flush transaction %s: %w", w.cur.ID, err)
		}
		if err := w.err(); err != nil {
			return err
		}
		if w.final {
			return nil
		}
		w.pending = append(w.pending, w.cur)
		w.cur = nil
	}
	if w.final {
		return nil
	}
	for len(w.pending) > 0 {
		if err := w.end(w.pending[0], kgo.TryCommit); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	return nil
}

// Close aborts the open transaction, whose records no checkpoint covers,
// so read_committed consumers need not wait for its timeout. Pre-committed
// transactions stay open: a restore from their checkpoint commits them.
func (w *writer[T]) Close() error {
	if w.cur != nil {
		if err := w.end(w.cur, kgo.TryAbort); err != nil {
			w.logger.Warn("kafka sink: abort on close failed; the transaction times out instead", "err", err)
		}
		w.cur = nil
	}
	for _, t := range w.pending {
		t.cl.Close()
	}
	w.pending = nil
	if w.plain != nil {
		w.plain.Close()
	}
	w.admin.Close()
	return nil
}
