package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-run/weir/sdk"
)

// StartOffset is where a source starts reading partitions that its
// checkpoint does not know. Partitions found after the job started are
// always read from the earliest offset, so no record is skipped.
type StartOffset struct {
	kind  startKind
	ts    time.Time
	group string
}

type startKind int

const (
	startEarliest startKind = iota
	startLatest
	startTimestamp
	startGroup
)

// Earliest starts at each partition's first retained record (the default).
func Earliest() StartOffset { return StartOffset{kind: startEarliest} }

// Latest starts after the records present when the job starts.
func Latest() StartOffset { return StartOffset{kind: startLatest} }

// AtTimestamp starts at the first record whose timestamp is at or after t.
func AtTimestamp(t time.Time) StartOffset { return StartOffset{kind: startTimestamp, ts: t} }

// GroupOffsets starts at the offsets consumer group committed, and at the
// earliest offset of partitions it committed nothing for. The source never
// joins the group.
func GroupOffsets(group string) StartOffset { return StartOffset{kind: startGroup, group: group} }

func (s StartOffset) String() string {
	switch s.kind {
	case startLatest:
		return "latest"
	case startTimestamp:
		return "timestamp " + s.ts.UTC().Format(time.RFC3339Nano)
	case startGroup:
		return "offsets of group " + s.group
	}
	return "earliest"
}

// SourceConfig configures a Source.
type SourceConfig struct {
	Brokers []string
	Topics  []string
	// StartAt applies when the job starts without a checkpoint.
	StartAt StartOffset
	// DiscoveryInterval is how often the source looks for new partitions
	// (default 10s; negative disables).
	DiscoveryInterval time.Duration
	// SkipUndecodable logs and skips records whose value the codec refuses,
	// instead of failing the job (which then restarts from its checkpoint and
	// fails on the same record until a new job version handles it).
	SkipUndecodable bool
	// Watermarks, when set, makes the source emit event-time watermarks
	// from the records' Kafka timestamps, one per partition under this
	// strategy; the source's watermark is the minimum over its partitions
	// that are not idle. Each partition's watermark is in checkpoints with
	// its offset: after a restore, at any parallelism, the subtask reading
	// the partition starts from it.
	Watermarks *sdk.WatermarkStrategy
	// Auth authenticates to the brokers with a job secret
	// (SASLFromSecret).
	Auth Credentials
	// ClientOptions are extra franz-go options (TLS, SASL, ...).
	ClientOptions []kgo.Opt
}

// DefaultDiscoveryInterval is SourceConfig.DiscoveryInterval's default.
const DefaultDiscoveryInterval = 10 * time.Second

func (c SourceConfig) withDefaults() SourceConfig {
	if c.DiscoveryInterval == 0 {
		c.DiscoveryInterval = DefaultDiscoveryInterval
	}
	return c
}

// Validate reports every problem at once.
func (c SourceConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka source: no brokers"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("kafka source: no topics"))
	}
	for _, t := range c.Topics {
		if t == "" {
			errs = append(errs, errors.New("kafka source: empty topic name"))
		}
	}
	if c.StartAt.kind == startGroup && c.StartAt.group == "" {
		errs = append(errs, errors.New("kafka source: GroupOffsets needs a group name"))
	}
	return errors.Join(errs...)
}

// Delivery is the guarantee a Sink gives.
type Delivery int

const (
	// DeliveryDefault is ExactlyOnce when the job takes checkpoints, else
	// AtLeastOnce.
	DeliveryDefault Delivery = iota
	// None writes without waiting: records in flight at a failure are lost.
	None
	// AtLeastOnce flushes on every checkpoint: after a failure the records
	// written since the restored checkpoint are written again.
	AtLeastOnce
	// ExactlyOnce writes in transactions committed with checkpoints:
	// read_committed consumers see every record once. It needs checkpoints.
	ExactlyOnce
)

func (d Delivery) String() string {
	switch d {
	case None:
		return "none"
	case AtLeastOnce:
		return "at-least-once"
	case ExactlyOnce:
		return "exactly-once"
	}
	return "default"
}

// ParseDelivery reads "none", "at-least-once" or "exactly-once" (flags).
func ParseDelivery(s string) (Delivery, error) {
	for _, d := range []Delivery{None, AtLeastOnce, ExactlyOnce, DeliveryDefault} {
		if d.String() == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("kafka: unknown delivery %q (want none, at-least-once or exactly-once)", s)
}

// Compression is a produce batch compression codec.
type Compression string

const (
	NoCompression Compression = "none"
	Gzip          Compression = "gzip"
	Snappy        Compression = "snappy"
	LZ4           Compression = "lz4"
	Zstd          Compression = "zstd"
)

func (c Compression) codec() (kgo.CompressionCodec, error) {
	switch c {
	case "", NoCompression:
		return kgo.NoCompression(), nil
	case Gzip:
		return kgo.GzipCompression(), nil
	case Snappy:
		return kgo.SnappyCompression(), nil
	case LZ4:
		return kgo.Lz4Compression(), nil
	case Zstd:
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kafka sink: unknown compression %q (want none, gzip, snappy, lz4 or zstd)", string(c))
}

// SinkConfig configures a Sink.
type SinkConfig struct {
	Brokers []string
	// Topic receives records whose Topic is empty.
	Topic    string
	Delivery Delivery
	// TransactionTimeout is how long the broker keeps an exactly-once
	// transaction open before aborting it (default 15m, Kafka's default cap
	// transaction.max.timeout.ms). It must exceed the checkpoint interval
	// plus the checkpoint timeout plus the restart delay; the coordinator
	// refuses a job where it does not.
	TransactionTimeout time.Duration
	// TransactionalIDPrefix starts every transactional id (default "weir").
	// Two jobs writing exactly-once to one cluster need different job ids
	// or prefixes; weir's job ids are unique, so the default is safe.
	TransactionalIDPrefix string
	Compression           Compression
	// Partitions and ReplicationFactor are those of Topic when the sink
	// creates it (0: the broker's defaults). The sink creates Topic when
	// it opens, if it does not exist; an existing topic is used as it is.
	Partitions        int32
	ReplicationFactor int16
	// Auth authenticates to the brokers with a job secret
	// (SASLFromSecret).
	Auth Credentials
	// ClientOptions are extra franz-go options (TLS, SASL, ...).
	ClientOptions []kgo.Opt
}

// DefaultTransactionTimeout is SinkConfig.TransactionTimeout's default.
const DefaultTransactionTimeout = 15 * time.Minute

func (c SinkConfig) withDefaults() SinkConfig {
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = DefaultTransactionTimeout
	}
	if c.TransactionalIDPrefix == "" {
		c.TransactionalIDPrefix = "weir"
	}
	return c
}

// Validate reports every problem at once.
func (c SinkConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka sink: no brokers"))
	}
	if c.TransactionTimeout < 0 {
		errs = append(errs, fmt.Errorf("kafka sink: negative transaction timeout %v", c.TransactionTimeout))
	}
	if c.Delivery < DeliveryDefault || c.Delivery > ExactlyOnce {
		errs = append(errs, fmt.Errorf("kafka sink: unknown delivery %d", int(c.Delivery)))
	}
	if _, err := c.Compression.codec(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
