package uvarintframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestLens(t *testing.T) {
	for _, u := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<63 - 1, 1 << 63, math.MaxUint64} {
		if got, want := UvarintLen(u), len(binary.AppendUvarint(nil, u)); got != want {
			t.Errorf("UvarintLen(%d) = %d, want %d", u, got, want)
		}
	}
	for _, v := range []int64{0, 1, -1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64} {
		if got, want := VarintLen(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("VarintLen(%d) = %d, want %d", v, got, want)
		}
	}
	if got := BytesLen(200); got != 202 {
		t.Errorf("BytesLen(200) = %d, want 202", got)
	}
}

func TestAppend(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"uvarints", AppendUvarints(nil, 0, 1, 300), []byte{0, 1, 0xac, 0x02}},
		{"varints", AppendVarints([]byte{9}, 0, -1, 1, -65), []byte{9, 0, 1, 2, 0x81, 0x01}},
		{"bytes", AppendBytes(nil, []byte("ab")), []byte{2, 'a', 'b'}},
		{"empty bytes", AppendBytes(nil, nil), []byte{0}},
		{"strings", AppendStrings(nil, "a", "", "bc"), []byte{1, 'a', 0, 2, 'b', 'c'}},
		{"frames", AppendFrames(nil, []byte("x"), nil), []byte{1, 'x', 0}},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: % x, want % x", c.name, c.got, c.want)
		}
	}
}

func TestReader(t *testing.T) {
	b := AppendVarints(nil, -7, math.MinInt64)
	b = AppendUvarints(b, math.MaxUint64)
	b = AppendString(b, "weir")
	b = append(b, 0xfe)
	b = AppendBytes(b, nil)
	b = append(b, "rest"...)
	r := NewReader(b)
	if v := r.Varint(); v != -7 {
		t.Errorf("Varint = %d", v)
	}
	if v := r.Varint(); v != math.MinInt64 {
		t.Errorf("Varint = %d", v)
	}
	if v := r.Uvarint(); v != math.MaxUint64 {
		t.Errorf("Uvarint = %d", v)
	}
	if s := r.Str(); s != "weir" {
		t.Errorf("String = %q", s)
	}
	if c := r.Byte(); c != 0xfe {
		t.Errorf("Byte = %x", c)
	}
	if b := r.Bytes(); len(b) != 0 || r.Err() != nil {
		t.Errorf("Bytes = %q, %v", b, r.Err())
	}
	if r.Done() == nil {
		t.Error("Done with 4 bytes left succeeded")
	}
	r.Reset(b)
	r.Varint()
	r.Varint()
	r.Uvarint()
	r.Str()
	r.Byte()
	r.Bytes()
	if rest := string(r.Rest()); rest != "rest" || r.Done() != nil {
		t.Errorf("Rest = %q, Done = %v", rest, r.Done())
	}
}

func TestReaderErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		read func(r *Reader)
	}{
		{"empty uvarint", nil, func(r *Reader) { r.Uvarint() }},
		{"truncated uvarint", []byte{0x80}, func(r *Reader) { r.Uvarint() }},
		{"overlong uvarint", []byte{0x80, 0x00}, func(r *Reader) { r.Uvarint() }},
		{"overflowing uvarint", bytes.Repeat([]byte{0xff}, 11), func(r *Reader) { r.Uvarint() }},
		{"overlong varint", []byte{0x81, 0x00}, func(r *Reader) { r.Varint() }},
		{"empty byte", nil, func(r *Reader) { r.Byte() }},
		{"short string", []byte{3, 'a', 'b'}, func(r *Reader) { r.Str() }},
		{"huge length", AppendUvarints(nil, math.MaxUint64), func(r *Reader) { r.Bytes() }},
		{"trailing", []byte{1, 2}, func(r *Reader) { r.Uvarint() }},
		{"decoder's failure", []byte{1, 2}, func(r *Reader) { r.Fail("bad tag"); r.Uvarint() }},
	} {
		r := NewReader(c.in)
		c.read(r)
		err := r.Done()
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Done = %v, want ErrCorrupt", c.name, err)
		}
		// The failure sticks.
		if r.Uvarint() != 0 || r.Varint() != 0 || r.Byte() != 0 || r.Bytes() != nil || r.Rest() != nil || r.Err() != err {
			t.Errorf("%s: reads after a failure returned values or changed the error", c.name)
		}
	}
}

func TestSplitFrames(t *testing.T) {
	items, err := SplitFrames(AppendFrames(nil, []byte("a"), nil, []byte("bcd")))
	if err != nil || len(items) != 3 || string(items[0]) != "a" || len(items[1]) != 0 || string(items[2]) != "bcd" {
		t.Errorf("SplitFrames = %q, %v", items, err)
	}
	if items, err := SplitFrames(nil); err != nil || items != nil {
		t.Errorf("SplitFrames(nil) = %q, %v", items, err)
	}
	if _, err := SplitFrames([]byte{2, 'a'}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("SplitFrames of a short frame: %v", err)
	}
}

// FuzzRoundTrip: whatever is appended reads back as itself.
func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(0), uint64(0), "", []byte(nil))
	f.Add(int64(math.MinInt64), uint64(math.MaxUint64), "weir", []byte{0x80, 0})
	f.Fuzz(func(t *testing.T, v int64, u uint64, s string, b []byte) {
		enc := AppendVarints(nil, v)
		enc = AppendUvarints(enc, u)
		enc = AppendString(enc, s)
		enc = AppendFrames(enc, b, b)
		if want := VarintLen(v) + UvarintLen(u) + BytesLen(len(s)) + 2*BytesLen(len(b)); len(enc) != want {
			t.Fatalf("encoded %d bytes, lengths say %d", len(enc), want)
		}
		r := NewReader(enc)
		gv, gu, gs := r.Varint(), r.Uvarint(), r.Str()
		items, err := SplitFrames(r.Rest())
		if err != nil || r.Done() != nil {
			t.Fatalf("read back: %v, %v", err, r.Done())
		}
		if gv != v || gu != u || gs != s || len(items) != 2 || !bytes.Equal(items[0], b) || !bytes.Equal(items[1], b) {
			t.Fatalf("read back %d %d %q %q, want %d %d %q %q", gv, gu, gs, items, v, u, s, b)
		}
	})
}

// FuzzReader: arbitrary bytes read by an arbitrary script never panic, and
// whatever the Reader accepts re-encodes to exactly the bytes it consumed
// (the encoding is canonical).
func FuzzReader(f *testing.F) {
	f.Add([]byte{0x80, 0x00}, "u")
	f.Add(AppendString(AppendVarints(nil, -3), "x"), "vs")
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "ub")
	f.Fuzz(func(t *testing.T, data []byte, script string) {
		r := NewReader(data)
		var re []byte
		for _, op := range []byte(script) {
			switch op % 5 {
			case 0:
				re = AppendUvarints(re, r.Uvarint())
			case 1:
				re = AppendVarints(re, r.Varint())
			case 2:
				re = AppendBytes(re, r.Bytes())
			case 3:
				re = AppendString(re, r.Str())
			case 4:
				re = append(re, r.Byte())
			}
			if r.Err() != nil {
				return
			}
		}
		if consumed := data[:len(data)-r.Len()]; !bytes.Equal(re, consumed) {
			t.Fatalf("read % x, re-encoded as % x", consumed, re)
		}
		if items, err := SplitFrames(data); err == nil && !bytes.Equal(AppendFrames(nil, items...), data) {
			t.Fatalf("SplitFrames(% x) re-encodes differently", data)
		}
	})
}
