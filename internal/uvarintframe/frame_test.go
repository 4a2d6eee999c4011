package uvarintframe

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestFrame(t *testing.T) {
	long := bytes.Repeat([]byte{'x'}, 200)
	in := AppendFrames(nil, []byte("a"), nil, long, []byte("bc"))
	r := NewReader(in)
	for i, want := range [][]byte{[]byte("a"), nil, long, []byte("bc")} {
		if got := r.Frame(); !bytes.Equal(got, want) || r.Err() != nil {
			t.Fatalf("Frame %d = %q, %v", i, got, r.Err())
		}
	}
	if r.Done() != nil {
		t.Fatal(r.Done())
	}
	// Capacity ends with the item: appending to it never overwrites the next.
	r.Reset(in)
	if it := r.Frame(); cap(it) != 1 {
		t.Errorf("cap = %d", cap(it))
	}
	for _, bad := range [][]byte{{}, {2, 'a'}, {1}, {0x80}, {0x80, 0x00}} {
		r.Reset(bad)
		if got := r.Frame(); got != nil || r.Err() == nil {
			t.Errorf("Frame(% x) = %q, %v", bad, got, r.Err())
		}
		if r.Frame() != nil {
			t.Errorf("Frame after a failure read something")
		}
	}
}

// FuzzFrame: Frame and Bytes read the same items, fail on the same bytes
// and leave the Reader in the same state.
func FuzzFrame(f *testing.F) {
	f.Add(AppendFrames(nil, []byte("a"), nil, bytes.Repeat([]byte{'x'}, 200)))
	f.Add([]byte{3, 'a', 'b'})
	f.Add([]byte{0x81, 0x00, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := NewReader(data), NewReader(data)
		for {
			x, y := a.Frame(), b.Bytes()
			if !bytes.Equal(x, y) || (x == nil) != (y == nil) || cap(x) != cap(y) || a.Len() != b.Len() || a.off != b.off ||
				(a.Err() == nil) != (b.Err() == nil) || (a.Err() != nil && a.Err().Error() != b.Err().Error()) {
				t.Fatalf("Frame %q (%d left, %v); Bytes %q (%d left, %v)", x, a.Len(), a.Err(), y, b.Len(), b.Err())
			}
			if a.Err() != nil || a.Len() == 0 {
				return
			}
		}
	})
}

func benchFrames() []byte {
	var b []byte
	for i := range 4096 {
		b = AppendBytes(b, binary.AppendVarint(nil, int64(i)*7919))
	}
	return b
}

var sink int

func BenchmarkFrame(b *testing.B) {
	data := benchFrames()
	b.Run("Frame", func(b *testing.B) {
		for i := 0; i < b.N; i += 4096 {
			r := NewReader(data)
			for r.Len() > 0 {
				sink += len(r.Frame())
			}
		}
	})
	b.Run("Bytes", func(b *testing.B) {
		for i := 0; i < b.N; i += 4096 {
			r := NewReader(data)
			for r.Len() > 0 {
				sink += len(r.Bytes())
			}
		}
	})
	b.Run("binary.Uvarint", func(b *testing.B) {
		for i := 0; i < b.N; i += 4096 {
			d := data
			for len(d) > 0 {
				n, k := binary.Uvarint(d)
				if k <= 0 || n > uint64(len(d)-k) {
					b.Fatal("bad")
				}
				sink += len(d[k : k+int(n)])
				d = d[k+int(n):]
			}
		}
	})
}
