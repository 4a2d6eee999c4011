package kafka

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/sdk"
)

// Records cross exchanges and sit in state, and splits are checkpointed:
// their bytes are pinned here as written out by hand from the formats
// (length-prefixed key and topic, then zig-zag varints), and read back.

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordCodecGolden(t *testing.T) {
	c := RecordCodec[string]{Value: sdk.StringCodec{}}
	for _, tc := range []struct {
		r    Record[string]
		want string
	}{
		{Record[string]{Key: []byte("k"), Value: "v", Topic: "t", Partition: 2, Offset: 9, Timestamp: time.UnixMilli(5)}, "01 6b 01 74 04 12 0a 76"},
		{Record[string]{Value: "v"}, "00 00 00 00 00 76"},
		{Record[string]{Partition: -1, Offset: 300, Timestamp: time.UnixMilli(-1)}, "00 00 01 d804 01"},
	} {
		want := unhex(t, tc.want)
		if got := c.Append([]byte{}, tc.r); !bytes.Equal(got, want) {
			t.Errorf("Append(%+v) = %x, want %x", tc.r, got, want)
		}
		got, err := c.Decode(want)
		if err != nil || !bytes.Equal(got.Key, tc.r.Key) || (got.Key == nil) != (tc.r.Key == nil) || got.Value != tc.r.Value ||
			got.Topic != tc.r.Topic || got.Partition != tc.r.Partition || got.Offset != tc.r.Offset || !got.Timestamp.Equal(tc.r.Timestamp) {
			t.Errorf("Decode(%s) = %+v, %v, want %+v", tc.want, got, err, tc.r)
		}
	}
	// The key is the record's own: it outlives the buffer it came from.
	b := unhex(t, "01 6b 00 00 00 00")
	r, _ := c.Decode(b)
	b[1] = 'x'
	if string(r.Key) != "k" {
		t.Errorf("decoded key aliases the input: %q", r.Key)
	}
	for _, bad := range []string{"", "02 6b", "01 6b 00 00 00", "01 6b 00 00 80"} {
		if _, err := c.Decode(unhex(t, bad)); !errors.Is(err, sdk.ErrDecode) {
			t.Errorf("Decode(%s) = %v", bad, err)
		}
	}
}

func TestSplitGolden(t *testing.T) {
	for _, tc := range []struct {
		sp   split
		want string
	}{
		{split{tp: topicPartition{"topic", 3}, next: 42, wm: math.MinInt64}, "01 05 746f706963 06 54"},
		{split{tp: topicPartition{"topic", 3}, next: 42, wm: 1000, hasWM: true}, "02 05 746f706963 06 54 d00f"},
		{split{tp: topicPartition{"t", 1<<31 - 1}, next: 0, wm: math.MinInt64, hasWM: true}, "02 01 74 feffffff0f 00 ffffffffffffffffff01"},
	} {
		want := unhex(t, tc.want)
		if got := encodeSplit(tc.sp); !bytes.Equal(got, want) {
			t.Errorf("encodeSplit(%+v) = %x, want %x", tc.sp, got, want)
		}
		if got, err := decodeSplit(want); err != nil || got != tc.sp {
			t.Errorf("decodeSplit(%s) = %+v, %v, want %+v", tc.want, got, err, tc.sp)
		}
	}
	for _, bad := range []string{"", "03 01 74 00 00", "01 00 00 00", "01 01 74 01 00", "01 01 74 00 01", "01 01 74 00 00 00", "02 01 74 00 00",
		"01 01 74 808080801000 00"} {
		if _, err := decodeSplit(unhex(t, bad)); !errors.Is(err, errCorruptSplit) {
			t.Errorf("decodeSplit(%s) = %v", bad, err)
		}
	}
}

func BenchmarkRecordCodec(b *testing.B) {
	c := RecordCodec[[]byte]{Value: sdk.BytesCodec{}}
	r := Record[[]byte]{Key: []byte("user-1234"), Value: make([]byte, 100), Topic: "events", Partition: 7, Offset: 123_456_789, Timestamp: time.UnixMilli(1_700_000_000_000)}
	buf := c.Append(nil, r)
	b.ReportAllocs()
	for range b.N {
		got, err := c.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
		buf = c.Append(buf[:0], got)
	}
}
