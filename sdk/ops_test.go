package sdk

import (
	"encoding/binary"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// eventCodec is a codec no default would pick for event: a stream carries
// it only because an operator was given it.
type eventCodec struct{}

func (eventCodec) Append(dst []byte, e event) []byte {
	return append(binary.AppendVarint(dst, e.TS), e.Key...)
}

func (eventCodec) Decode(b []byte) (event, error) {
	ts, n := binary.Varint(b)
	if n <= 0 {
		return event{}, ErrDecode
	}
	return event{Key: string(b[n:]), TS: ts}, nil
}

func codecOf[T any](s Stream[T]) Codec[T] { return s.codec }

// An operator whose output type is its input's keeps the input's codec
// unless WithCodec says otherwise; one to another type gets that type's.
func TestSameTypeOperatorsInheritTheCodec(t *testing.T) {
	p := NewPipeline("codecs", 2)
	src := Generate(p, 10, func(i int64) event { return event{"k", i} }, WithCodec[event](eventCodec{}))
	ident := func(e event) event { return e }
	keep := func(event) bool { return true }
	for name, s := range map[string]Stream[event]{
		"Filter":              Filter(src, keep),
		"Map":                 Map(src, ident),
		"Filter after Map":    Filter(Map(src, ident), keep),
		"FlatMap then Filter": Filter(FlatMap(src, func(e event, emit func(event)) { emit(e) }), keep),
		"AssignTimestamps":    AssignTimestamps(src, eventTS, BoundedOutOfOrder(0)),
		"Reduce":              Reduce(KeyBy(src, eventKey), func(a, b event) event { return b }),
	} {
		if c := codecOf(s); c != (eventCodec{}) {
			t.Errorf("%s: codec %T, want the input's eventCodec", name, c)
		}
	}
	if c := codecOf(Map(src, ident, WithCodec[event](JSONCodec[event]{}))); c != (JSONCodec[event]{}) {
		t.Errorf("Map WithCodec: codec %T, want JSONCodec", c)
	}
	if c := codecOf(Map(src, func(e event) string { return e.Key })); c != (StringCodec{}) {
		t.Errorf("Map to string: codec %T, want StringCodec", c)
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

// Map and FlatMap to the same type keep the event time, so their output
// windows with no WithTimestamps; one to another type has none, and
// WithTimestamps after it declares it.
func TestMapKeepsEventTime(t *testing.T) {
	evs := outOfOrder(3, 2000, 5, 10, 500)
	want := referenceCounts(evs, Tumbling(time.Second))
	for name, via := range map[string]func(Stream[event]) Stream[event]{
		"Map": func(s Stream[event]) Stream[event] {
			return Map(s, func(e event) event { e.Key = strings.ToUpper(e.Key); return e })
		},
		"FlatMap": func(s Stream[event]) Stream[event] {
			return FlatMap(s, func(e event, emit func(event)) { e.Key = strings.ToUpper(e.Key); emit(e) })
		},
		"Map to another type, WithTimestamps": func(s Stream[event]) Stream[event] {
			type upper struct{ E event }
			u := Map(s, func(e event) upper { e.Key = strings.ToUpper(e.Key); return upper{e} })
			if u.ts != nil {
				t.Error("a Map to another type kept an event-time function")
			}
			return WithTimestamps(Map(u, func(u upper) event { return u.E }), eventTS)
		},
	} {
		t.Run(name, func(t *testing.T) {
			pl := NewPipeline("keep", 2)
			src := AssignTimestamps(Generate(pl, int64(len(evs)), func(i int64) event { return evs[i] }), eventTS, BoundedOutOfOrder(500*time.Millisecond))
			mapped := via(src)
			if mapped.ts == nil {
				t.Fatal("the output has no event time")
			}
			w := WindowAggregate(Window(KeyBy(mapped, eventKey), Tumbling(time.Second)), Count[event]())
			got := collect(t, pl, w.Results())
			for i := range got {
				got[i].Key = strings.ToLower(got[i].Key)
			}
			if g := multiset(got); !slices.Equal(g, want) {
				t.Fatal(diffMultisets(g, want))
			}
		})
	}
}

// WithTimestamps after a same-type Map reassigns its event time.
func TestWithTimestampsReassignsAfterMap(t *testing.T) {
	p := NewPipeline("reassign", 1)
	src := AssignTimestamps(genSeq(p, 3), func(i int64) int64 { return i }, BoundedOutOfOrder(0))
	m := Map(src, func(i int64) int64 { return i * 2 })
	if got := m.ts(21); got != 21 {
		t.Fatalf("kept event time of 21 = %d, want 21", got)
	}
	r := WithTimestamps(m, func(i int64) int64 { return i * 1000 })
	if got := r.ts(21); got != 21000 {
		t.Fatalf("reassigned event time of 21 = %d, want 21000", got)
	}
}

// providedPair is a generic type that provides its codec.
type providedPair[T any] struct {
	A, B T
	n    int // unexported: JSON would drop it
}

type providedPairCodec[T any] struct{ elem Codec[T] }

func (c providedPairCodec[T]) Append(dst []byte, p providedPair[T]) []byte {
	a := c.elem.Append(nil, p.A)
	dst = binary.AppendUvarint(dst, uint64(len(a)))
	return c.elem.Append(append(dst, a...), p.B)
}

func (c providedPairCodec[T]) Decode(b []byte) (providedPair[T], error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return providedPair[T]{}, ErrDecode
	}
	a, err := c.elem.Decode(b[k : k+int(n)])
	if err != nil {
		return providedPair[T]{}, err
	}
	bv, err := c.elem.Decode(b[k+int(n):])
	return providedPair[T]{A: a, B: bv}, err
}

func (c providedPairCodec[T]) CheckCodec() error { return CheckCodec(c.elem) }

func (providedPair[T]) Codec() Codec[providedPair[T]] {
	return providedPairCodec[T]{elem: CodecFor[T]()}
}

type hiddenElem struct{ x int }

type stamped struct {
	At   time.Time
	Name string
}

// A generic type providing its codec needs no registration, for any
// instantiation; the pipeline still checks the codecs it is made of.
func TestCodecProvider(t *testing.T) {
	if c, ok := CodecFor[providedPair[string]]().(providedPairCodec[string]); !ok || c.elem != (StringCodec{}) {
		t.Fatalf("CodecFor[providedPair[string]] = %#v", CodecFor[providedPair[string]]())
	}
	c := CodecFor[providedPair[int64]]()
	got, err := c.Decode(c.Append(nil, providedPair[int64]{A: -3, B: 1 << 40}))
	if err != nil || got != (providedPair[int64]{A: -3, B: 1 << 40}) {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	p := NewPipeline("provided", 1)
	Filter(Map(genSeq(p, 3), func(i int64) providedPair[int64] { return providedPair[int64]{A: i} }),
		func(providedPair[int64]) bool { return true })
	if err := p.Err(); err != nil {
		t.Fatalf("a type with a CodecProvider was refused: %v", err)
	}
	// The element's codec is the JSON fallback for a type JSON corrupts.
	p = NewPipeline("provided", 1)
	Map(genSeq(p, 3), func(i int64) providedPair[hiddenElem] { return providedPair[hiddenElem]{} })
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "hiddenElem") {
		t.Fatalf("Err() = %v, want hiddenElem's unexported field", err)
	}
}

// The check's advice names the call that fixes it, also for a library's
// generic type; types that marshal themselves (time.Time) pass it; a KV's
// codec has its parts checked.
func TestCodecCheckAdvice(t *testing.T) {
	err := CheckCodec(CodecFor[KV[string, hiddenElem]]())
	if err == nil {
		t.Fatal("KV of a type with unexported fields passed the check")
	}
	for _, want := range []string{"sdk.RegisterCodec[sdk.KV[string,", "per instantiation", "sdk.WithCodec", "sdk.CodecProvider"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("advice %q lacks %q", err, want)
		}
	}
	if err := CheckCodec(KVCodec[string, hiddenElem]{K: StringCodec{}, V: JSONCodec[hiddenElem]{}}); err == nil {
		t.Error("KVCodec with a JSON value codec that drops a field passed the check")
	}
	if err := CheckCodec(CodecFor[stamped]()); err != nil {
		t.Errorf("a struct with a time.Time: %v", err)
	}
	v := stamped{At: time.UnixMilli(1_700_000_000_123).UTC(), Name: "x"}
	got, err := CodecFor[stamped]().Decode(CodecFor[stamped]().Append(nil, v))
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Errorf("JSON round trip of %v = %v, %v", v, got, err)
	}
}
