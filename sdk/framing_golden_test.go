package sdk

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/weir-run/weir/internal/state"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// The golden byte strings below are written out by hand from each format
// (zig-zag varints, uvarints, uvarint-length-prefixed bytes), not produced
// by the code under test: state, checkpoints and savepoints written by one
// version must restore in another, so the bytes themselves are pinned, and
// each test reads them back as well as writing them.

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkGolden(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if w := unhex(t, want); !bytes.Equal(got, w) {
		t.Errorf("%s = %x, want %x", what, got, w)
	}
}

func TestIntCodecsGolden(t *testing.T) {
	for _, c := range []struct {
		v    int64
		want string
	}{{0, "00"}, {-1, "01"}, {1, "02"}, {300, "d804"}, {math.MinInt64, "ffffffffffffffffff01"}} {
		checkGolden(t, "VarintCodec", VarintCodec[int64]{}.Append([]byte{0xee}, c.v), "ee"+c.want)
		if v, err := (VarintCodec[int64]{}).Decode(unhex(t, c.want)); err != nil || v != c.v {
			t.Errorf("VarintCodec.Decode(%s) = %d, %v, want %d", c.want, v, err, c.v)
		}
	}
	for _, c := range []struct {
		v    uint64
		want string
	}{{0, "00"}, {300, "ac02"}, {math.MaxUint64, "ffffffffffffffffff01"}} {
		checkGolden(t, "UvarintCodec", UvarintCodec[uint64]{}.Append([]byte{0xee}, c.v), "ee"+c.want)
		if v, err := (UvarintCodec[uint64]{}).Decode(unhex(t, c.want)); err != nil || v != c.v {
			t.Errorf("UvarintCodec.Decode(%s) = %d, %v, want %d", c.want, v, err, c.v)
		}
	}
	if _, err := (UvarintCodec[uint8]{}).Decode(unhex(t, "ac02")); !errors.Is(err, ErrDecode) {
		t.Errorf("uint8 decode of 300: %v", err)
	}
}

func TestSavedWatermarkGolden(t *testing.T) {
	for _, c := range []struct {
		w    savedWatermark
		want string
	}{
		{savedWatermark{wm: -1}, "01"},
		{savedWatermark{wm: math.MinInt64}, "ffffffffffffffffff01"},
		{savedWatermark{wm: 300, start: 0, end: 64, ranged: true}, "01 00 40 d804"},
		{savedWatermark{wm: -1, start: 64, end: 128, ranged: true}, "01 40 8001 01"},
	} {
		checkGolden(t, "savedWatermark.encode", c.w.encode(), c.want)
		if got, err := decodeSavedWatermark(unhex(t, c.want)); err != nil || got != c.w {
			t.Errorf("decodeSavedWatermark(%s) = %+v, %v, want %+v", c.want, got, err, c.w)
		}
	}
	for _, bad := range []string{"", "80", "01 00 40", "02 00 40 00", "01 40 40 00", "01 00 40 d804 00"} {
		if w, err := decodeSavedWatermark(unhex(t, bad)); !errors.Is(err, errCorruptWatermark) {
			t.Errorf("decodeSavedWatermark(%s) = %+v, %v", bad, w, err)
		}
	}
}

func TestTrigStateGolden(t *testing.T) {
	st := trigState{count: 3, fires: 1, procAt: 300, prev: [][]byte{[]byte("x"), {}}}
	const want = "06 02 d804 0178 00"
	checkGolden(t, "trigState.encode", st.encode([]byte{}), want)
	got, err := decodeTrigState(unhex(t, want))
	if err != nil || got.count != 3 || got.fires != 1 || got.procAt != 300 || len(got.prev) != 2 ||
		string(got.prev[0]) != "x" || len(got.prev[1]) != 0 {
		t.Errorf("decodeTrigState = %+v, %v", got, err)
	}
	if got, err := decodeTrigState(unhex(t, "00 00 00")); err != nil || got.prev != nil {
		t.Errorf("decodeTrigState of no panes = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "06 02", "06 02 d8", "06 02 00 05 78"} {
		if _, err := decodeTrigState(unhex(t, bad)); !errors.Is(err, errCorruptTrigger) {
			t.Errorf("decodeTrigState(%s) = %v", bad, err)
		}
	}
}

func TestSessionsGolden(t *testing.T) {
	ss := []session{{TimeWindow{1, 5}, TimeWindow{2, 5}}, {TimeWindow{-10, 7}, TimeWindow{-10, 7}}}
	const want = "02 0a 04 0a 13 0e 13 0e"
	checkGolden(t, "encodeSessions", encodeSessions([]byte{}, ss), want)
	got, err := decodeSessions(unhex(t, want), nil)
	if err != nil || !slices.Equal(got, ss) {
		t.Errorf("decodeSessions = %v, %v", got, err)
	}
	for _, bad := range []string{"02 0a 04", "02 0a 04 8a", "0a 02 04 0a"} {
		if _, err := decodeSessions(unhex(t, bad), nil); !errors.Is(err, errCorruptWindow) {
			t.Errorf("decodeSessions(%s) = %v", bad, err)
		}
	}
}

func TestLateRecordGolden(t *testing.T) {
	c := lateRecordCodec[string]{StringCodec{}}
	l := LateRecord[string]{Value: "b", Timestamp: 5, Window: TimeWindow{-10, 60}, Watermark: 99}
	const want = "0a 13 78 c601 62"
	checkGolden(t, "lateRecordCodec.Append", c.Append([]byte{}, l), want)
	if got, err := c.Decode(unhex(t, want)); err != nil || got != l {
		t.Errorf("lateRecordCodec.Decode = %+v, %v", got, err)
	}
	if _, err := c.Decode(unhex(t, "0a 13 78")); !errors.Is(err, ErrDecode) {
		t.Errorf("short late record: %v", err)
	}
}

func TestJoinGolden(t *testing.T) {
	c := joinBufCodec[string, int64]{a: StringCodec{}, b: VarintCodec[int64]{}}
	j := joinBuf[string, int64]{first: []string{"a", ""}, second: []int64{-3}}
	const want = "02 0161 00 0105"
	checkGolden(t, "joinBufCodec.Append", c.Append([]byte{}, j), want)
	got, err := c.Decode(unhex(t, want))
	if err != nil || !slices.Equal(got.first, j.first) || !slices.Equal(got.second, j.second) {
		t.Errorf("joinBufCodec.Decode = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "04 0161 00 0105", "02 0161 05"} {
		if _, err := c.Decode(unhex(t, bad)); !errors.Is(err, errCorruptJoin) {
			t.Errorf("joinBufCodec.Decode(%s) = %v", bad, err)
		}
	}

	// Interval join buffers: frame length, then the varint time and the
	// record's bytes inside the frame.
	const buffered = "03 09 6162 06 808080808040"
	checkGolden(t, "appendBuffered", appendBuffered(appendBuffered([]byte{}, -5, []byte("ab")), 1<<40, nil), buffered)
	var tss []int64
	var recs []string
	if err := decodeBuffered(unhex(t, buffered), func(ts int64, rec []byte) error {
		tss, recs = append(tss, ts), append(recs, string(rec))
		return nil
	}); err != nil || !slices.Equal(tss, []int64{-5, 1 << 40}) || !slices.Equal(recs, []string{"ab", ""}) {
		t.Errorf("decodeBuffered = %v %q, %v", tss, recs, err)
	}
	for _, bad := range []string{"03 09 61", "00", "01 80"} {
		if err := decodeBuffered(unhex(t, bad), func(int64, []byte) error { return nil }); !errors.Is(err, errCorruptJoin) {
			t.Errorf("decodeBuffered(%s) = %v", bad, err)
		}
	}
}

func TestGenSplitGolden(t *testing.T) {
	g := &generator[int64]{n: 100, splits: []genSplit{{next: 5, step: 3}, {next: 100, step: 1}, {next: -70, step: 300}}}
	items, err := g.SnapshotSplits()
	if err != nil || len(items) != 2 {
		t.Fatalf("SnapshotSplits = %x, %v; want the two unfinished splits", items, err)
	}
	checkGolden(t, "split 0", items[0], "0a 06")
	checkGolden(t, "split 1", items[1], "8b01 d804")
	for i, want := range []genSplit{{5, 3}, {-70, 300}} {
		if got, err := decodeGenSplit(items[i]); err != nil || got != want {
			t.Errorf("decodeGenSplit(%x) = %+v, %v", items[i], got, err)
		}
	}
	for _, bad := range []string{"", "0a", "0a 00", "0a 01", "80 06"} {
		if _, err := decodeGenSplit(unhex(t, bad)); err == nil {
			t.Errorf("decodeGenSplit(%s) succeeded", bad)
		}
	}
}

// goldenStore is a StateStore over a memory backend, scoped to key "k".
func goldenStore(t testing.TB) (*StateStore, *state.Memory) {
	b := state.NewMemory()
	s := newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: b, UID: "op"}))
	on(s, "k")
	return s, b
}

// goldenKey is the backend key of state name's entry for s's key "k".
func goldenKey(s *StateStore, name, suffix string) []byte {
	k := binary.BigEndian.AppendUint16(nil, uint16(s.group))
	return append(append(k, "op\x00"+name+"\x00\x01k"...), suffix...)
}

func TestStateGolden(t *testing.T) {
	long := strings.Repeat("y", 200)
	checkGolden(t, "appendStateKey", appendStateKey([]byte{}, 300, []byte("op\x00v\x00"), []byte("k")), "012c 6f70 00 76 00 01 6b")
	checkGolden(t, "appendStateKey", appendStateKey([]byte{}, 1, []byte("p\x00"), []byte(long))[:6], "0001 70 00 c801")

	s, b := goldenStore(t)
	l := NewListState[string](s, "l")
	l.Add("a")
	l.Add("bc")
	l.Add(long)
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	// One entry per element (0x01, its number), and the range of numbers
	// in use with the old-entry flag (0x00: first, next, legacy).
	for suffix, want := range map[string][]byte{
		"\x00":                                 {0, 3, 0},
		"\x01\x00\x00\x00\x00\x00\x00\x00\x00": []byte("a"),
		"\x01\x00\x00\x00\x00\x00\x00\x00\x01": []byte("bc"),
		"\x01\x00\x00\x00\x00\x00\x00\x00\x02": []byte(long),
	} {
		if got, ok, _ := b.Get(goldenKey(s, "l", suffix)); !ok || !bytes.Equal(got, want) {
			t.Errorf("list entry %x = %x, want %x", suffix, got, want)
		}
	}
	// A list written whole by an older version reads back, before the
	// elements added since; RemoveIf rewrites it.
	asRestored(l)
	l.Clear()
	b.Set(goldenKey(s, "l", ""), unhex(t, "0178 00 027979"))
	l.Add("z")
	if vs, err := l.Get(); err != nil || !slices.Equal(vs, []string{"x", "", "yy", "z"}) {
		t.Errorf("golden list = %q, %v", vs, err)
	}
	if n, err := l.RemoveIf(func(v string) bool { return v == "" }); n != 1 || err != nil {
		t.Errorf("RemoveIf = %d, %v", n, err)
	}
	if got, ok, _ := b.Get(goldenKey(s, "l", "")); !ok || !bytes.Equal(got, unhex(t, "0178 027979")) {
		t.Errorf("rewritten old list entry = %x", got)
	}

	// Entries of any key read back from the backend's bytes: the key is
	// length-prefixed, the suffix (a map key here) follows.
	m := NewMapState[string, int64](s, "m")
	b.Set(goldenKey(s, "m", "x"), unhex(t, "d804"))
	var keys, suffixes []string
	var vals []int64
	err := m.h.scanEntries(func(key, suffix, val []byte) error {
		v, err := VarintCodec[int64]{}.Decode(val)
		keys, suffixes, vals = append(keys, string(key)), append(suffixes, string(suffix)), append(vals, v)
		return err
	})
	if err != nil || !slices.Equal(keys, []string{"k"}) || !slices.Equal(suffixes, []string{"x"}) || !slices.Equal(vals, []int64{300}) {
		t.Errorf("scanEntries = %q %q %v, %v", keys, suffixes, vals, err)
	}
	m.Put("y", -1)
	if err := s.flush(); err != nil { // map entries live in memory until then
		t.Fatal(err)
	}
	if got, ok, _ := b.Get(goldenKey(s, "m", "y")); !ok || !bytes.Equal(got, []byte{1}) {
		t.Errorf("map entry = %x", got)
	}
	bad := append(binary.BigEndian.AppendUint16(nil, uint16(s.group)), "op\x00m\x00\x05k"...)
	b.Set(bad, nil)
	if err := m.h.scanEntries(func(key, suffix, val []byte) error { return nil }); !errors.Is(err, runtime.ErrCorruptItems) {
		t.Errorf("scanEntries over a key longer than its entry: %v", err)
	}
}

func TestTimerGolden(t *testing.T) {
	s, b := goldenStore(t)
	ts, err := newTimerService(s.env, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.register(EventTime, 5, []byte("ns")); err != nil {
		t.Fatal(err)
	}
	// Timers reach the backend when the operator snapshots.
	if err := ts.writeBack(); err != nil {
		t.Fatal(err)
	}
	// Domain, time with the sign bit flipped (big-endian), namespace.
	const suffix = "00 8000000000000005 6e73"
	if _, ok, _ := b.Get(goldenKey(s, "\x00timers", string(unhex(t, suffix)))); !ok {
		t.Errorf("no timer entry at the golden key")
	}

	// A timer written by another version is loaded on restore.
	b.Set(goldenKey(s, "\x00timers", string(unhex(t, "01 8000000000000007"))), nil)
	s2 := newStateStore(s.env)
	ts2, err := newTimerService(s.env, s2)
	if err != nil {
		t.Fatal(err)
	}
	var restored []string
	for _, k := range liveTimers(ts2) {
		restored = append(restored, fmt.Sprintf("%s %s %d %q", k.k.enc, k.d, k.ts, k.ns))
	}
	slices.Sort(restored)
	if want := []string{"k event-time 5 \"ns\"", "k processing-time 7 \"\""}; !slices.Equal(restored, want) {
		t.Errorf("restored timers %q, want %q", restored, want)
	}
}
