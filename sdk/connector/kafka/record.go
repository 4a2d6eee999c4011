package kafka

import (
	"fmt"
	"time"

	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/sdk"
)

// Record is a Kafka record whose value is decoded as T. A Source emits them
// with every field set; a Sink writes Key, Value and Timestamp to Topic, or
// to its configured topic when Topic is empty. Partition and Offset are
// ignored by the sink: the producer partitions by key.
type Record[T any] struct {
	Key       []byte
	Value     T
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
}

// Codec is the codec of Record[T] streams and state that set none
// (sdk.CodecProvider): a RecordCodec with T's codec, sdk.CodecFor[T]. So a
// Map or Filter to or over Records needs no sdk.WithCodec; a Source's stream
// has a RecordCodec with the value codec it was given.
func (Record[T]) Codec() sdk.Codec[Record[T]] { return RecordCodec[T]{Value: sdk.CodecFor[T]()} }

// RecordCodec encodes a Record for exchanges and state: the metadata, then
// the value through Value's codec.
type RecordCodec[T any] struct{ Value sdk.Codec[T] }

// CheckCodec checks the value's codec (see sdk.CheckCodec).
func (c RecordCodec[T]) CheckCodec() error {
	if c.Value == nil {
		return fmt.Errorf("kafka: RecordCodec[%T] has no value codec", *new(T))
	}
	return sdk.CheckCodec(c.Value)
}

func (c RecordCodec[T]) Append(dst []byte, r Record[T]) []byte {
	dst = uvarintframe.AppendString(uvarintframe.AppendBytes(dst, r.Key), r.Topic)
	ts := int64(0)
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixMilli()
	}
	// One number at a time: AppendVarints' loop is measurably slower on
	// this per-record path.
	dst = uvarintframe.AppendVarint(dst, int64(r.Partition))
	dst = uvarintframe.AppendVarint(dst, r.Offset)
	dst = uvarintframe.AppendVarint(dst, ts)
	return c.Value.Append(dst, r.Value)
}

func (c RecordCodec[T]) Decode(b []byte) (Record[T], error) {
	var r Record[T]
	rd := uvarintframe.NewReader(b)
	// Copied: the record outlives b. An empty key is no key.
	r.Key = append([]byte(nil), rd.Frame()...)
	r.Topic = string(rd.Frame())
	var v [3]int64 // partition, offset, timestamp
	rd.Varints(v[:])
	rest := rd.Rest()
	if err := rd.Err(); err != nil {
		return r, fmt.Errorf("%w: kafka record: %v", sdk.ErrDecode, err)
	}
	r.Partition, r.Offset = int32(v[0]), v[1]
	if v[2] != 0 {
		r.Timestamp = time.UnixMilli(v[2])
	}
	var err error
	r.Value, err = c.Value.Decode(rest)
	return r, err
}
