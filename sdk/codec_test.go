package sdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// roundTrip encodes v after a non-empty prefix (Append must keep dst) and
// decodes it back.
func roundTrip[T any](t *testing.T, c Codec[T], v T) T {
	t.Helper()
	prefix := []byte("prefix")
	b := c.Append(append([]byte(nil), prefix...), v)
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("%T.Append(%v) clobbered dst: %q", c, v, b)
	}
	enc := b[len(prefix):]
	got, err := c.Decode(enc)
	if err != nil {
		t.Fatalf("%T.Decode(Append(%v)) = %v", c, v, err)
	}
	// Decode must not retain its input.
	for i := range enc {
		enc[i] ^= 0xff
	}
	return got
}

func checkRoundTrips[T comparable](t *testing.T, c Codec[T], vs ...T) {
	t.Helper()
	for _, v := range vs {
		if got := roundTrip(t, c, v); got != v {
			t.Errorf("%T round trip of %v = %v", c, v, got)
		}
	}
}

func TestCodecRoundTrips(t *testing.T) {
	t.Run("string", func(t *testing.T) {
		checkRoundTrips(t, Codec[string](StringCodec{}), "", "a", "héllo, wörld", "\x00\xff\n", strings.Repeat("x", 100_000))
	})
	t.Run("bytes", func(t *testing.T) {
		c := BytesCodec{}
		for _, v := range [][]byte{nil, {}, {0}, []byte("abc"), bytes.Repeat([]byte{0xfe}, 70_000)} {
			if got := roundTrip(t, Codec[[]byte](c), v); !bytes.Equal(got, v) {
				t.Errorf("round trip of %q = %q", v, got)
			}
		}
	})
	t.Run("varint", func(t *testing.T) {
		checkRoundTrips(t, Codec[int](VarintCodec[int]{}), 0, 1, -1, 63, -64, 64, math.MaxInt, math.MinInt)
		checkRoundTrips(t, Codec[int8](VarintCodec[int8]{}), 0, 1, -1, math.MaxInt8, math.MinInt8)
		checkRoundTrips(t, Codec[int16](VarintCodec[int16]{}), 0, -300, math.MaxInt16, math.MinInt16)
		checkRoundTrips(t, Codec[int32](VarintCodec[int32]{}), 0, -1, math.MaxInt32, math.MinInt32)
		checkRoundTrips(t, Codec[int64](VarintCodec[int64]{}), 0, -1, 1<<40, math.MaxInt64, math.MinInt64)
		type level int32
		checkRoundTrips(t, Codec[level](VarintCodec[level]{}), -7, 7)
	})
	t.Run("uvarint", func(t *testing.T) {
		checkRoundTrips(t, Codec[uint](UvarintCodec[uint]{}), 0, 1, 127, 128, math.MaxUint)
		checkRoundTrips(t, Codec[uint8](UvarintCodec[uint8]{}), 0, 127, 128, math.MaxUint8)
		checkRoundTrips(t, Codec[uint16](UvarintCodec[uint16]{}), 0, math.MaxUint16)
		checkRoundTrips(t, Codec[uint32](UvarintCodec[uint32]{}), 0, math.MaxUint32)
		checkRoundTrips(t, Codec[uint64](UvarintCodec[uint64]{}), 0, 1<<63, math.MaxUint64)
	})
	t.Run("float64", func(t *testing.T) {
		c := Float64Codec{}
		for _, v := range []float64{0, math.Copysign(0, -1), 1.5, -2.25, math.MaxFloat64, math.SmallestNonzeroFloat64,
			math.Inf(1), math.Inf(-1), math.NaN(), math.Float64frombits(0x7ff8_0000_0000_0001)} {
			// Compare bits: -0 and NaN payloads must survive too.
			if got := roundTrip(t, Codec[float64](c), v); math.Float64bits(got) != math.Float64bits(v) {
				t.Errorf("round trip of %v (%#x) = %v (%#x)", v, math.Float64bits(v), got, math.Float64bits(got))
			}
		}
	})
	t.Run("bool", func(t *testing.T) {
		checkRoundTrips(t, Codec[bool](BoolCodec{}), false, true)
	})
	t.Run("json", func(t *testing.T) {
		type point struct {
			X, Y  int
			Label string
			Tags  []string
		}
		c := JSONCodec[point]{}
		v := point{X: -3, Y: 1 << 40, Label: "π", Tags: []string{"a", ""}}
		if got := roundTrip(t, Codec[point](c), v); !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %+v = %+v", v, got)
		}
	})
	t.Run("proto", func(t *testing.T) {
		c := ProtoCodec[*weirv1.Edge]{New: func() *weirv1.Edge { return new(weirv1.Edge) }}
		for _, v := range []*weirv1.Edge{
			{},
			{Source: 1, Target: 2, Partitioning: weirv1.Partitioning_PARTITIONING_HASH},
		} {
			if got := roundTrip(t, Codec[*weirv1.Edge](c), v); !proto.Equal(got, v) {
				t.Errorf("round trip of %v = %v", v, got)
			}
		}
	})
	t.Run("kv", func(t *testing.T) {
		checkRoundTrips(t, Codec[KV[string, int64]](KVCodec[string, int64]{K: StringCodec{}, V: VarintCodec[int64]{}}),
			KV[string, int64]{}, KV[string, int64]{"word", 42}, KV[string, int64]{strings.Repeat("k", 1000), math.MinInt64})
		checkRoundTrips(t, Codec[KV[int64, string]](KVCodec[int64, string]{K: VarintCodec[int64]{}, V: StringCodec{}}),
			KV[int64, string]{-1, ""}, KV[int64, string]{1 << 50, "v\x00v"})
		nested := KVCodec[KV[string, bool], float64]{K: KVCodec[string, bool]{K: StringCodec{}, V: BoolCodec{}}, V: Float64Codec{}}
		checkRoundTrips(t, Codec[KV[KV[string, bool], float64]](nested),
			KV[KV[string, bool], float64]{KV[string, bool]{"in", true}, 0.5})
	})
}

// KVCodec reserves the key's length in place: the reservation must be
// relative to the end of dst, and survive the key's Append growing dst.
func TestKVCodecAppendsAfterExistingBytes(t *testing.T) {
	c := KVCodec[string, string]{K: StringCodec{}, V: StringCodec{}}
	for _, capacity := range []int{3, 8, 1 << 10} {
		dst := append(make([]byte, 0, capacity), 'a', 'b', 'c')
		kv := KV[string, string]{Key: strings.Repeat("K", 300), Value: "value"}
		b := c.Append(dst, kv)
		if string(b[:3]) != "abc" {
			t.Fatalf("cap %d: prefix clobbered: %q", capacity, b[:3])
		}
		if n := binary.LittleEndian.Uint32(b[3:]); n != 300 {
			t.Fatalf("cap %d: key length %d, want 300", capacity, n)
		}
		got, err := c.Decode(b[3:])
		if err != nil || got != kv {
			t.Fatalf("cap %d: Decode = %v, %v", capacity, got, err)
		}
	}
}

func TestDecodeErrorsWrapErrDecode(t *testing.T) {
	kvIntStr := KVCodec[int64, string]{K: VarintCodec[int64]{}, V: StringCodec{}}
	kvStrBool := KVCodec[string, bool]{K: StringCodec{}, V: BoolCodec{}}
	overlong := bytes.Repeat([]byte{0xff}, 10)
	overlong = append(overlong, 0x01)
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
	}{
		{"varint empty", decodeErr(VarintCodec[int64]{}), nil},
		{"varint truncated", decodeErr(VarintCodec[int64]{}), []byte{0x80}},
		{"varint trailing byte", decodeErr(VarintCodec[int64]{}), []byte{0x02, 0x00}},
		{"varint overflow", decodeErr(VarintCodec[int64]{}), overlong},
		{"varint int8 out of range", decodeErr(VarintCodec[int8]{}), binary.AppendVarint(nil, 300)},
		{"varint int32 out of range", decodeErr(VarintCodec[int32]{}), binary.AppendVarint(nil, math.MinInt32-1)},
		{"uvarint empty", decodeErr(UvarintCodec[uint64]{}), nil},
		{"uvarint truncated", decodeErr(UvarintCodec[uint64]{}), []byte{0xff, 0xff}},
		{"uvarint trailing byte", decodeErr(UvarintCodec[uint64]{}), []byte{0x01, 0x01}},
		{"uvarint overflow", decodeErr(UvarintCodec[uint64]{}), overlong},
		{"uvarint uint8 out of range", decodeErr(UvarintCodec[uint8]{}), binary.AppendUvarint(nil, 256)},
		{"uvarint uint32 out of range", decodeErr(UvarintCodec[uint32]{}), binary.AppendUvarint(nil, math.MaxUint32+1)},
		{"float64 short", decodeErr(Float64Codec{}), make([]byte, 7)},
		{"float64 long", decodeErr(Float64Codec{}), make([]byte, 9)},
		{"bool empty", decodeErr(BoolCodec{}), nil},
		{"bool two", decodeErr(BoolCodec{}), []byte{2}},
		{"bool long", decodeErr(BoolCodec{}), []byte{1, 0}},
		{"json syntax", decodeErr(JSONCodec[map[string]int]{}), []byte("{")},
		{"json type", decodeErr(JSONCodec[int]{}), []byte(`"x"`)},
		{"proto garbage", decodeErr(ProtoCodec[*weirv1.Edge]{New: func() *weirv1.Edge { return new(weirv1.Edge) }}), []byte{0xff, 0xff, 0xff}},
		{"kv short", decodeErr(kvIntStr), []byte{1, 0, 0}},
		{"kv key length past end", decodeErr(kvIntStr), []byte{5, 0, 0, 0, 2}},
		{"kv key length huge", decodeErr(kvIntStr), []byte{0xff, 0xff, 0xff, 0xff, 2}},
		{"kv bad key", decodeErr(kvIntStr), []byte{1, 0, 0, 0, 0x80, 'v'}},
		{"kv bad value", decodeErr(kvStrBool), []byte{1, 0, 0, 0, 'k', 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(tc.in)
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("Decode(%x) = %v, want an error wrapping ErrDecode", tc.in, err)
			}
		})
	}
}

func decodeErr[T any](c Codec[T]) func([]byte) error {
	return func(b []byte) error { _, err := c.Decode(b); return err }
}

// regPoint has a codec registered by TestCodecFor; no other test uses it, so
// the global registration cannot leak into them.
type regPoint struct{ X, Y int32 }

type regPointCodec struct{}

func (regPointCodec) Append(dst []byte, v regPoint) []byte {
	return binary.AppendVarint(binary.AppendVarint(dst, int64(v.X)), int64(v.Y))
}

func (regPointCodec) Decode(b []byte) (regPoint, error) {
	x, n := binary.Varint(b)
	if n <= 0 {
		return regPoint{}, ErrDecode
	}
	y, m := binary.Varint(b[n:])
	if m <= 0 || n+m != len(b) {
		return regPoint{}, ErrDecode
	}
	return regPoint{int32(x), int32(y)}, nil
}

func TestCodecFor(t *testing.T) {
	RegisterCodec[regPoint](regPointCodec{})
	type exported struct{ A int }
	type word string
	for _, tc := range []struct {
		got, want any
	}{
		{CodecFor[string](), StringCodec{}},
		{CodecFor[[]byte](), BytesCodec{}},
		{CodecFor[int](), VarintCodec[int]{}},
		{CodecFor[int32](), VarintCodec[int32]{}},
		{CodecFor[int64](), VarintCodec[int64]{}},
		{CodecFor[uint32](), UvarintCodec[uint32]{}},
		{CodecFor[uint64](), UvarintCodec[uint64]{}},
		{CodecFor[float64](), Float64Codec{}},
		{CodecFor[bool](), BoolCodec{}},
		{CodecFor[regPoint](), regPointCodec{}},
		// Everything else falls back to JSON, named types included.
		{CodecFor[exported](), JSONCodec[exported]{}},
		{CodecFor[word](), JSONCodec[word]{}},
		{CodecFor[*exported](), JSONCodec[*exported]{}},
		{CodecFor[KV[string, int]](), JSONCodec[KV[string, int]]{}},
		{CodecFor[map[string]int](), JSONCodec[map[string]int]{}},
	} {
		if reflect.TypeOf(tc.got) != reflect.TypeOf(tc.want) {
			t.Errorf("CodecFor picked %T, want %T", tc.got, tc.want)
		}
	}
	// A registered codec is what streams of the type use.
	p := NewPipeline("reg", 1)
	s := Generate(p, 3, func(i int64) regPoint { return regPoint{int32(i), -int32(i)} })
	if _, ok := s.codec.(regPointCodec); !ok {
		t.Errorf("stream of regPoint uses %T", s.codec)
	}
	if got := roundTrip(t, CodecFor[regPoint](), regPoint{-5, 9}); got != (regPoint{-5, 9}) {
		t.Errorf("registered codec round trip = %v", got)
	}
	if got := roundTrip(t, CodecFor[exported](), exported{7}); got != (exported{7}) {
		t.Errorf("JSON fallback round trip = %v", got)
	}
}

func TestWithCodec(t *testing.T) {
	t.Run("used", func(t *testing.T) {
		p := NewPipeline("c", 1)
		s := Map(Generate(p, 1, func(i int64) int64 { return i }), func(v int64) string { return "x" },
			WithCodec[string](JSONCodec[string]{}))
		if _, ok := s.codec.(JSONCodec[string]); !ok {
			t.Errorf("Map output codec %T, want the JSONCodec given", s.codec)
		}
		if p.Err() != nil {
			t.Fatal(p.Err())
		}
	})
	t.Run("type mismatch", func(t *testing.T) {
		p := NewPipeline("c", 1)
		s := Map(Generate(p, 1, func(i int64) int64 { return i }), func(v int64) int64 { return v },
			WithName("Twice"), WithCodec[string](StringCodec{}))
		var b bag[int64]
		b.sinkTo(s)
		err := p.Err()
		if err == nil || !strings.Contains(err.Error(), "WithCodec") || !strings.Contains(err.Error(), `"Twice"`) ||
			!strings.Contains(err.Error(), "int64") {
			t.Fatalf("Err() = %v, want the WithCodec mismatch of Twice", err)
		}
		if _, err2 := p.compile(); err2 != err {
			t.Fatalf("compile() = %v, want the construction error %v", err2, err)
		}
	})
	t.Run("aggregate output", func(t *testing.T) {
		p := NewPipeline("c", 1)
		k := KeyBy(Generate(p, 1, func(i int64) string { return "k" }), func(s string) string { return s })
		s := Aggregate(k, Count[string]())
		want := reflect.TypeOf(KVCodec[string, int64]{})
		if reflect.TypeOf(s.codec) != want {
			t.Errorf("Aggregate output codec %T, want %v", s.codec, want)
		}
		custom := JSONCodec[KV[string, int64]]{}
		s = Aggregate(k, Count[string](), WithCodec[KV[string, int64]](custom))
		if s.codec != Codec[KV[string, int64]](custom) {
			t.Errorf("WithCodec on Aggregate ignored: %T", s.codec)
		}
	})
}

// The fuzz targets check the decoders never panic, and that whatever they
// accept re-encodes to bytes that decode to the same value (a canonical
// form: the accepted input itself may be non-canonical, such as JSON with
// spaces; the varint codecs accept only the shortest form).

func FuzzVarintCodec(f *testing.F) {
	for _, v := range []int64{0, 1, -1, 300, math.MaxInt64, math.MinInt64} {
		f.Add(binary.AppendVarint(nil, v))
	}
	f.Add([]byte{0x80, 0x00})
	f.Add([]byte{0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, Codec[int64](VarintCodec[int64]{}), b, eqComparable[int64])
		checkStable(t, Codec[int32](VarintCodec[int32]{}), b, eqComparable[int32])
		checkStable(t, Codec[int8](VarintCodec[int8]{}), b, eqComparable[int8])
		if v, err := (VarintCodec[int64]{}).Decode(b); err == nil {
			// Narrower types accept exactly the values that fit.
			_, err32 := VarintCodec[int32]{}.Decode(b)
			if fits := v == int64(int32(v)); fits != (err32 == nil) {
				t.Fatalf("int32 decode of %d: err %v", v, err32)
			}
		}
	})
}

func FuzzUvarintCodec(f *testing.F) {
	for _, v := range []uint64{0, 1, 127, 128, 1 << 32, math.MaxUint64} {
		f.Add(binary.AppendUvarint(nil, v))
	}
	f.Add([]byte{0xff, 0x80, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, Codec[uint64](UvarintCodec[uint64]{}), b, eqComparable[uint64])
		checkStable(t, Codec[uint32](UvarintCodec[uint32]{}), b, eqComparable[uint32])
		checkStable(t, Codec[uint8](UvarintCodec[uint8]{}), b, eqComparable[uint8])
		if v, err := (UvarintCodec[uint64]{}).Decode(b); err == nil {
			_, err32 := UvarintCodec[uint32]{}.Decode(b)
			if fits := v == uint64(uint32(v)); fits != (err32 == nil) {
				t.Fatalf("uint32 decode of %d: err %v", v, err32)
			}
		}
	})
}

func FuzzFloat64Codec(f *testing.F) {
	for _, v := range []float64{0, -1.5, math.Inf(1), math.NaN()} {
		f.Add(Float64Codec{}.Append(nil, v))
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Float64Codec{}.Decode(b)
		if (err == nil) != (len(b) == 8) {
			t.Fatalf("Decode(%x) = %v, %v", b, v, err)
		}
		// Eight bytes are a float64 bit for bit, NaN payloads included.
		if err == nil && !bytes.Equal(Float64Codec{}.Append(nil, v), b) {
			t.Fatalf("re-encoding %x gives %x", b, Float64Codec{}.Append(nil, v))
		}
		checkStable(t, Codec[float64](Float64Codec{}), b, func(a, b float64) bool {
			return math.Float64bits(a) == math.Float64bits(b)
		})
	})
}

func FuzzBoolCodec(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := BoolCodec{}.Decode(b)
		valid := len(b) == 1 && b[0] <= 1
		if (err == nil) != valid {
			t.Fatalf("Decode(%x) = %v, %v", b, v, err)
		}
		if err == nil && !bytes.Equal(BoolCodec{}.Append(nil, v), b) {
			t.Fatalf("Decode(%x) = %v does not re-encode to its input", b, v)
		}
		checkStable(t, Codec[bool](BoolCodec{}), b, eqComparable[bool])
	})
}

func FuzzKVCodec(f *testing.F) {
	sk := KVCodec[string, int64]{K: StringCodec{}, V: VarintCodec[int64]{}}
	f.Add(sk.Append(nil, KV[string, int64]{"word", 3}))
	f.Add(sk.Append(nil, KV[string, int64]{}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{4, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 0x80, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, Codec[KV[string, int64]](sk), b, eqComparable[KV[string, int64]])
		checkStable(t, Codec[KV[int64, bool]](KVCodec[int64, bool]{K: VarintCodec[int64]{}, V: BoolCodec{}}), b, eqComparable[KV[int64, bool]])
		nested := KVCodec[KV[string, string], string]{K: KVCodec[string, string]{K: StringCodec{}, V: StringCodec{}}, V: StringCodec{}}
		checkStable(t, Codec[KV[KV[string, string], string]](nested), b, eqComparable[KV[KV[string, string], string]])
		// With string keys and values every accepted input is canonical:
		// the 4-byte key length and both strings are taken as they are.
		strs := KVCodec[string, string]{K: StringCodec{}, V: StringCodec{}}
		if v, err := strs.Decode(b); err == nil && !bytes.Equal(strs.Append(nil, v), b) {
			t.Fatalf("Decode(%x) = %v does not re-encode to its input", b, v)
		}
	})
}

func eqComparable[T comparable](a, b T) bool { return a == b }

// checkStable decodes b; if that succeeds, encoding the value and decoding
// again must give an equal value and the same encoding.
func checkStable[T any](t *testing.T, c Codec[T], b []byte, equal func(a, b T) bool) {
	t.Helper()
	in := bytes.Clone(b)
	v, err := c.Decode(in)
	if !bytes.Equal(in, b) {
		t.Fatalf("%T.Decode modified its input", c)
	}
	if err != nil {
		if !errors.Is(err, ErrDecode) {
			t.Fatalf("%T.Decode(%x) = %v, not wrapping ErrDecode", c, b, err)
		}
		return
	}
	enc := c.Append(nil, v)
	v2, err := c.Decode(enc)
	if err != nil {
		t.Fatalf("%T: decoded %v from %x, but its encoding %x does not decode: %v", c, v, b, enc, err)
	}
	if !equal(v, v2) {
		t.Fatalf("%T: decoded %v from %x, re-encoded %x decodes to %v", c, v, b, enc, v2)
	}
	if enc2 := c.Append(nil, v2); !bytes.Equal(enc, enc2) {
		t.Fatalf("%T: encoding of %v is not stable: %x then %x", c, v, enc, enc2)
	}
}
