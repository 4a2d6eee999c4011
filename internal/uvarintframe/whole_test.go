package uvarintframe

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

func TestDecodeWhole(t *testing.T) {
	for _, u := range []uint64{0, 1, 127, 128, 300, 1 << 56, 1<<63 - 1, 1 << 63, math.MaxUint64} {
		b := AppendUvarint(nil, u)
		if !bytes.Equal(b, AppendUvarints(nil, u)) {
			t.Errorf("AppendUvarint(%d) = % x", u, b)
		}
		if got, ok := DecodeUvarint(b); !ok || got != u {
			t.Errorf("DecodeUvarint of %d = %d, %v", u, got, ok)
		}
	}
	for _, v := range []int64{0, 1, -1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64} {
		b := AppendVarint(nil, v)
		if !bytes.Equal(b, AppendVarints(nil, v)) {
			t.Errorf("AppendVarint(%d) = % x", v, b)
		}
		if got, ok := DecodeVarint(b); !ok || got != v {
			t.Errorf("DecodeVarint of %d = %d, %v", v, got, ok)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x80, 0x00}, {0x81, 0x80, 0x00}, {0x01, 0x00}, {0x00, 0x00},
		append(bytes.Repeat([]byte{0xff}, 9), 0x02), append(bytes.Repeat([]byte{0x80}, 9), 0x00), bytes.Repeat([]byte{0xff}, 11)} {
		if _, ok := DecodeUvarint(bad); ok {
			t.Errorf("DecodeUvarint(% x) accepted", bad)
		}
		if _, ok := DecodeVarint(bad); ok {
			t.Errorf("DecodeVarint(% x) accepted", bad)
		}
	}
}

// FuzzDecodeWhole: DecodeUvarint and DecodeVarint accept exactly what a
// Reader's Uvarint or Varint then Done accept, with the same values.
func FuzzDecodeWhole(f *testing.F) {
	f.Add([]byte{0xac, 0x02})
	f.Add([]byte{0x80, 0x00})
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x01))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x02))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		ru := r.Uvarint()
		rerr := r.Done()
		if u, ok := DecodeUvarint(b); ok != (rerr == nil) || (ok && u != ru) {
			t.Fatalf("DecodeUvarint(% x) = %d, %v; Reader %d, %v", b, u, ok, ru, rerr)
		}
		r.Reset(b)
		rv := r.Varint()
		rerr = r.Done()
		if v, ok := DecodeVarint(b); ok != (rerr == nil) || (ok && v != rv) {
			t.Fatalf("DecodeVarint(% x) = %d, %v; Reader %d, %v", b, v, ok, rv, rerr)
		}
		if rerr == nil && !bytes.Equal(binary.AppendVarint(nil, rv), b) {
			t.Fatalf("% x accepted, but re-encodes differently", b)
		}
	})
}
