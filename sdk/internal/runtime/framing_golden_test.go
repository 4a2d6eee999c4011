package runtime

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/weir-run/weir/internal/exchange"
)

// The golden byte strings below are written out by hand from the format
// (uvarint length, then the bytes), not produced by the code under test:
// checkpoints and batches written by one version must read in another, so
// the bytes themselves are pinned, both ways.

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var long200 = bytes.Repeat([]byte{'x'}, 200)

func TestItemsGolden(t *testing.T) {
	items := [][]byte{[]byte("a"), {}, []byte("bc"), long200}
	want := append(unhex(t, "0161 00 026263 c801"), long200...)
	if got := EncodeItems(items); !bytes.Equal(got, want) {
		t.Fatalf("EncodeItems = %x\nwant          %x", got, want)
	}
	got, err := DecodeItems(want)
	if err != nil || len(got) != len(items) {
		t.Fatalf("DecodeItems = %q, %v", got, err)
	}
	for i := range items {
		if !bytes.Equal(got[i], items[i]) {
			t.Fatalf("item %d = %q, want %q", i, got[i], items[i])
		}
	}
	if got, err := DecodeItems(nil); got != nil || err != nil {
		t.Fatalf("DecodeItems(nil) = %q, %v", got, err)
	}
	for _, bad := range []string{"02 61", "80", "ffffffffffffffffff01"} {
		if _, err := DecodeItems(unhex(t, bad)); !errors.Is(err, ErrCorruptItems) {
			t.Errorf("DecodeItems(%s) = %v, want ErrCorruptItems", bad, err)
		}
	}
}

// goldenBatch is the remote batch of "a", "", "bc" and long200.
func goldenBatch(t testing.TB) []byte { return append(unhex(t, "0161 00 026263 c801"), long200...) }

func TestBatchGolden(t *testing.T) {
	st := records[string]{codec: stringCodec{}}
	emit, out, _, caps := newTestOutput(st, partForward, nil, 0, 128, []bool{false})
	for _, v := range []string{"a", "", "bc", string(long200)} {
		emit(v)
	}
	if err := out.flush(); err != nil {
		t.Fatal(err)
	}
	want := goldenBatch(t)
	if f := caps[0].frames; len(f) != 1 || f[0].Count != 4 || !bytes.Equal(f[0].Data, want) {
		t.Fatalf("sent %+v, want one frame of 4 records: %x", f, want)
	}
	var got []string
	dec := st.decoder(func(v string) { got = append(got, v) })
	if err := dec(&exchange.Frame{Kind: exchange.KindRecords, Data: want, Count: 4}, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"a", "", "bc", string(long200)}) {
		t.Fatalf("decoded %q", got)
	}
	some, err := decodeSome[string](stringCodec{}, want, 2, 2)
	if err != nil || !slices.Equal(some, []string{"a", "bc"}) {
		t.Fatalf("decodeSome = %q, %v", some, err)
	}
	for _, bad := range []string{"02 61", "80"} {
		if _, err := decodeSome[string](stringCodec{}, unhex(t, bad), 1, 1); !errors.Is(err, ErrDecode) {
			t.Errorf("decodeSome(%s) = %v, want ErrDecode", bad, err)
		}
	}
}

// discardSender drops what it is sent.
type discardSender struct{}

func (discardSender) Send(context.Context, exchange.Frame) error { return nil }
func (discardSender) Close() error                               { return nil }

// benchBatch is a full remote batch of varint records and its count.
func benchBatch() ([]byte, int) {
	var b, scratch []byte
	n := 0
	for i := int64(0); len(b) < batchBytes; i++ {
		scratch = varintCodec{}.Append(scratch[:0], i*7919)
		b = append(append(b, byte(len(scratch))), scratch...)
		n++
	}
	return b, n
}

// BenchmarkBatchDecode: the consumer's side of a remote batch, per record.
func BenchmarkBatchDecode(b *testing.B) {
	data, n := benchBatch()
	var sum int64
	dec := records[int64]{codec: varintCodec{}}.decoder(func(v int64) { sum += v })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += n {
		if err := dec(&exchange.Frame{Kind: exchange.KindRecords, Data: data, Count: n}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchEncode: the producer's side, per record (a batch buffer is
// allocated per batch of ~5000, not per record).
func BenchmarkBatchEncode(b *testing.B) {
	env := &subtaskEnv{ctx: context.Background(), maxParallelism: 128}
	emitAny, _ := records[int64]{codec: varintCodec{}}.newOutput(env,
		[]outEdge{{part: partForward, local: []bool{false}, senders: []exchange.Sender{discardSender{}}}})
	emit := emitAny.(func(int64))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		emit(int64(i) * 7919)
	}
}

// BenchmarkTapDecodeSome: sampling a tap's share of a full batch.
func BenchmarkTapDecodeSome(b *testing.B) {
	data, n := benchBatch()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := decodeSome[int64](varintCodec{}, data, 10, n/10); err != nil {
			b.Fatal(err)
		}
	}
}
