package uvarintframe

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestVarints(t *testing.T) {
	want := []int64{0, -1, 300, math.MinInt64, math.MaxInt64}
	b := append(AppendVarints(nil, want...), "rest"...)
	r := NewReader(b)
	got := make([]int64, len(want))
	r.Varints(got)
	if !slices.Equal(got, want) || r.Err() != nil || string(r.Rest()) != "rest" {
		t.Fatalf("Varints = %v, %v", got, r.Err())
	}
	r.Reset([]byte{0x04, 0x80, 0x00})
	got = []int64{9, 9, 9}
	r.Varints(got)
	if !slices.Equal(got, []int64{2, 0, 0}) || !errors.Is(r.Err(), ErrCorrupt) {
		t.Fatalf("Varints of a padded second number = %v, %v", got, r.Err())
	}
	r.Varints(got)
	if !slices.Equal(got, []int64{0, 0, 0}) {
		t.Fatalf("Varints after a failure = %v", got)
	}
}

// FuzzVarints: Varints reads what as many Varint calls read, fails where
// they fail, with the same error, and leaves the Reader where they do.
func FuzzVarints(f *testing.F) {
	f.Add(AppendVarints(nil, 1, -2, 1<<40), 3)
	f.Add([]byte{0x04, 0x80, 0x00}, 2)
	f.Add([]byte{0xff}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		n = max(0, n%12)
		a, c := NewReader(b), NewReader(b)
		got := make([]int64, n)
		a.Varints(got)
		want := make([]int64, n)
		for i := range want {
			want[i] = c.Varint()
		}
		if !slices.Equal(got, want) || a.Len() != c.Len() || a.off != c.off || (a.Err() == nil) != (c.Err() == nil) ||
			(a.Err() != nil && a.Err().Error() != c.Err().Error()) {
			t.Fatalf("Varints %v (%d left, %v); Varint %v (%d left, %v)", got, a.Len(), a.Err(), want, c.Len(), c.Err())
		}
	})
}
