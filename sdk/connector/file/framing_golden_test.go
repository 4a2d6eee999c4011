package file

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// A split's bytes are part of every checkpoint and savepoint of a job
// reading files: pinned here as written out by hand from the format (the
// length-prefixed path, the position and end as zig-zag varints, then the
// aligned flag), and read back.
func TestSplitGolden(t *testing.T) {
	for _, c := range []struct {
		sp   split
		want string
	}{
		{split{path: "/d/a.txt", pos: 0, end: 300, aligned: true}, "08 2f642f612e747874 00 d804 01"},
		{split{path: "", pos: 64, end: 1 << 40}, "00 8001 808080808040 00"},
	} {
		want, _ := hex.DecodeString(strings.ReplaceAll(c.want, " ", ""))
		if got := c.sp.encode(); !bytes.Equal(got, want) {
			t.Errorf("encode(%+v) = %x, want %x", c.sp, got, want)
		}
		if got, err := decodeSplit(want); err != nil || got != c.sp {
			t.Errorf("decodeSplit(%s) = %+v, %v", c.want, got, err)
		}
	}
	for _, bad := range []string{"", "05 2f64", "01 2f 00", "01 2f 00 d804", "01 2f 00 d804 01 00", "01 2f 80"} {
		b, _ := hex.DecodeString(strings.ReplaceAll(bad, " ", ""))
		if _, err := decodeSplit(b); !errors.Is(err, errCorruptSplit) {
			t.Errorf("decodeSplit(%s) = %v", bad, err)
		}
	}
}
