package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/watermark"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	partForward   = weirv1.Partitioning_PARTITIONING_FORWARD
	partHash      = weirv1.Partitioning_PARTITIONING_HASH
	partRebalance = weirv1.Partitioning_PARTITIONING_REBALANCE
	partBroadcast = weirv1.Partitioning_PARTITIONING_BROADCAST
)

// captureSender records the frames a typedOutput sends on one channel.
type captureSender struct {
	frames []exchange.Frame
	closed bool
	err    error // returned by Send
}

// Send keeps a copy of f.Data: like a remote sender, it is done with the
// buffer when Send returns, and the output reuses it.
func (c *captureSender) Send(_ context.Context, f exchange.Frame) error {
	if c.err != nil {
		return c.err
	}
	f.Data = slices.Clone(f.Data)
	c.frames = append(c.frames, f)
	return nil
}

func (c *captureSender) Close() error { c.closed = true; return nil }

// records returns the records the channel carried, decoded as a consumer
// would, and the number of End frames.
func (c *captureSender) records(t *testing.T, st records[string]) (recs []string, ends int) {
	t.Helper()
	dec := st.decoder(func(v string) { recs = append(recs, v) })
	for _, f := range c.frames {
		switch f.Kind {
		case exchange.KindRecords:
			if err := dec(&f, func(int64) {}); err != nil {
				t.Fatal(err)
			}
		case exchange.KindEnd:
			ends++
		}
	}
	return recs, ends
}

// newTestOutput builds subtask sub's output for one edge to n channels.
func newTestOutput(st records[string], part weirv1.Partitioning, keyHash func() any, sub, maxP int, local []bool) (func(string), output, *subtaskEnv, []*captureSender) {
	env := &subtaskEnv{ctx: context.Background(), subtask: sub, maxParallelism: maxP}
	oe := outEdge{part: part, keyHash: keyHash, local: local}
	var caps []*captureSender
	for range local {
		c := &captureSender{}
		caps = append(caps, c)
		oe.senders = append(oe.senders, c)
	}
	emit, out := st.newOutput(env, []outEdge{oe})
	return emit.(func(string)), out, env, caps
}

// Encoded batches are flushed at ~32 KiB, carry exact counts, and decode to
// the records in order; a record larger than a batch travels alone.
func TestEncodedBatches(t *testing.T) {
	st := records[string]{codec: stringCodec{}}
	emit, out, _, caps := newTestOutput(st, partForward, nil, 0, 128, []bool{false})
	var want []string
	for i := range 20000 {
		v := fmt.Sprintf("record-%d", i)
		if i == 7500 {
			v = strings.Repeat("L", 3*batchBytes)
		}
		if i%1000 == 0 {
			v = "" // empty records are records too
		}
		want = append(want, v)
		emit(v)
	}
	if !out.dirty() {
		t.Fatal("a partial batch is pending, but the output is not dirty")
	}
	if err := out.end(); err != nil {
		t.Fatal(err)
	}
	if out.dirty() {
		t.Fatal("dirty after end")
	}
	c := caps[0]
	got, ends := c.records(t, st)
	if !slices.Equal(got, want) {
		t.Fatalf("decoded %d records, want %d in order", len(got), len(want))
	}
	if ends != 1 || !c.closed {
		t.Fatalf("%d End frames, closed %v", ends, c.closed)
	}
	// A batch is cut as soon as it reaches batchBytes: every batch but the
	// last reached it, and none did before its last record.
	var recFrames []exchange.Frame
	for _, f := range c.frames {
		if f.Kind == exchange.KindRecords {
			recFrames = append(recFrames, f)
		}
	}
	if len(recFrames) < 4 {
		t.Fatalf("%d record frames: batches are not being cut", len(recFrames))
	}
	for i, f := range recFrames {
		if f.Local != nil {
			t.Fatal("an encoded channel got a Local batch")
		}
		if i < len(recFrames)-1 && len(f.Data) < batchBytes {
			t.Errorf("batch %d sent at %d bytes, before it was full", i, len(f.Data))
		}
		if before := len(f.Data) - lastRecordBytes(t, f); before >= batchBytes {
			t.Errorf("batch %d held %d bytes before its last record", i, before)
		}
	}
}

// lastRecordBytes is the framed size of the last record of an encoded batch.
func lastRecordBytes(t *testing.T, f exchange.Frame) int {
	t.Helper()
	b, last := f.Data, 0
	for range f.Count {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			t.Fatal("bad framing")
		}
		last = k + int(n)
		b = b[last:]
	}
	return last
}

// Local channels pass []T batches of at most localBatch records.
func TestLocalBatches(t *testing.T) {
	st := records[string]{codec: stringCodec{}}
	emit, out, _, caps := newTestOutput(st, partForward, nil, 0, 128, []bool{true})
	var want []string
	for i := range 3*localBatch + 7 {
		want = append(want, fmt.Sprint(i))
		emit(fmt.Sprint(i))
	}
	if err := out.flush(); err != nil {
		t.Fatal(err)
	}
	if out.dirty() {
		t.Fatal("dirty after flush")
	}
	got, _ := caps[0].records(t, st)
	if !slices.Equal(got, want) {
		t.Fatalf("decoded %v", got)
	}
	var sizes []int
	for _, f := range caps[0].frames {
		if f.Data != nil || f.Count != len(f.Local.([]string)) {
			t.Fatalf("bad local frame: %d bytes, count %d", len(f.Data), f.Count)
		}
		sizes = append(sizes, f.Count)
	}
	if want := []int{localBatch, localBatch, localBatch, 7}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
}

func TestPartitioners(t *testing.T) {
	st := records[string]{codec: stringCodec{}}
	words := make([]string, 300)
	for i := range words {
		words[i] = fmt.Sprintf("w%d", i)
	}
	const maxP = 128
	t.Run("hash", func(t *testing.T) {
		keyHash := func() any {
			return func(s string) uint64 { return keygroup.Hash([]byte(strings.TrimPrefix(s, "w"))) }
		}
		for _, local := range [][]bool{{false, false, false}, {true, false, true}} {
			emit, out, _, caps := newTestOutput(st, partHash, keyHash, 1, maxP, local)
			for _, w := range words {
				emit(w)
			}
			if err := out.end(); err != nil {
				t.Fatal(err)
			}
			for i, c := range caps {
				got, _ := c.records(t, st)
				for _, w := range got {
					g := keygroup.Of(keygroup.Hash([]byte(strings.TrimPrefix(w, "w"))), maxP)
					if want := keygroup.Subtask(g, maxP, 3); want != i {
						t.Fatalf("%q on channel %d, its key group %d belongs to %d", w, i, g, want)
					}
				}
			}
		}
	})
	t.Run("rebalance", func(t *testing.T) {
		// Subtask 1 starts one past itself: subtasks spread their first
		// records over different consumers.
		emit, out, _, caps := newTestOutput(st, partRebalance, nil, 1, maxP, []bool{false, true, false, true})
		for _, w := range words[:10] {
			emit(w)
		}
		if err := out.flush(); err != nil {
			t.Fatal(err)
		}
		want := [][]string{{"w2", "w6"}, {"w3", "w7"}, {"w0", "w4", "w8"}, {"w1", "w5", "w9"}}
		for i, c := range caps {
			if got, _ := c.records(t, st); !slices.Equal(got, want[i]) {
				t.Errorf("channel %d got %v, want %v", i, got, want[i])
			}
		}
	})
	t.Run("broadcast", func(t *testing.T) {
		emit, out, _, caps := newTestOutput(st, partBroadcast, nil, 0, maxP, []bool{true, false, false})
		for _, w := range words {
			emit(w)
		}
		if err := out.end(); err != nil {
			t.Fatal(err)
		}
		for i, c := range caps {
			if got, ends := c.records(t, st); !slices.Equal(got, words) || ends != 1 {
				t.Errorf("channel %d got %d records and %d ends", i, len(got), ends)
			}
		}
	})
}

func TestOutputSendErrorFailsSubtask(t *testing.T) {
	st := records[string]{codec: stringCodec{}}
	emit, out, env, caps := newTestOutput(st, partForward, nil, 0, 128, []bool{true})
	boom := errors.New("peer gone")
	caps[0].err = boom
	emit("x")
	if err := out.flush(); !errors.Is(err, boom) {
		t.Fatalf("flush = %v", err)
	}
	if !errors.Is(env.err, boom) {
		t.Fatalf("subtask error %v", env.err)
	}
}

// encodeBatch frames records as typedOutput does on a remote channel.
func encodeBatch[T any](c Codec[T], vs []T) []byte {
	var b, scratch []byte
	for _, v := range vs {
		scratch = c.Append(scratch[:0], v)
		b = binary.AppendUvarint(b, uint64(len(scratch)))
		b = append(b, scratch...)
	}
	return b
}

// FuzzBatchDecoder feeds arbitrary batches to the decoder a consumer runs on
// remote frames: it must decode or fail with ErrDecode, never panic, and
// what it decodes must re-encode to a batch that decodes the same.
func FuzzBatchDecoder(f *testing.F) {
	f.Add(encodeBatch[string](stringCodec{}, []string{"a", "", "ccc"}), 3)
	f.Add(encodeBatch[string](stringCodec{}, []string{"a", "b"}), 3)
	f.Add(encodeBatch[string](stringCodec{}, []string{"a", "b"}), 1)
	f.Add(encodeBatch[int64](varintCodec{}, []int64{1, -1, 1 << 40}), 3)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1)
	f.Add([]byte{0x05, 'a'}, 1)
	f.Add([]byte{}, 0)
	f.Add([]byte{}, -3)
	f.Add([]byte{0}, 1<<40)
	f.Fuzz(func(t *testing.T, data []byte, count int) {
		checkBatch(t, records[string]{codec: stringCodec{}}, data, count, eqComparable[string])
		checkBatch(t, records[int64]{codec: varintCodec{}}, data, count, eqComparable[int64])
		checkBatch(t, records[[]byte]{codec: bytesCodec{}}, data, count, bytes.Equal)
	})
}

func checkBatch[T any](t *testing.T, st records[T], data []byte, count int, equal func(a, b T) bool) {
	t.Helper()
	var got []T
	dec := st.decoder(func(v T) { got = append(got, v) })
	err := dec(&exchange.Frame{Kind: exchange.KindRecords, Data: bytes.Clone(data), Count: count}, nil)
	if err != nil {
		if !errors.Is(err, ErrDecode) {
			t.Fatalf("decode error %v does not wrap ErrDecode", err)
		}
		return
	}
	if len(got) != max(count, 0) {
		t.Fatalf("decoded %d records from a batch of %d", len(got), count)
	}
	var again []T
	dec = st.decoder(func(v T) { again = append(again, v) })
	if err := dec(&exchange.Frame{Kind: exchange.KindRecords, Data: encodeBatch(st.codec, got), Count: len(got)}, nil); err != nil {
		t.Fatalf("re-encoded batch does not decode: %v", err)
	}
	if !slices.EqualFunc(got, again, equal) {
		t.Fatalf("decoded %v, re-encoded batch decodes to %v", got, again)
	}
}

// kinds lists a channel's frames as "r<count>" for a batch, followed by
// "@<at>w<ts>" for each watermark in it, "w<ts>" for a watermark frame,
// "i<ts>" for an idle marker and "end".
func (c *captureSender) kinds() []string {
	var ks []string
	for _, f := range c.frames {
		switch {
		case f.Kind == exchange.KindRecords:
			k := fmt.Sprintf("r%d", f.Count)
			for _, m := range f.Marks {
				k += fmt.Sprintf("@%dw%d", m.At, m.Timestamp)
			}
			ks = append(ks, k)
		case f.Kind == exchange.KindWatermark && f.Idle:
			ks = append(ks, fmt.Sprintf("i%d", f.Timestamp))
		case f.Kind == exchange.KindWatermark:
			ks = append(ks, fmt.Sprintf("w%d", f.Timestamp))
		default:
			ks = append(ks, f.Kind.String())
		}
	}
	return ks
}

// A watermark does not flush a partial batch: it goes into the batch at its
// place among the records (newer ones at the same place replace it), and
// out with the batch when it fills or is flushed; the consumer's decoder
// hands it over at that place. A channel without records sends it as a
// watermark frame at the flush. A channel quiet for a whole watermark
// interval sends its batch at the second watermark after its last record.
// The idle marker and the final watermark flush at once.
func TestWatermarkGoesInBandWithoutFlushing(t *testing.T) {
	for _, local := range []bool{true, false} {
		t.Run(fmt.Sprint("local=", local), func(t *testing.T) {
			st := records[string]{codec: stringCodec{}}
			// Broadcast to two channels: every record reaches both.
			emit, out, _, caps := newTestOutput(st, partBroadcast, nil, 0, 128, []bool{local, local})
			wm := func(ts int64, idle bool) {
				t.Helper()
				if err := out.watermark(ts, idle); err != nil {
					t.Fatal(err)
				}
			}
			flush := func() {
				t.Helper()
				if err := out.flush(); err != nil {
					t.Fatal(err)
				}
				if out.dirty() {
					t.Fatal("dirty after flush")
				}
			}
			check := func(what string, want ...string) {
				t.Helper()
				for i, c := range caps {
					if got := c.kinds(); !slices.Equal(got, want) {
						t.Fatalf("%s: channel %d sent %v, want %v", what, i, got, want)
					}
				}
			}
			wm(0, false)
			wm(1, false)
			if !out.dirty() {
				t.Fatal("a watermark waiting must make the output dirty (the flush deadline sends it)")
			}
			check("watermark on empty channels")
			flush()
			check("after flush", "w1")

			emit("a")
			wm(2, false)
			emit("b")
			emit("c")
			wm(4, false)
			check("watermarks in a partial batch", "w1")
			flush()
			check("after second flush", "w1", "r3@1w2@3w4")

			// The consumer gets every watermark at its place.
			var got []string
			dec := st.decoder(func(v string) { got = append(got, v) })
			f := caps[0].frames[1]
			if err := dec(&f, func(ts int64) { got = append(got, fmt.Sprint(ts)) }); err != nil {
				t.Fatal(err)
			}
			if want := []string{"a", "2", "b", "c", "4"}; !slices.Equal(got, want) {
				t.Fatalf("decoded %v, want %v", got, want)
			}

			// Nothing after a record for a whole watermark interval: the
			// batch goes at the second watermark, not at the deadline.
			emit("d")
			wm(5, false)
			check("one watermark after a record", "w1", "r3@1w2@3w4")
			wm(6, false)
			check("quiet channel", "w1", "r3@1w2@3w4", "r1@1w6")

			// A watermark before any record of the batch sits at 0; a full
			// batch takes its watermarks along.
			wm(7, false)
			for len(caps[0].frames) == 3 {
				emit("x")
			}
			if got := caps[0].kinds()[3]; !strings.HasPrefix(got, "r") || !strings.HasSuffix(got, "@0w7") {
				t.Fatalf("full batch sent as %s, want it to carry watermark 7 at 0", got)
			}

			// The idle marker flushes what waits and goes out at once.
			emit("y")
			wm(8, false)
			wm(8, true)
			check("idle marker", append(caps[1].kinds()[:4], "r1@1w8", "i8")...)
			if out.dirty() {
				t.Fatal("dirty after the idle marker")
			}
			emit("z")
			wm(watermark.Max, false)
			check("final watermark", append(caps[1].kinds()[:6], "r1", fmt.Sprintf("w%d", watermark.Max))...)
		})
	}
}

// A remote channel's encoded batches share one buffer, emptied after each
// Send (a remote sender is done with it then); a buffer that a large record
// grew is dropped rather than kept.
func TestEncodedBatchBufferReused(t *testing.T) {
	st := records[string]{codec: stringCodec{}}
	env := &subtaskEnv{ctx: context.Background(), maxParallelism: 128}
	sent := &bufferSender{}
	emit, out := st.newOutput(env, []outEdge{{part: partForward, senders: []exchange.Sender{sent}, local: []bool{false}}})
	for i := range 10000 {
		emit.(func(string))(fmt.Sprintf("record-%d", i))
	}
	emit.(func(string))(strings.Repeat("L", 3*batchBytes))
	emit.(func(string))("after")
	if err := out.flush(); err != nil {
		t.Fatal(err)
	}
	n := len(sent.bufs)
	if n < 4 {
		t.Fatalf("%d batches sent, want several", n)
	}
	for i := 1; i < n-2; i++ {
		if sent.bufs[i] != sent.bufs[0] {
			t.Fatalf("batch %d has a buffer of its own, want the first one's again", i)
		}
	}
	// The large record grew the buffer (a new array), which then goes.
	if grown := sent.bufs[n-2]; grown == sent.bufs[0] || sent.bufs[n-1] == grown {
		t.Fatal("the buffer the large record grew was kept for the next batch")
	}
}

// bufferSender records where each batch's bytes live.
type bufferSender struct{ bufs []*byte }

func (b *bufferSender) Send(_ context.Context, f exchange.Frame) error {
	if len(f.Data) > 0 {
		b.bufs = append(b.bufs, &f.Data[:1][0])
	}
	return nil
}

func (b *bufferSender) Close() error { return nil }
