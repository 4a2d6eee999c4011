package sdk

import (
	"testing"
)

// Micro-benchmarks of the framing on the per-record paths (codecs, state
// keys, timers, window and join state), so that a change to the framing
// shows up as ns/op and allocs/op here before it shows up in a job.

var sinkInt int64

func BenchmarkVarintCodec(b *testing.B) {
	c := VarintCodec[int64]{}
	buf := c.Append(nil, -1<<40)
	b.ReportAllocs()
	for range b.N {
		buf = c.Append(buf[:0], -1<<40)
		v, err := c.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
		sinkInt += v
	}
}

func BenchmarkUvarintCodec(b *testing.B) {
	c := UvarintCodec[uint64]{}
	buf := c.Append(nil, 1<<40)
	b.ReportAllocs()
	for range b.N {
		buf = c.Append(buf[:0], 1<<40)
		v, err := c.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
		sinkInt += int64(v)
	}
}

// BenchmarkStateKey: a state entry's backend key, built per access.
func BenchmarkStateKey(b *testing.B) {
	s, _ := goldenStore(b)
	h := NewValueState[int64](s, "v").h
	b.ReportAllocs()
	for range b.N {
		sinkInt += int64(len(h.entry(nil)))
	}
}

// BenchmarkStateScanEntries: reading every entry's key back, as the
// aggregations and the timer restore do, per entry.
func BenchmarkStateScanEntries(b *testing.B) {
	s, _ := goldenStore(b)
	v := NewValueState[int64](s, "v")
	for i := range 1000 {
		on(s, "key-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		v.Set(int64(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 1000 {
		if err := v.h.scanEntries(func(key, suffix, val []byte) error { sinkInt += int64(len(key)); return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWindowSessions: a key's session set, read and rewritten per
// record of a session window.
func BenchmarkWindowSessions(b *testing.B) {
	ss := []session{{TimeWindow{1_700_000_000_000, 1_700_000_002_000}, TimeWindow{1_700_000_000_000, 1_700_000_002_000}},
		{TimeWindow{1_700_000_005_000, 1_700_000_009_000}, TimeWindow{1_700_000_005_000, 1_700_000_007_000}}}
	buf := encodeSessions(nil, ss)
	into := make([]session, 0, 4)
	b.ReportAllocs()
	for range b.N {
		got, err := decodeSessions(buf, into)
		if err != nil {
			b.Fatal(err)
		}
		buf = encodeSessions(buf[:0], got)
	}
}

// BenchmarkWindowTrigState: a window's trigger state, per record of a
// window with a count or early trigger.
func BenchmarkWindowTrigState(b *testing.B) {
	buf := trigState{count: 41, fires: 2, procAt: 1_700_000_000_000}.encode(nil)
	b.ReportAllocs()
	for range b.N {
		st, err := decodeTrigState(buf)
		if err != nil {
			b.Fatal(err)
		}
		st.count++
		buf = st.encode(buf[:0])
	}
}

// BenchmarkWindowLateRecord: the late side output's codec.
func BenchmarkWindowLateRecord(b *testing.B) {
	c := lateRecordCodec[int64]{VarintCodec[int64]{}}
	l := LateRecord[int64]{Value: 7, Timestamp: 1_700_000_000_000, Window: TimeWindow{1_699_999_990_000, 1_700_000_000_000}, Watermark: 1_700_000_001_000}
	buf := c.Append(nil, l)
	b.ReportAllocs()
	for range b.N {
		got, err := c.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
		buf = c.Append(buf[:0], got)
	}
}

// BenchmarkJoinBuffered: an interval join's buffer of 16 records, read per
// cleanup.
func BenchmarkJoinBuffered(b *testing.B) {
	var buf []byte
	for i := range int64(16) {
		buf = appendBuffered(buf, 1_700_000_000_000+i, []byte("record-payload"))
	}
	b.ReportAllocs()
	for range b.N {
		if err := decodeBuffered(buf, func(ts int64, rec []byte) error { sinkInt += ts; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoinBufCodec: a window join's contents (8 + 8 records).
func BenchmarkJoinBufCodec(b *testing.B) {
	c := joinBufCodec[int64, int64]{a: VarintCodec[int64]{}, b: VarintCodec[int64]{}}
	j := joinBuf[int64, int64]{first: []int64{1, 2, 3, 4, 5, 6, 7, 8}, second: []int64{-1, -2, -3, -4, -5, -6, -7, -8}}
	buf := c.Append(nil, j)
	b.ReportAllocs()
	for range b.N {
		got, err := c.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
		buf = c.Append(buf[:0], got)
	}
}
