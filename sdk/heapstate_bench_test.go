package sdk

import (
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
