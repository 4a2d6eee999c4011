package sdk

import (
	"encoding"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// Codec turns values of T into bytes and back. Records cross process
// boundaries through their stream's codec, and keyed state is stored through
// it, so it is on the hot path.
//
// Append appends the encoding of v to dst and returns the extended slice; it
// must not retain dst. Decode reads a value from exactly the bytes given; it
// must not retain b (copy what outlives the call).
//
// The runtime moves records with it too, so the interface is the runtime's.
type Codec[T any] = runtime.Codec[T]

// ErrDecode wraps every decoding failure of the built-in codecs and of the
// runtime's record framing.
var ErrDecode = runtime.ErrDecode

// StringCodec encodes strings as their bytes.
type StringCodec struct{}

func (StringCodec) Append(dst []byte, v string) []byte { return append(dst, v...) }
func (StringCodec) Decode(b []byte) (string, error)    { return string(b), nil }

// BytesCodec encodes byte slices as themselves.
type BytesCodec struct{}

func (BytesCodec) Append(dst []byte, v []byte) []byte { return append(dst, v...) }
func (BytesCodec) Decode(b []byte) ([]byte, error)    { return append([]byte(nil), b...), nil }

// VarintCodec encodes signed integers as zig-zag varints.
type VarintCodec[T ~int | ~int8 | ~int16 | ~int32 | ~int64] struct{}

func (VarintCodec[T]) Append(dst []byte, v T) []byte { return uvarintframe.AppendVarint(dst, int64(v)) }
func (VarintCodec[T]) Decode(b []byte) (T, error) {
	v, ok := uvarintframe.DecodeVarint(b)
	if !ok {
		return 0, fmt.Errorf("%w: bad varint (%d bytes)", ErrDecode, len(b))
	}
	if int64(T(v)) != v {
		return 0, fmt.Errorf("%w: %d overflows %T", ErrDecode, v, T(0))
	}
	return T(v), nil
}

// UvarintCodec encodes unsigned integers as varints.
type UvarintCodec[T ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64] struct{}

func (UvarintCodec[T]) Append(dst []byte, v T) []byte {
	return uvarintframe.AppendUvarint(dst, uint64(v))
}
func (UvarintCodec[T]) Decode(b []byte) (T, error) {
	v, ok := uvarintframe.DecodeUvarint(b)
	if !ok {
		return 0, fmt.Errorf("%w: bad uvarint (%d bytes)", ErrDecode, len(b))
	}
	if uint64(T(v)) != v {
		return 0, fmt.Errorf("%w: %d overflows %T", ErrDecode, v, T(0))
	}
	return T(v), nil
}

// Float64Codec encodes float64 as 8 little-endian bytes.
type Float64Codec struct{}

func (Float64Codec) Append(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}
func (Float64Codec) Decode(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: float64 needs 8 bytes, got %d", ErrDecode, len(b))
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}

// BoolCodec encodes a bool as one byte.
type BoolCodec struct{}

func (BoolCodec) Append(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}
func (BoolCodec) Decode(b []byte) (bool, error) {
	if len(b) != 1 || b[0] > 1 {
		return false, fmt.Errorf("%w: bad bool", ErrDecode)
	}
	return b[0] == 1, nil
}

// JSONCodec encodes with encoding/json. It is the fallback for types without
// a registered codec: correct for any exported-field struct, but slow;
// register a codec for types on a hot path.
type JSONCodec[T any] struct{}

func (JSONCodec[T]) Append(dst []byte, v T) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// A value json cannot encode (a channel, a func) is a programming
		// error in the job; fail the task with the reason.
		panic(fmt.Sprintf("sdk: JSONCodec cannot encode %T: %v", v, err))
	}
	return append(dst, b...)
}
func (JSONCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return v, nil
}

// ProtoCodec encodes protobuf messages. New returns an empty message.
type ProtoCodec[T proto.Message] struct{ New func() T }

func (c ProtoCodec[T]) Append(dst []byte, v T) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, v)
	if err != nil {
		panic(fmt.Sprintf("sdk: cannot encode %T: %v", v, err))
	}
	return b
}
func (c ProtoCodec[T]) Decode(b []byte) (T, error) {
	m := c.New()
	if err := proto.Unmarshal(b, m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return m, nil
}

// KV is a key with a value, the output of keyed aggregations.
type KV[K, V any] struct {
	Key   K
	Value V
}

// KVCodec encodes a KV as the key's length, the key, then the value.
type KVCodec[K, V any] struct {
	K Codec[K]
	V Codec[V]
}

func (c KVCodec[K, V]) Append(dst []byte, v KV[K, V]) []byte {
	// Reserve a fixed 4-byte length so the key is encoded once, in place.
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = c.K.Append(dst, v.Key)
	binary.LittleEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	return c.V.Append(dst, v.Value)
}

// CheckCodec checks the key's and the value's codecs (see CheckCodec).
func (c KVCodec[K, V]) CheckCodec() error {
	if err := CheckCodec(c.K); err != nil {
		return err
	}
	return CheckCodec(c.V)
}

func (c KVCodec[K, V]) Decode(b []byte) (KV[K, V], error) {
	var kv KV[K, V]
	if len(b) < 4 {
		return kv, fmt.Errorf("%w: KV too short", ErrDecode)
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n > len(b)-4 {
		return kv, fmt.Errorf("%w: KV key length %d exceeds %d bytes", ErrDecode, n, len(b)-4)
	}
	var err error
	if kv.Key, err = c.K.Decode(b[4 : 4+n]); err != nil {
		return kv, err
	}
	kv.Value, err = c.V.Decode(b[4+n:])
	return kv, err
}

var registry sync.Map // reflect.Type -> any (a Codec[T])

// RegisterCodec makes c the codec of every stream and state of type T. Call
// it from main or init, before building the pipeline. A generic type is
// registered per instantiation (RegisterCodec[lib.Pair[int]]), which works
// for a library's types too; a generic type you own can implement
// CodecProvider instead, which covers every instantiation.
func RegisterCodec[T any](c Codec[T]) {
	registry.Store(reflect.TypeFor[T](), c)
}

// CodecProvider is implemented by a type that knows its own codec, so its
// streams and state need neither RegisterCodec nor WithCodec. It suits
// generic types, whose instantiations cannot be registered ahead: the Kafka
// connector's Record[T] returns a codec built from T's. CodecFor calls Codec
// on T's zero value, so it must not depend on the receiver.
type CodecProvider[T any] interface {
	Codec() Codec[T]
}

// CodecFor returns the codec for T: a registered one, else the one T
// provides (CodecProvider), else a built-in one for strings, []byte,
// integers, float64 and bool, else JSON.
func CodecFor[T any]() Codec[T] {
	if c, ok := registry.Load(reflect.TypeFor[T]()); ok {
		return c.(Codec[T])
	}
	var c any
	switch v := any(*new(T)).(type) {
	case CodecProvider[T]:
		return v.Codec()
	case string:
		c = StringCodec{}
	case []byte:
		c = BytesCodec{}
	case int:
		c = VarintCodec[int]{}
	case int32:
		c = VarintCodec[int32]{}
	case int64:
		c = VarintCodec[int64]{}
	case uint32:
		c = UvarintCodec[uint32]{}
	case uint64:
		c = UvarintCodec[uint64]{}
	case float64:
		c = Float64Codec{}
	case bool:
		c = BoolCodec{}
	default:
		return JSONCodec[T]{}
	}
	return c.(Codec[T])
}

// CheckCodec reports why c would silently lose data or fail on every
// record: it is the JSON fallback for a type with an unexported field,
// which encoding/json drops, or with a part encoding/json cannot encode (a
// channel, a function, a complex number, a map keyed by a struct); types
// that marshal themselves, like time.Time, are fine. A codec made of
// other codecs, like KVCodec or kafka.RecordCodec, has its parts checked by
// implementing interface{ CheckCodec() error }. The pipeline checks the codec
// of every stream, key, accumulator and state, so such a job is refused when
// it is built (at submit), before it loses anything.
func CheckCodec[T any](c Codec[T]) error {
	switch c := any(c).(type) {
	case JSONCodec[T]:
		t := reflect.TypeFor[T]()
		if problem := jsonProblem(t, map[reflect.Type]bool{}); problem != "" {
			name := typeName(t)
			return fmt.Errorf("sdk: type %s has %s: "+
				"change the type or give it a codec: sdk.RegisterCodec[%s](c) before building the pipeline "+
				"(generic types, a library's too, are registered per instantiation), "+
				"sdk.WithCodec(c) on the operator, or a Codec method (sdk.CodecProvider) on a type you own", name, problem, name)
		}
	case interface{ CheckCodec() error }:
		return c.CheckCodec()
	}
	return nil
}

// importPath matches the import path reflect writes before the package
// name of a type argument.
var importPath = regexp.MustCompile(`([\w.~-]+/)+`)

// typeName is t as Go source names it: reflect writes type arguments with
// their import paths (kafka.Record[github.com/x/y.Event]).
func typeName(t reflect.Type) string { return importPath.ReplaceAllString(t.String(), "") }

// checkJSONSafe is CheckCodec.
func checkJSONSafe[T any](c Codec[T]) error { return CheckCodec(c) }

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// marshalsItself says whether encoding/json encodes and decodes t through
// its own methods rather than field by field.
func marshalsItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return (t.Implements(jsonMarshaler) && pt.Implements(jsonUnmarshaler)) ||
		(t.Implements(textMarshaler) && pt.Implements(textUnmarshaler))
}

// jsonProblem describes the first part of t that the JSON fallback would
// drop or cannot encode, or is "".
func jsonProblem(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] || marshalsItself(t) {
		return ""
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return jsonProblem(t.Elem(), seen)
	case reflect.Map:
		switch k := t.Key(); {
		case k.Kind() == reflect.String, k.Kind() >= reflect.Int && k.Kind() <= reflect.Uintptr,
			k.Implements(textMarshaler) && reflect.PointerTo(k).Implements(textUnmarshaler):
		default:
			return fmt.Sprintf("a map keyed by %s, which encoding/json cannot encode", typeName(k))
		}
		return jsonProblem(t.Elem(), seen)
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return fmt.Sprintf("a part of type %s, which encoding/json cannot encode", typeName(t))
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				return "unexported field " + t.Name() + "." + f.Name + ", which the default JSON codec would drop"
			}
			if p := jsonProblem(f.Type, seen); p != "" {
				return p + " (field " + t.Name() + "." + f.Name + ")"
			}
		}
	}
	return ""
}
