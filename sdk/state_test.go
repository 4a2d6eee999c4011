package sdk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/state"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// stores returns a StateStore over each backend.
func stores(t *testing.T) map[string]*StateStore {
	db, err := pebblestate.Open(pebblestate.Options{Dir: t.TempDir(), CacheBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	out := map[string]*StateStore{}
	for name, b := range map[string]state.Backend{"memory": state.NewMemory(), "pebble": db} {
		env := runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: b, UID: "op"})
		out[name] = newStateStore(env)
	}
	return out
}

func on(s *StateStore, key string) { scopeTo[string](s, StringCodec{}, key) }

func TestKeyedStateKinds(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			v := NewValueState[int64](s, "v")
			l := NewListState[string](s, "l")
			m := NewMapState[string, int](s, "m")
			r := NewReducingState[int](s, "r", func(a, b int) int { return a + b })
			a := NewAggregatingState[string](s, "a", Count[string]())

			// "a" is a prefix of "ab": their entries must not mix.
			for _, k := range []string{"a", "ab"} {
				on(s, k)
				v.Set(int64(len(k)))
				l.Add(k + "1")
				l.Add(k + "2")
				m.Put("x", len(k))
				m.Put("y", 10*len(k))
				r.Add(3)
				r.Add(4)
				a.Add(k)
			}
			on(s, "a")
			if x, ok, err := v.Get(); err != nil || !ok || x != 1 {
				t.Fatalf("value of a = %v %v %v", x, ok, err)
			}
			if got, _ := l.Get(); !slices.Equal(got, []string{"a1", "a2"}) {
				t.Fatalf("list of a = %v", got)
			}
			var entries []string
			m.Entries(func(k string, v int) error { entries = append(entries, fmt.Sprint(k, "=", v)); return nil })
			if !slices.Equal(entries, []string{"x=1", "y=10"}) {
				t.Fatalf("map of a = %v", entries)
			}
			if x, _, _ := r.Get(); x != 7 {
				t.Fatalf("reducing = %d", x)
			}
			if n, _, _ := a.Get(); n != 1 {
				t.Fatalf("aggregating = %d", n)
			}
			m.Delete("x")
			if _, ok, _ := m.Get("x"); ok {
				t.Fatal("deleted map entry still there")
			}
			m.Clear()
			l.Clear()
			v.Clear()
			on(s, "ab")
			if got, _ := l.Get(); !slices.Equal(got, []string{"ab1", "ab2"}) {
				t.Fatalf("clearing a touched ab: %v", got)
			}
			if y, ok, _ := m.Get("y"); !ok || y != 20 {
				t.Fatalf("clearing a touched ab's map: %v %v", y, ok)
			}
			on(s, "a")
			if _, ok, _ := v.Get(); ok {
				t.Fatal("cleared value still there")
			}
		})
	}
}

func TestStateTTL(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			v := NewValueState[string](s, "v", WithTTL(50*time.Millisecond))
			on(s, "k")
			v.Set("fresh")
			if x, ok, _ := v.Get(); !ok || x != "fresh" {
				t.Fatalf("before expiry: %q %v", x, ok)
			}
			time.Sleep(120 * time.Millisecond)
			if x, ok, err := v.Get(); ok || err != nil {
				t.Fatalf("after expiry: %q %v %v", x, ok, err)
			}
		})
	}
}

func TestStateDeclaredTwicePanics(t *testing.T) {
	s := stores(t)["memory"]
	NewValueState[int](s, "dup")
	defer func() {
		if err, _ := recover().(error); !errors.Is(err, ErrStateDeclared) {
			t.Fatalf("recovered %v, want ErrStateDeclared", err)
		}
	}()
	NewListState[int](s, "dup")
}

// Map state behaves as a map of maps, over random operations and keys.
func TestMapStateProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		db, err := pebblestate.Open(pebblestate.Options{Dir: t.TempDir(), CacheBytes: int64(rapid.IntRange(-1, 2048).Draw(rt, "cache"))})
		if err != nil {
			rt.Fatal(err)
		}
		defer db.Close()
		s := newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: db, UID: "op"}))
		m := NewMapState[string, int](s, "m")
		model := map[string]map[string]int{}
		keys := []string{"", "a", "ab", "b", "k1", "k10"}
		for i := range rapid.IntRange(1, 200).Draw(rt, "ops") {
			k := rapid.SampledFrom(keys).Draw(rt, "key")
			uk := rapid.SampledFrom(keys).Draw(rt, "mapkey")
			on(s, k)
			if model[k] == nil {
				model[k] = map[string]int{}
			}
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0, 1:
				m.Put(uk, i)
				model[k][uk] = i
			case 2:
				m.Delete(uk)
				delete(model[k], uk)
			case 3:
				m.Clear()
				clear(model[k])
			}
		}
		for _, k := range keys {
			on(s, k)
			got := map[string]int{}
			if err := m.Entries(func(uk string, v int) error { got[uk] = v; return nil }); err != nil {
				rt.Fatal(err)
			}
			want := model[k]
			if want == nil {
				want = map[string]int{}
			}
			if !maps.Equal(got, want) {
				rt.Fatalf("key %q: map %v, want %v", k, got, want)
			}
		}
	})
}

// KeyedProcess with a ValueState counts per key exactly, at any parallelism.
func TestKeyedProcessWithState(t *testing.T) {
	for _, p := range []int{1, 3} {
		pipe := NewPipeline("process", p)
		src := Generate(pipe, 1000, func(i int64) int64 { return i })
		counts := KeyedProcess(KeyBy(src, func(i int64) int64 { return i % 7 }),
			func(s *StateStore) (func(key, v int64, emit func(KV[int64, int64])) error, error) {
				n := NewValueState[int64](s, "n")
				return func(key, v int64, emit func(KV[int64, int64])) error {
					c, _, err := n.Get()
					if err != nil {
						return err
					}
					c++
					emit(KV[int64, int64]{Key: key, Value: c})
					return n.Set(c)
				}, nil
			})
		var b bag[KV[int64, int64]]
		b.sinkTo(counts)
		if err := runPipeline(context.Background(), pipe); err != nil {
			t.Fatal(err)
		}
		last := map[int64]int64{}
		for _, kv := range b.items() {
			last[kv.Key] = max(last[kv.Key], kv.Value)
		}
		for k := range int64(7) {
			want := int64(1000 / 7)
			if k < 1000%7 {
				want++
			}
			if last[k] != want {
				t.Fatalf("p=%d key %d counted to %d, want %d", p, k, last[k], want)
			}
		}
	}
}
