package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/sdk"
)

// requestTimeout bounds one metadata or offsets request.
const requestTimeout = 30 * time.Second

// idleWait is how long Poll asks to wait when nothing is buffered: the
// client keeps fetching in the background, so this only bounds latency.
const idleWait = time.Millisecond

// pollRecords bounds the records one Poll emits.
const pollRecords = 1024

// Source reads cfg.Topics, decoding values with value. Partition p of topic
// t is read by subtask (hash(t)+p) mod parallelism, so partitions spread
// evenly and every subtask can tell which partitions are its own, also after
// a restore at another parallelism (each reads every subtask's offsets from
// the checkpoint and keeps its own).
func Source[T any](p *sdk.Pipeline, cfg SourceConfig, value sdk.Codec[T], opts ...sdk.Option) sdk.Stream[Record[T]] {
	return SourceWithEventTime(p, cfg, value, kafkaTime[T], opts...)
}

func kafkaTime[T any](r Record[T]) int64 { return r.Timestamp.UnixMilli() }

// SourceWithEventTime is Source with the records' event time (unix ms) read
// by eventTime, e.g. from a field of the value, instead of the Kafka
// timestamp: per-partition watermarks (cfg.Watermarks) follow it, and the
// stream carries it for windows.
func SourceWithEventTime[T any](p *sdk.Pipeline, cfg SourceConfig, value sdk.Codec[T], eventTime func(Record[T]) int64, opts ...sdk.Option) sdk.Stream[Record[T]] {
	if err := cfg.Validate(); err != nil {
		p.Fail(err)
	}
	cfg = cfg.withDefaults()
	opts = append([]sdk.Option{sdk.WithName("KafkaSource"), sdk.WithCodec[Record[T]](RecordCodec[T]{Value: value})}, opts...)
	s := sdk.NewSource(p, "KafkaSource", func(t sdk.TaskInfo) (sdk.SourceReader[Record[T]], error) {
		r, err := openReader(t, cfg, value)
		if err == nil {
			r.eventTime = eventTime
		}
		if err != nil || r.wm == nil {
			return r, err
		}
		return watermarked[T]{r}, nil
	}, opts...)
	if cfg.Watermarks == nil {
		return s
	}
	return sdk.WithTimestamps(s, eventTime)
}

// watermarked is a reader that reports its partitions' watermarks.
type watermarked[T any] struct{ *reader[T] }

func (w watermarked[T]) Watermark() (int64, bool) { return w.wm.Watermark(time.Now()) }

// topicPartition names a partition.
type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

// topicGroup is one topic's partitions, as requests list them.
type topicGroup struct {
	topic      string
	partitions []int32
}

// byTopic groups partitions by topic, in order of first appearance.
func byTopic(tps []topicPartition) []topicGroup {
	var gs []topicGroup
	at := map[string]int{}
	for _, tp := range tps {
		i, ok := at[tp.topic]
		if !ok {
			i = len(gs)
			at[tp.topic] = i
			gs = append(gs, topicGroup{topic: tp.topic})
		}
		gs[i].partitions = append(gs[i].partitions, tp.partition)
	}
	return gs
}

// consume starts fetching partitions at their positions.
func (r *reader[T]) consume(tps []topicPartition) {
	assign := map[string]map[int32]kgo.Offset{}
	for _, g := range byTopic(tps) {
		assign[g.topic] = map[int32]kgo.Offset{}
		for _, p := range g.partitions {
			assign[g.topic][p] = kgo.NewOffset().At(r.pos[topicPartition{g.topic, p}].next)
		}
	}
	r.cl.AddConsumePartitions(assign)
}

// owner is the subtask of n that reads tp.
func owner(tp topicPartition, n int) int {
	h := fnv.New32a()
	h.Write([]byte(tp.topic))
	return int((uint64(h.Sum32()) + uint64(tp.partition)) % uint64(n))
}

// position is a partition's progress.
type position struct {
	next int64 // offset of the next record to emit
	// last is the event time of the last record emitted; hw the partition's
	// high watermark at the last fetch. They give the lag.
	last time.Time
	hw   int64
}

type reader[T any] struct {
	cfg      SourceConfig
	value    sdk.Codec[T]
	subtask  int
	parts    int
	logger   *slog.Logger
	cl       *kgo.Client
	pos      map[topicPartition]*position
	nextScan time.Time
	skipped  int64
	wm       *sdk.SplitWatermarks // nil without SourceConfig.Watermarks
	// eventTime reads a record's event time for the watermarks.
	eventTime func(Record[T]) int64
}

func openReader[T any](t sdk.TaskInfo, cfg SourceConfig, value sdk.Codec[T]) (*reader[T], error) {
	auth, err := cfg.Auth.options()
	if err != nil {
		return nil, err
	}
	cfg.ClientOptions = append(auth, cfg.ClientOptions...)
	r := &reader[T]{cfg: cfg, value: value, subtask: t.Subtask(), parts: t.Parallelism(),
		logger: t.Logger(), pos: map[topicPartition]*position{}}
	if cfg.Watermarks != nil {
		r.wm = sdk.NewSplitWatermarks(*cfg.Watermarks)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A checkpointed offset below the log start (retention deleted it)
		// resumes at the start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka source: %w", err)
	}
	r.cl = cl
	items, restored := t.RestoredAll()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := r.start(ctx, items, restored); err != nil {
		cl.Close()
		return nil, err
	}
	return r, nil
}

// start takes this subtask's partitions: from the checkpoint's offsets when
// restored, else from StartAt; partitions the checkpoint does not know were
// created since, and are read from the earliest offset.
func (r *reader[T]) start(ctx context.Context, items [][]byte, restored bool) error {
	for _, it := range items {
		sp, err := decodeSplit(it)
		if err != nil {
			return err
		}
		if owner(sp.tp, r.parts) != r.subtask {
			continue
		}
		r.pos[sp.tp] = &position{next: sp.next, hw: -1}
		if r.wm != nil && sp.hasWM {
			// The partition's watermark comes with it, whichever subtask
			// read it before.
			r.wm.Restore(sp.tp.String(), sp.wm, time.Now())
		} else {
			r.track([]topicPartition{sp.tp})
		}
	}
	all, err := r.partitions(ctx)
	if err != nil {
		return err
	}
	fresh := r.unread(all)
	startAt := r.cfg.StartAt
	if restored {
		startAt = Earliest()
	}
	if err := r.add(ctx, fresh, startAt); err != nil {
		return err
	}
	mine := make([]topicPartition, 0, len(r.pos))
	for tp := range r.pos {
		mine = append(mine, tp)
	}
	r.consume(mine)
	r.learnEnds(ctx, mine)
	r.logger.Info("kafka source started", "partitions", len(r.pos), "restored", restored, "start", startAt.String())
	r.nextScan = time.Now().Add(r.cfg.DiscoveryInterval)
	return nil
}

// unread picks this subtask's partitions among all that it does not read yet.
func (r *reader[T]) unread(all []topicPartition) []topicPartition {
	var fresh []topicPartition
	for _, tp := range all {
		if _, ok := r.pos[tp]; !ok && owner(tp, r.parts) == r.subtask {
			fresh = append(fresh, tp)
		}
	}
	return fresh
}

// partitions lists every partition of the configured topics. A topic that
// does not exist is an error: a typo should not read nothing forever.
func (r *reader[T]) partitions(ctx context.Context) ([]topicPartition, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range r.cfg.Topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	// A broker that creates topics on first use creates a missing one for
	// the reader too, as for a producer; one that does not answers
	// UNKNOWN_TOPIC_OR_PARTITION, which no retry fixes.
	req.AllowAutoTopicCreation = true
	var tps []topicPartition
	for try := 0; ; try++ {
		resp, err := req.RequestWith(ctx, r.cl)
		if err != nil {
			return nil, fmt.Errorf("kafka source: metadata of %v from %v: %w", r.cfg.Topics, r.cfg.Brokers, err)
		}
		tps = tps[:0]
		var retry error
		for _, t := range resp.Topics {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			err := kerr.ErrorForCode(t.ErrorCode)
			switch {
			case errors.Is(err, kerr.UnknownTopicOrPartition):
				return nil, sdk.Permanent(fmt.Errorf("kafka source: topic %q does not exist on %v, and the broker does not create topics on first use: create it, or fix the name", name, r.cfg.Brokers))
			case errors.Is(err, kerr.LeaderNotAvailable):
				retry = err // being created
			case err != nil:
				return nil, fmt.Errorf("kafka source: topic %q: %w", name, err)
			}
			for _, p := range t.Partitions {
				tps = append(tps, topicPartition{name, p.Partition})
			}
		}
		if retry == nil {
			break
		}
		if try == 20 {
			return nil, fmt.Errorf("kafka source: topics %v: %w", r.cfg.Topics, retry)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].topic != tps[j].topic {
			return tps[i].topic < tps[j].topic
		}
		return tps[i].partition < tps[j].partition
	})
	return tps, nil
}

// add resolves where each new partition starts, as a concrete offset, so a
// checkpoint taken before its first record still pins the position.
func (r *reader[T]) add(ctx context.Context, tps []topicPartition, at StartOffset) error {
	if len(tps) == 0 {
		return nil
	}
	offsets := map[topicPartition]int64{}
	if at.kind == startGroup {
		committed, err := r.groupOffsets(ctx, at.group, tps)
		if err != nil {
			return err
		}
		var rest []topicPartition
		for _, tp := range tps {
			if o, ok := committed[tp]; ok {
				offsets[tp] = o
			} else {
				rest = append(rest, tp)
			}
		}
		tps, at = rest, Earliest()
	}
	listed, err := r.listOffsets(ctx, tps, at)
	if err != nil {
		return err
	}
	for tp, o := range listed {
		offsets[tp] = o
	}
	for tp, o := range offsets {
		r.pos[tp] = &position{next: o, hw: -1}
	}
	r.track(tps)
	return nil
}

// learnEnds asks for the end (last stable offset) of partitions whose lag
// is unknown, so that a restored or new partition's lag counts from its
// position at once instead of being unknown until its first fetch
// returns. A failure only leaves the lag unknown until then.
func (r *reader[T]) learnEnds(ctx context.Context, tps []topicPartition) {
	var unknown []topicPartition
	for _, tp := range tps {
		if p := r.pos[tp]; p != nil && p.hw < 0 {
			unknown = append(unknown, tp)
		}
	}
	ends, err := r.listOffsets(ctx, unknown, Latest())
	if err != nil {
		r.logger.Warn("kafka source: could not read the partitions' end offsets; their lag is unknown until the first fetch", "err", err)
		return
	}
	for tp, o := range ends {
		if p := r.pos[tp]; p != nil && p.hw < 0 {
			p.hw = o
		}
	}
}

// track starts the watermarks of partitions, if the source has them.
func (r *reader[T]) track(tps []topicPartition) {
	if r.wm == nil {
		return
	}
	now := time.Now()
	for _, tp := range tps {
		r.wm.Add(tp.String(), now)
	}
}

// listOffsets asks for the offset where at begins in each partition.
func (r *reader[T]) listOffsets(ctx context.Context, tps []topicPartition, at StartOffset) (map[topicPartition]int64, error) {
	if len(tps) == 0 {
		return nil, nil
	}
	ts := int64(-2) // earliest
	switch at.kind {
	case startLatest:
		ts = -1
	case startTimestamp:
		ts = at.ts.UnixMilli()
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = 1 // read_committed: latest is the last stable offset
	for _, g := range byTopic(tps) {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = g.topic
		for _, p := range g.partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, ts, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return nil, fmt.Errorf("kafka source: list offsets: %w", err)
	}
	out := map[topicPartition]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			tp := topicPartition{t.Topic, p.Partition}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("kafka source: offsets of %v: %w", tp, err)
			}
			o := p.Offset
			if o < 0 {
				// No record at or after the timestamp: start at the end.
				end, err := r.listOffsets(ctx, []topicPartition{tp}, Latest())
				if err != nil {
					return nil, err
				}
				o = end[tp]
			}
			out[tp] = o
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			return nil, fmt.Errorf("kafka source: the broker returned no offset for %v", tp)
		}
	}
	return out, nil
}

// groupOffsets reads the offsets group committed (without joining it).
func (r *reader[T]) groupOffsets(ctx context.Context, group string, tps []topicPartition) (map[topicPartition]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	for _, g := range byTopic(tps) {
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = g.topic, g.partitions
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return nil, fmt.Errorf("kafka source: offsets of group %q: %w", group, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("kafka source: offsets of group %q: %w", group, err)
	}
	out := map[topicPartition]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("kafka source: offset of group %q on %s/%d: %w", group, t.Topic, p.Partition, err)
			}
			if p.Offset >= 0 {
				out[topicPartition{t.Topic, p.Partition}] = p.Offset
			}
		}
	}
	return out, nil
}

func (r *reader[T]) Poll(emit func(Record[T])) (sdk.Poll, error) {
	if r.cfg.DiscoveryInterval > 0 && time.Now().After(r.nextScan) {
		r.discover()
	}
	fetches := r.cl.PollRecords(nil, pollRecords)
	var ferr error
	fetches.EachError(func(topic string, partition int32, err error) {
		if ferr == nil {
			ferr = fmt.Errorf("kafka source: fetch %s/%d: %w", topic, partition, err)
		}
	})
	if ferr != nil {
		return sdk.Poll{}, ferr
	}
	n := 0
	var derr error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if derr != nil {
			return
		}
		p := r.pos[topicPartition{fp.Topic, fp.Partition}]
		if p == nil {
			return // not ours (cannot happen: we assign explicitly)
		}
		p.hw = fp.HighWatermark
		latest, seen := int64(math.MinInt64), false
		for _, rec := range fp.Records {
			if rec.Offset < p.next {
				continue // a refetch after a reset; already emitted
			}
			v, err := r.value.Decode(rec.Value)
			if err != nil {
				if !r.cfg.SkipUndecodable {
					derr = fmt.Errorf("kafka source: %s/%d offset %d: the value does not decode (set SkipUndecodable to skip such records): %w",
						rec.Topic, rec.Partition, rec.Offset, err)
					return
				}
				r.skipped++
				r.logger.Warn("kafka source: skipped a record whose value does not decode",
					"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err, "skipped", r.skipped)
				p.next = rec.Offset + 1
				continue
			}
			out := Record[T]{Key: rec.Key, Value: v, Topic: rec.Topic, Partition: rec.Partition,
				Offset: rec.Offset, Timestamp: rec.Timestamp}
			emit(out)
			p.next, p.last = rec.Offset+1, rec.Timestamp
			n++
			if r.wm != nil {
				latest, seen = max(latest, r.eventTime(out)), true
			}
		}
		if seen {
			// The batch's latest time is all a bounded-out-of-order
			// watermark needs.
			r.wm.Observe(topicPartition{fp.Topic, fp.Partition}.String(), latest, time.Now())
		}
	})
	if derr != nil {
		return sdk.Poll{}, derr
	}
	if n == 0 {
		return sdk.Poll{Wait: idleWait}, nil
	}
	return sdk.Poll{}, nil
}

// discover starts reading this subtask's partitions added since the last
// scan. A failed scan is retried at the next interval: the partitions
// already read carry on.
func (r *reader[T]) discover() {
	r.nextScan = time.Now().Add(r.cfg.DiscoveryInterval)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	all, err := r.partitions(ctx)
	fresh := r.unread(all)
	if err == nil && len(fresh) > 0 {
		if err = r.add(ctx, fresh, Earliest()); err == nil {
			r.consume(fresh)
			r.learnEnds(ctx, fresh)
			r.logger.Info("kafka source: reading new partitions", "partitions", fmt.Sprint(fresh))
		}
	}
	if err != nil {
		r.logger.Warn("kafka source: partition discovery failed; retrying later", "err", err)
	}
}

// lag reports every partition's lag, in partition order: records from the
// next offset to read up to the partition's end as last learnt (at start,
// from the restored or starting offset; then at every fetch), and time
// since the event time of the last record read. Records is -1 only when
// the end could not be learnt yet.
func (r *reader[T]) lag(now time.Time) []sdk.SourceLag {
	var out []sdk.SourceLag
	for tp, p := range r.pos {
		l := sdk.SourceLag{Topic: tp.topic, Partition: tp.partition, Records: -1}
		if p.hw >= 0 {
			l.Records = max(p.hw-p.next, 0)
		}
		if !p.last.IsZero() {
			l.Behind = now.Sub(p.last)
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// SnapshotSplits records each partition's next offset and, when the source
// has watermarks, the partition's watermark.
func (r *reader[T]) SnapshotSplits() ([][]byte, error) {
	items := make([][]byte, 0, len(r.pos))
	for tp, p := range r.pos {
		sp := split{tp: tp, next: p.next}
		if r.wm != nil {
			sp.wm, _ = r.wm.Split(tp.String())
			sp.hasWM = true
		}
		items = append(items, encodeSplit(sp))
	}
	return items, nil
}

func (r *reader[T]) Close() error {
	r.cl.Close()
	return nil
}

// split is a partition's checkpointed state: its position and, when the
// source has watermarks (hasWM), its watermark (math.MinInt64: none yet).
type split struct {
	tp    topicPartition
	next  int64
	wm    int64
	hasWM bool
}

// encodeSplit is a partition's checkpointed state: a format byte, the
// topic, the partition and the next offset, then for splitFormatWM the
// partition's watermark. A split without a watermark keeps splitFormat, so
// a job without watermarks writes what older versions read.
func encodeSplit(sp split) []byte {
	b := []byte{splitFormat}
	if sp.hasWM {
		b[0] = splitFormatWM
	}
	b = uvarintframe.AppendString(b, sp.tp.topic)
	b = uvarintframe.AppendVarints(b, int64(sp.tp.partition), sp.next)
	if sp.hasWM {
		b = uvarintframe.AppendVarints(b, sp.wm)
	}
	return b
}

const (
	splitFormat   = 1
	splitFormatWM = 2
)

var errCorruptSplit = errors.New("kafka source: corrupt partition state in checkpoint")

func decodeSplit(b []byte) (split, error) {
	if len(b) == 0 || (b[0] != splitFormat && b[0] != splitFormatWM) {
		return split{}, errCorruptSplit
	}
	sp := split{hasWM: b[0] == splitFormatWM, wm: math.MinInt64}
	r := uvarintframe.NewReader(b[1:])
	topic := r.Str()
	part := r.Varint()
	sp.next = r.Varint()
	if sp.hasWM {
		sp.wm = r.Varint()
	}
	if err := r.Done(); err != nil {
		return split{}, fmt.Errorf("%w: %w", errCorruptSplit, err)
	}
	if len(topic) == 0 || part < 0 || part > 1<<31-1 || sp.next < 0 {
		return split{}, errCorruptSplit
	}
	sp.tp = topicPartition{topic, int32(part)}
	return sp, nil
}

var _ sdk.LagReporter = (*reader[int])(nil)

// Lag implements sdk.LagReporter, for the status page and /metrics.
func (r *reader[T]) Lag() []sdk.SourceLag { return r.lag(time.Now()) }
