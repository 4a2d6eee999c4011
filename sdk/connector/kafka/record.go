package kafka

import (
	"encoding/binary"
	"fmt"
	"time"

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
	dst = binary.AppendUvarint(dst, uint64(len(r.Key)))
	dst = append(dst, r.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = binary.AppendVarint(dst, int64(r.Partition))
	dst = binary.AppendVarint(dst, r.Offset)
	ts := int64(0)
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixMilli()
	}
	dst = binary.AppendVarint(dst, ts)
	return c.Value.Append(dst, r.Value)
}

func (c RecordCodec[T]) Decode(b []byte) (Record[T], error) {
	var r Record[T]
	d := decoder{b: b}
	r.Key = d.bytes()
	r.Topic = string(d.bytes())
	r.Partition = int32(d.varint())
	r.Offset = d.varint()
	if ts := d.varint(); ts != 0 {
		r.Timestamp = time.UnixMilli(ts)
	}
	if d.err != nil {
		return r, fmt.Errorf("%w: kafka record: %v", sdk.ErrDecode, d.err)
	}
	if len(r.Key) == 0 {
		r.Key = nil
	}
	var err error
	r.Value, err = c.Value.Decode(d.b)
	return r, err
}

// decoder reads the varint framing of records and split state; the first
// error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = fmt.Errorf("truncated or overlong varint")
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = fmt.Errorf("truncated or overlong varint")
		return 0
	}
	d.b = d.b[k:]
	return v
}

// bytes returns a copy: callers keep it past the buffer's life.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}
