package exchange

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// codecName is the gRPC content-subtype of DataService streams opened by
// this package ("application/grpc+weirexchange"). Registering a codec under
// a new name changes nothing for other services in the process.
const codecName = "weirexchange"

func init() { encoding.RegisterCodecV2(codec{}) }

// codec is gRPC's protobuf codec with bufferPool instead of the process-wide
// default pool, which grpc's own codec hardwires (see pool.go for why that
// matters for ~32 KiB batches).
type codec struct{}

func (codec) Name() string { return codecName }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("exchange: cannot marshal %T", v)
	}
	size := proto.Size(m)
	// UseCachedSize is safe: Size just ran and nothing mutates m meanwhile.
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := bufferPool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		bufferPool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, bufferPool)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("exchange: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(bufferPool)
	defer buf.Free()
	// proto.Unmarshal copies bytes fields, so Frame.Data never aliases buf.
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}
