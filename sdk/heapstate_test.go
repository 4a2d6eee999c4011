package sdk

import (
	"bytes"
	"encoding/binary"
	"maps"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/internal/uvarintframe"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// heapSubtask is a subtask's keyed state as the runtime gives it: a
// backend, an env (restored from a checkpoint or fresh) and the store.
type heapSubtask struct {
	be    state.Backend
	store *StateStore
	v     *ValueState[string]
	m     *MapState[string, int]
}

// openStore opens the state store of operator "op" over be, as in a
// subtask that restored a checkpoint or not.
func openStore(be state.Backend, restored bool) *StateStore {
	var ts runtime.Restored
	if restored {
		m := &weirv1.CheckpointManifest{CheckpointId: 1, Subtasks: []*weirv1.SubtaskSnapshot{{
			Parallelism: 1, KeyGroupEnd: 128, Uids: []string{"op"}}}}
		ts, _ = runtime.Restore(m, "op", 0, 1, 128)
	}
	return newStateStore(runtime.NewEnv(runtime.EnvOptions{Parallelism: 1, MaxParallelism: 128, State: be, UID: "op", Restored: ts}))
}

// openHeapSubtask opens the states over be; restored says the subtask
// restored a checkpoint (its cells then know nothing of the backend).
func openHeapSubtask(be state.Backend, restored bool, budget int) *heapSubtask {
	s := openStore(be, restored)
	s.cellBudget = budget
	return &heapSubtask{be: be, store: s, v: NewValueState[string](s, "v"), m: NewMapState[string, int](s, "m")}
}

// Value and map state in memory behave as plain maps (the model), over
// random operations, snapshots, kills that restore the last snapshot,
// and cell budgets small enough that the cells spill to the backend
// (Pebble with a tiny cache of its own, or memory) and are read back.
func TestHeapStateProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		budget := rapid.IntRange(1, 40).Draw(rt, "budget")
		pebble := rapid.Bool().Draw(rt, "pebble")
		newBackend := func() state.Backend {
			if !pebble {
				return state.NewMemory()
			}
			db, err := pebblestate.Open(pebblestate.Options{Dir: t.TempDir(), CacheBytes: 1024})
			if err != nil {
				rt.Fatal(err)
			}
			return db
		}
		type model struct {
			vals map[string]string
			maps map[string]map[string]int
		}
		clone := func(m model) model {
			c := model{vals: maps.Clone(m.vals), maps: map[string]map[string]int{}}
			for k, mm := range m.maps {
				c.maps[k] = maps.Clone(mm)
			}
			return c
		}
		cur := model{vals: map[string]string{}, maps: map[string]map[string]int{}}
		var ck *model
		var ckEntries map[string][]byte
		sub := openHeapSubtask(newBackend(), false, budget)
		defer func() { sub.be.Close() }()
		keys := []string{"", "a", "ab", "b", "k1", "k10", "z"}
		for i := range rapid.IntRange(1, 250).Draw(rt, "ops") {
			k := rapid.SampledFrom(keys).Draw(rt, "key")
			uk := rapid.SampledFrom(keys[:4]).Draw(rt, "mapkey")
			on(sub.store, k)
			switch op := rapid.SampledFrom([]string{"set", "set", "get", "clear", "put", "put", "mget", "del", "mclear", "entries", "snapshot", "kill"}).Draw(rt, "op"); op {
			case "set":
				x := strings.Repeat("x", i%5)
				if err := sub.v.Set(x); err != nil {
					rt.Fatal(err)
				}
				cur.vals[k] = x
			case "get":
				x, ok, err := sub.v.Get()
				want, wok := cur.vals[k]
				if err != nil || ok != wok || x != want {
					rt.Fatalf("step %d: Get of %q = %q %v %v, want %q %v", i, k, x, ok, err, want, wok)
				}
			case "clear":
				if err := sub.v.Clear(); err != nil {
					rt.Fatal(err)
				}
				delete(cur.vals, k)
			case "put":
				if err := sub.m.Put(uk, i); err != nil {
					rt.Fatal(err)
				}
				if cur.maps[k] == nil {
					cur.maps[k] = map[string]int{}
				}
				cur.maps[k][uk] = i
			case "mget":
				x, ok, err := sub.m.Get(uk)
				want, wok := cur.maps[k][uk]
				if err != nil || ok != wok || x != want {
					rt.Fatalf("step %d: map Get of %q %q = %d %v %v, want %d %v", i, k, uk, x, ok, err, want, wok)
				}
			case "del":
				if err := sub.m.Delete(uk); err != nil {
					rt.Fatal(err)
				}
				delete(cur.maps[k], uk)
			case "mclear":
				if err := sub.m.Clear(); err != nil {
					rt.Fatal(err)
				}
				delete(cur.maps, k)
			case "entries":
				checkEntries(rt, sub, k, cur.maps[k])
			case "snapshot":
				// As the runtime does: the operator's snapshot, then a copy
				// of the backend (Pebble's checkpoint).
				if _, err := sub.store.snapshot(1); err != nil {
					rt.Fatal(err)
				}
				ckEntries = map[string][]byte{}
				if err := sub.be.Scan(nil, func(k, v []byte) error {
					ckEntries[string(k)] = bytes.Clone(v)
					return nil
				}); err != nil {
					rt.Fatal(err)
				}
				m := clone(cur)
				ck = &m
			case "kill":
				// Everything since the last snapshot is lost; the new
				// subtask restores it, or starts empty without one.
				sub.be.Close()
				be := newBackend()
				for k, v := range ckEntries {
					if err := be.Set([]byte(k), v); err != nil {
						rt.Fatal(err)
					}
				}
				sub = openHeapSubtask(be, ck != nil, budget)
				cur = model{vals: map[string]string{}, maps: map[string]map[string]int{}}
				if ck != nil {
					cur = clone(*ck)
				}
			}
			if sub.store.cells > max(budget, 1) {
				rt.Fatalf("step %d: %d cells over the budget of %d", i, sub.store.cells, budget)
			}
		}
		for _, k := range keys {
			on(sub.store, k)
			x, ok, err := sub.v.Get()
			if want, wok := cur.vals[k]; err != nil || ok != wok || x != want {
				rt.Fatalf("end: Get of %q = %q %v %v, want %q %v", k, x, ok, err, want, wok)
			}
			checkEntries(rt, sub, k, cur.maps[k])
		}
		// Every interned key is held by a cell or a timer.
		for r := range sub.store.keys.all {
			if got, ok := sub.store.keys.get([]byte(r.enc)); r.refs <= 0 || !ok || got != r {
				rt.Fatalf("interned key %q with %d refs, found by its encoding: %v", r.enc, r.refs, ok)
			}
		}
	})
}

func checkEntries(rt *rapid.T, sub *heapSubtask, k string, want map[string]int) {
	got := map[string]int{}
	if err := sub.m.Entries(func(uk string, v int) error { got[uk] = v; return nil }); err != nil {
		rt.Fatal(err)
	}
	if want == nil {
		want = map[string]int{}
	}
	if !maps.Equal(got, want) {
		rt.Fatalf("map of %q = %v, want %v", k, got, want)
	}
}

// modelTimer is a timer of the reference model: the timer service before
// buckets, a heap ordered by time, then by the timer's identity
// (length-prefixed key, domain, time, namespace) as bytes.
type modelTimer struct {
	ts  int64
	id  string
	key string
	ns  string
}

func modelID(key string, d TimeDomain, ts int64, ns string) string {
	b := uvarintframe.AppendBytes(nil, []byte(key))
	b = append(b, byte(d))
	b = binary.BigEndian.AppendUint64(b, uint64(ts)^(1<<63))
	return string(append(b, ns...))
}

// timerModel is a sorted slice per domain.
type timerModel [2][]modelTimer

func (m *timerModel) set(key string, d TimeDomain, ts int64, ns string) {
	t := modelTimer{ts, modelID(key, d, ts, ns), key, ns}
	i, found := slices.BinarySearchFunc(m[d], t, compareModel)
	if !found {
		m[d] = slices.Insert(m[d], i, t)
	}
}

func (m *timerModel) remove(key string, d TimeDomain, ts int64, ns string) {
	t := modelTimer{ts, modelID(key, d, ts, ns), key, ns}
	if i, found := slices.BinarySearchFunc(m[d], t, compareModel); found {
		m[d] = slices.Delete(m[d], i, i+1)
	}
}

func compareModel(a, b modelTimer) int {
	if a.ts != b.ts {
		if a.ts < b.ts {
			return -1
		}
		return 1
	}
	return strings.Compare(a.id, b.id)
}

type firedTimer struct {
	key string
	ts  int64
	ns  string
}

// The bucketed timers fire in the order of the heap they replaced (the
// sorted-slice model): by time, ties by the length-prefixed key and the
// namespace, with timers set while firing (at the time firing, before it,
// after it) taking their place among those left; deleted timers do not
// fire; a snapshot, a kill and a restore keep exactly the timers set.
func TestTimerBucketsProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		keys := []string{"", "a", "b", "ab", "ba", strings.Repeat("k", 130), strings.Repeat("k", 200)}
		nss := []string{"", "n", appendNSString(TimeWindow{0, 10}), appendNSString(TimeWindow{-5, 3})}
		be := state.NewMemory()
		open := func() *timerService {
			s := newStateStore(runtime.NewEnv(runtime.EnvOptions{Parallelism: 1, MaxParallelism: 128, State: be, UID: "op"}))
			ts, err := newTimerService(s.env, s)
			if err != nil {
				rt.Fatal(err)
			}
			return ts
		}
		ts := open()
		var model timerModel
		var ckModel timerModel
		ckEntries := map[string][]byte{}
		var wm [2]int64
		for i := range rapid.IntRange(1, 150).Draw(rt, "ops") {
			switch op := rapid.SampledFrom([]string{"set", "set", "set", "remove", "fire", "snapshot", "kill"}).Draw(rt, "op"); op {
			case "set", "remove":
				k := rapid.SampledFrom(keys).Draw(rt, "key")
				d := TimeDomain(rapid.IntRange(0, 1).Draw(rt, "domain"))
				at := int64(rapid.IntRange(-3, 12).Draw(rt, "ts"))
				ns := rapid.SampledFrom(nss).Draw(rt, "ns")
				on(ts.store, k)
				if op == "set" {
					if err := ts.register(d, at, []byte(ns)); err != nil {
						rt.Fatal(err)
					}
					model.set(k, d, at, ns)
				} else {
					if err := ts.remove(d, at, []byte(ns)); err != nil {
						rt.Fatal(err)
					}
					model.remove(k, d, at, ns)
				}
			case "fire":
				d := TimeDomain(rapid.IntRange(0, 1).Draw(rt, "domain"))
				wm[d] += int64(rapid.IntRange(0, 6).Draw(rt, "advance"))
				upTo := wm[d]
				// Some firings set timers: at the firing time, before it
				// and after it, for their own key and for another.
				again := rapid.IntRange(0, 3).Draw(rt, "again")
				var got []firedTimer
				n := 0
				if err := ts.fire(d, upTo, func(at int64, ns []byte) error {
					k := string(ts.store.key)
					got = append(got, firedTimer{k, at, string(ns)})
					if n++; n <= again {
						for _, next := range []int64{at, at - 1, at + 1} {
							if err := ts.register(d, next, []byte("re")); err != nil {
								return err
							}
						}
					}
					return nil
				}); err != nil {
					rt.Fatal(err)
				}
				var want []firedTimer
				n = 0
				for len(model[d]) > 0 && model[d][0].ts <= upTo {
					mt := model[d][0]
					model[d] = model[d][1:]
					want = append(want, firedTimer{mt.key, mt.ts, mt.ns})
					if n++; n <= again {
						for _, next := range []int64{mt.ts, mt.ts - 1, mt.ts + 1} {
							model.set(mt.key, d, next, "re")
						}
					}
				}
				if !slices.Equal(got, want) {
					rt.Fatalf("step %d: fired %v, want %v", i, got, want)
				}
			case "snapshot":
				if _, err := ts.snapshot(1); err != nil {
					rt.Fatal(err)
				}
				ckEntries = map[string][]byte{}
				be.Scan(nil, func(k, v []byte) error { ckEntries[string(k)] = bytes.Clone(v); return nil })
				ckModel = timerModel{slices.Clone(model[0]), slices.Clone(model[1])}
			case "kill":
				be = state.NewMemory()
				for k, v := range ckEntries {
					be.Set([]byte(k), v)
				}
				ts = open()
				model = timerModel{slices.Clone(ckModel[0]), slices.Clone(ckModel[1])}
			}
			if n := countLive(ts); n != len(model[0])+len(model[1]) {
				rt.Fatalf("step %d: %d timers set, the model has %d", i, n, len(model[0])+len(model[1]))
			}
		}
	})
}

func appendNSString(w TimeWindow) string { return string(appendNS(nil, w)) }

func countLive(ts *timerService) int {
	n := 0
	for _, q := range ts.queues {
		for _, b := range q.buckets {
			n += b.live
		}
	}
	if n != len(liveTimers(ts)) {
		return -1
	}
	return n
}

// liveTimers lists the timers set, as their keys know them.
func liveTimers(ts *timerService) []*timer {
	var all []*timer
	for k := range ts.store.keys.all {
		k.timers.each(func(t *timer) bool { all = append(all, t); return true })
	}
	return all
}

// Timers compare by their precomputed prefix as by the backend's order of
// their entries: the length-prefixed key, then the namespace.
func TestCompareTimersProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		str := rapid.SampledFrom([]string{"", "\x00", "a", "a\x00", "ab", strings.Repeat("k", 15), strings.Repeat("k", 16),
			strings.Repeat("k", 17), strings.Repeat("k", 130), strings.Repeat("k", 129) + "l"})
		mk := func(name string) (*timer, []byte) {
			enc := str.Draw(rt, name+" key") + rapid.StringN(0, 3, -1).Draw(rt, name+" key tail")
			ns := str.Draw(rt, name+" ns") + rapid.StringN(0, 3, -1).Draw(rt, name+" ns tail")
			entry := append(binary.AppendUvarint(nil, uint64(len(enc))), enc...)
			return newTimer(&keyRef{enc: enc}, timerSlot{ns: ns}, 0, nil), append(entry, ns...)
		}
		a, ea := mk("a")
		b, eb := mk("b")
		if got, want := compareTimers(a, b), bytes.Compare(ea, eb); got != want {
			rt.Fatalf("compareTimers(%q %q, %q %q) = %d, want %d", a.k.enc, a.ns, b.k.enc, b.ns, got, want)
		}
	})
}

// The key index finds each interned key by its encoding and no other: short
// encodings (packed into a word with their length) and long ones, against
// a map of strings as the model. Encodings are drawn from few bytes so that
// prefixes, trailing zero bytes and the 7/8-byte boundary all come up.
func TestKeyIndexProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		x, model := newKeyIndex(), map[string]*keyRef{}
		encs := rapid.SliceOfN(rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 0xff}), 0, 9), 1, 12).Draw(rt, "encs")
		for i := range rapid.IntRange(1, 60).Draw(rt, "ops") {
			enc := encs[rapid.IntRange(0, len(encs)-1).Draw(rt, "enc")]
			if k, ok := model[string(enc)]; ok {
				x.del(k)
				delete(model, string(enc))
			} else {
				k := &keyRef{enc: string(enc), group: i}
				x.put(k)
				model[string(enc)] = k
			}
			for _, e := range encs {
				got, ok := x.get(e)
				if want, wok := model[string(e)]; ok != wok || got != want {
					rt.Fatalf("get(%x) = %v %v, want %v %v", e, got, ok, want, wok)
				}
			}
			all, n := map[string]*keyRef{}, 0
			for k := range x.all {
				all[k.enc] = k
				n++
			}
			if n != len(model) || !maps.Equal(all, model) {
				rt.Fatalf("all yields %d keys, not the %d interned", n, len(model))
			}
		}
	})
}

// sortTimers orders a bucket as a comparison sort by compareTimers does,
// below and above radixMin: keys and namespaces are drawn so that ord[0]
// (the first bytes) often ties and the tail decides, that a byte position
// is sometimes shared by all and sometimes not, and scratch comes back
// holding no timer.
func TestSortTimersProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		prefixes := rapid.SliceOfN(rapid.SampledFrom([]string{"", "k", "kkkkkkk", strings.Repeat("k", 20)}), 1, 4).Draw(rt, "prefixes")
		prefix := rapid.SampledFrom(prefixes)
		// A small alphabet makes byte positions every timer shares; one
		// odd timer then differs where the others agree.
		alphabet := rapid.SliceOfNDistinct(rapid.SampledFrom([]byte{0, 1, 0x7f, 0x80, 0xff}), 1, 5, rapid.ID).Draw(rt, "alphabet")
		tailLen := rapid.IntRange(0, 4).Draw(rt, "tail length")
		tail := rapid.SliceOfN(rapid.SampledFrom(alphabet), tailLen, tailLen)
		n := rapid.IntRange(0, radixMin-1).Draw(rt, "n") // rapid favours small numbers
		if rapid.Bool().Draw(rt, "radix") {
			n = rapid.IntRange(radixMin, 3*radixMin).Draw(rt, "n radix")
		}
		odd := rapid.SampledFrom([]int{-1, 0, n / 2, n - 1}).Draw(rt, "odd timer")
		ts := make([]*timer, n)
		for i := range ts {
			enc := prefix.Draw(rt, "key") + string(tail.Draw(rt, "key tail"))
			ns := prefix.Draw(rt, "ns") + string(tail.Draw(rt, "ns tail"))
			if i == odd {
				enc = rapid.StringN(0, 9, -1).Draw(rt, "odd key")
			}
			ts[i] = newTimer(&keyRef{enc: enc}, timerSlot{ns: ns}, 0, nil)
		}
		want := slices.Clone(ts)
		slices.SortStableFunc(want, compareTimers)
		scratch := sortTimers(ts, make([]*timer, rapid.IntRange(0, 5).Draw(rt, "scratch")))
		for i := range ts {
			if compareTimers(ts[i], want[i]) != 0 {
				rt.Fatalf("timer %d is %q %q, want %q %q", i, ts[i].k.enc, ts[i].ns, want[i].k.enc, want[i].ns)
			}
		}
		got, all := map[*timer]int{}, map[*timer]int{}
		for i := range ts {
			got[ts[i]]++
			all[want[i]]++
		}
		if !maps.Equal(got, all) {
			rt.Fatalf("sorted timers are not the timers given")
		}
		for _, x := range scratch[:cap(scratch)] {
			if x != nil {
				rt.Fatalf("scratch still holds a timer")
			}
		}
	})
}

// A subtask that restored state lists the keys the backend has of each
// heap state, when they are few: a key outside the list reads and deletes
// nothing in the backend (an empty pane of a sliding window, after a
// restore), a listed key still reads its restored value, and once a sweep
// drops a present cell every key asks the backend again.
func TestRestoredHeapStateKnowsTheOtherKeysComplete(t *testing.T) {
	be := state.NewMemory()
	fresh := openHeapSubtask(be, false, 1<<20)
	on(fresh.store, "restored")
	if err := fresh.v.Set("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.store.snapshot(1); err != nil {
		t.Fatal(err)
	}

	cb := &countingBackend{Backend: be}
	sub := openHeapSubtask(cb, true, 1<<20)
	on(sub.store, "new")
	if _, ok, err := sub.v.Get(); err != nil || ok {
		t.Fatalf("Get of a key never written = %v, %v", ok, err)
	}
	if err := sub.v.Clear(); err != nil {
		t.Fatal(err)
	}
	if err := sub.v.Set("y"); err != nil {
		t.Fatal(err)
	}
	if err := sub.v.Clear(); err != nil {
		t.Fatal(err)
	}
	if cb.gets != 0 || cb.deletes != 0 {
		t.Fatalf("a key the backend did not have: %d reads and %d deletions reached it, want none", cb.gets, cb.deletes)
	}
	on(sub.store, "restored")
	if x, ok, err := sub.v.Get(); err != nil || !ok || x != "x" {
		t.Fatalf("Get of the restored key = %q %v %v, want x", x, ok, err)
	}
	if cb.gets != 1 {
		t.Fatalf("the restored key: %d backend reads, want 1", cb.gets)
	}

	// The list has bounds: past them there is none, and every key may be
	// in the backend.
	on(fresh.store, "restored2")
	if err := fresh.v.Set("x2"); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.store.snapshot(2); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct{ keys, scan int }{{2, 2}, {1, 10}, {10, 1}} {
		got := sub.v.h.listKeys(b.keys, b.scan)
		if want := b.keys >= 2 && b.scan >= 2; (got != nil) != want || (want && len(got) != 2) {
			t.Errorf("listKeys(%d keys, %d entries) = %v over 2 keys", b.keys, b.scan, got)
		}
	}

	// A sweep that drops a present cell ends what the list told.
	on(sub.store, "new")
	if err := sub.v.Set("z"); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.store.snapshot(2); err != nil {
		t.Fatal(err)
	}
	sub.store.cellBudget = 0
	if err := sub.store.maybeEvict(); err != nil {
		t.Fatal(err)
	}
	on(sub.store, "other")
	if _, ok, err := sub.v.Get(); err != nil || ok {
		t.Fatalf("Get of another key = %v, %v", ok, err)
	}
	if cb.gets != 2 {
		t.Fatalf("after a sweep, a key outside the list: %d backend reads in all, want 2", cb.gets)
	}
}
