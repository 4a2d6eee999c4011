package sdk

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/state"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// The per-operation costs of keyed state and timers, as a record of a
// stateful query pays them: 10k int64 keys, round robin.
const benchKeys = 10_000

// benchStore is a StateStore over Pebble (as when the job checkpoints) or
// memory.
func benchStore(b *testing.B, pebble bool) *StateStore {
	var be state.Backend = state.NewMemory()
	if pebble {
		db, err := pebblestate.Open(pebblestate.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		be = db
	}
	return newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: be, UID: "op"}))
}

// BenchmarkScopeTo: scoping the store to a record's key, as every record of
// a keyed operator does, when the key holds state (is interned).
func BenchmarkScopeTo(b *testing.B) {
	s := benchStore(b, false)
	v := NewValueState[int64](s, "n")
	for k := range int64(benchKeys) {
		scopeTo[int64](s, VarintCodec[int64]{}, k)
		if err := v.Set(k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := range b.N {
		scopeTo[int64](s, VarintCodec[int64]{}, int64(i%benchKeys))
	}
	if s.cur == nil {
		b.Fatal("key not interned")
	}
}

// BenchmarkValueStateUpdate: a Get and a Set of a key's counter.
func BenchmarkValueStateUpdate(b *testing.B) {
	for _, be := range []struct {
		name   string
		pebble bool
	}{{"memory", false}, {"pebble", true}} {
		b.Run(be.name, func(b *testing.B) {
			s := benchStore(b, be.pebble)
			v := NewValueState[int64](s, "n")
			b.ReportAllocs()
			for i := range b.N {
				scopeTo[int64](s, VarintCodec[int64]{}, int64(i%benchKeys))
				c, _, err := v.Get()
				if err != nil {
					b.Fatal(err)
				}
				if err := v.Set(c + 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPaneLookupLargeState: a Get and a Put of one of a key's five
// entries (as a window finds one of a key's panes), over 200k keys in
// random order: state that does not fit in a core's cache, so the lookup
// costs its cache misses, from the interned key to its cells.
func BenchmarkPaneLookupLargeState(b *testing.B) {
	const keys, panes = 200_000, 5
	s := benchStore(b, false)
	m := NewMapState[int64, int64](s, "panes")
	for k := range int64(keys) {
		scopeTo[int64](s, VarintCodec[int64]{}, k)
		for p := range int64(panes) {
			if err := m.Put(p, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		scopeTo[int64](s, VarintCodec[int64]{}, rng.Int64N(keys))
		p := rng.Int64N(panes)
		n, _, err := m.Get(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Put(p, n+1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListStateWaiting: a key's list as a join's waiting side uses it
// (q4's bids waiting for their auction): each op is an Add, and every
// fourth Add to a key is followed by a Get and a Clear. In heap cells
// (without a TTL) and in the backend's entries (inBackend: the TTL path
// without expiry), both over Pebble, with a checkpoint every 1M ops.
func BenchmarkListStateWaiting(b *testing.B) {
	for _, heap := range []bool{true, false} {
		name := "heap"
		if !heap {
			name = "backend"
		}
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, true)
			l := NewListState[int64](s, "waiting")
			if !heap {
				inBackend(l)
			}
			b.ReportAllocs()
			for i := range b.N {
				scopeTo[int64](s, VarintCodec[int64]{}, int64(i%benchKeys))
				if err := l.Add(int64(i)); err != nil {
					b.Fatal(err)
				}
				if (i/benchKeys)%4 == 3 {
					vs, err := l.Get()
					if err != nil || len(vs) != 4 {
						b.Fatalf("Get = %d elements, %v; want 4", len(vs), err)
					}
					if err := l.Clear(); err != nil {
						b.Fatal(err)
					}
				}
				if i%(1<<20) == 0 {
					if err := s.flush(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkMapStatePutDelete: a map entry put and deleted again, as a
// per-window index of a key (q5's hot items) does.
func BenchmarkMapStatePutDelete(b *testing.B) {
	s := benchStore(b, true)
	m := NewMapState[int64, int64](s, "m")
	b.ReportAllocs()
	for i := range b.N {
		scopeTo[int64](s, VarintCodec[int64]{}, int64(i%benchKeys))
		if err := m.Put(int64(i&3), int64(i)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := m.Get(int64(i & 3)); err != nil {
			b.Fatal(err)
		}
		if err := m.Delete(int64(i & 3)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTimerSetFire: an event-time timer set for a key at the end of
// its 10 s window (every key's timers share the window's end), and fired
// when the watermark passes it.
func BenchmarkTimerSetFire(b *testing.B) {
	s := benchStore(b, true)
	ts, err := newTimerService(s.env, s)
	if err != nil {
		b.Fatal(err)
	}
	fired := 0
	onFire := func(int64, []byte) error { fired++; return nil }
	ns := appendNS(nil, TimeWindow{0, 10_000})
	b.ReportAllocs()
	for i := range b.N {
		scopeTo[int64](s, VarintCodec[int64]{}, int64(i%benchKeys))
		window := int64(i / benchKeys)
		if err := ts.register(EventTime, window*10_000+9_999, ns); err != nil {
			b.Fatal(err)
		}
		if i%benchKeys == benchKeys-1 {
			if err := ts.fire(EventTime, window*10_000+9_999, onFire); err != nil {
				b.Fatal(err)
			}
		}
	}
	if fired != b.N/benchKeys*benchKeys {
		b.Fatalf("fired %d of %d", fired, b.N)
	}
}

// BenchmarkTimerDistinctTimes: timers that each fire at a time of their
// own, as q4's auctions close: every record sets one, ~100k are pending, and
// the watermark fires the earliest as it passes them, so each timer costs a
// push and a pop of the queue's heap of times.
func BenchmarkTimerDistinctTimes(b *testing.B) {
	s := benchStore(b, false)
	ts, err := newTimerService(s.env, s)
	if err != nil {
		b.Fatal(err)
	}
	const pending = 100_000
	rng := rand.New(rand.NewPCG(1, 2))
	fired := 0
	onFire := func(int64, []byte) error { fired++; return nil }
	b.ReportAllocs()
	for i := range b.N {
		scopeTo[int64](s, VarintCodec[int64]{}, int64(i%benchKeys))
		if err := ts.register(EventTime, int64(i)*8+rng.Int64N(2*pending*8), nil); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			if err := ts.fire(EventTime, int64(i-pending)*8, onFire); err != nil {
				b.Fatal(err)
			}
		}
	}
	if b.N > 4*pending && fired == 0 {
		b.Fatal("no timer fired")
	}
}

// BenchmarkSortTimers: ordering a window's bucket of timers, one per key
// (int keys, one namespace), by radix (sortTimers) and by comparisons.
func BenchmarkSortTimers(b *testing.B) {
	ns := string(appendNS(nil, TimeWindow{Start: 1_436_918_400_000, End: 1_436_918_410_000}))
	for _, n := range []int{128, 1000, 5000} {
		base := make([]*timer, n)
		for i := range base {
			enc := string(VarintCodec[int64]{}.Append(nil, int64(1000+rand.IntN(n*3))))
			base[i] = newTimer(&keyRef{enc: enc}, timerSlot{ns: ns}, 0, nil)
		}
		ts := make([]*timer, n)
		b.Run(fmt.Sprintf("radix/%d", n), func(b *testing.B) {
			var scratch []*timer
			for range b.N {
				copy(ts, base)
				scratch = sortTimers(ts, scratch)
			}
		})
		b.Run(fmt.Sprintf("compare/%d", n), func(b *testing.B) {
			for range b.N {
				copy(ts, base)
				slices.SortFunc(ts, compareTimers)
			}
		})
	}
}
