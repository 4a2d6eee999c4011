package sdk

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/internal/uvarintframe"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// countingBackend counts the calls that reach a backend.
type countingBackend struct {
	state.Backend
	gets, scans, sets, deletes, setBytes int
}

func (c *countingBackend) Get(k []byte) ([]byte, bool, error) {
	c.gets++
	return c.Backend.Get(k)
}

func (c *countingBackend) Scan(prefix []byte, fn func(k, v []byte) error) error {
	c.scans++
	return c.Backend.Scan(prefix, fn)
}

func (c *countingBackend) Set(k, v []byte) error {
	c.sets++
	c.setBytes += len(v)
	return c.Backend.Set(k, v)
}

func (c *countingBackend) Delete(k []byte) error {
	c.deletes++
	return c.Backend.Delete(k)
}

// inBackend makes l keep its list in the backend's entries, as it does
// with a TTL, but without expiry: the layout the heap cells write too.
func inBackend[V any](l *ListState[V]) *ListState[V] {
	l.ranges, l.elems = nil, nil
	return l
}

// asRestored makes l act as in a subtask that restored a checkpoint whose
// keys it could not list: its cells do not hold all the backend has, and
// any key may have a list written whole by an older version.
func asRestored[V any](l *ListState[V]) *ListState[V] {
	l.h.restored, l.h.restoredListed = nil, true
	if l.ranges != nil {
		l.ranges.complete, l.elems.complete = false, false
	}
	return l
}

// countedList is a list of key "k" in heap cells or in the backend's
// entries, over a backend that counts its calls, after 1000 Adds (want).
func countedList(t *testing.T, heap bool) (*countingBackend, *StateStore, *ListState[int64], []int64) {
	b := &countingBackend{Backend: state.NewMemory()}
	s := newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: b, UID: "op"}))
	l := NewListState[int64](s, "l")
	if !heap {
		inBackend(l)
	}
	on(s, "k")
	var want []int64
	for i := range int64(1000) {
		if err := l.Add(i); err != nil {
			t.Fatal(err)
		}
		want = append(want, i)
	}
	return b, s, l, want
}

// One change to a long list writes one entry: Add does not rewrite the
// list, RemoveIf deletes only what it removes, Update writes only the
// elements that changed.
func TestListStateWritesOnlyWhatChanges(t *testing.T) {
	b, _, l, want := countedList(t, false)
	if b.sets != 2000 || b.setBytes > 2000*4 {
		t.Fatalf("1000 Adds made %d writes of %d bytes, want 2000 small ones (element and counter)", b.sets, b.setBytes)
	}
	b.sets, b.deletes, b.setBytes = 0, 0, 0
	n, err := l.RemoveIf(func(v int64) bool { return v == 500 })
	if err != nil || n != 1 {
		t.Fatalf("RemoveIf = %d, %v", n, err)
	}
	if b.sets != 0 || b.deletes != 1 {
		t.Fatalf("removing one element made %d writes and %d deletes, want 0 and 1", b.sets, b.deletes)
	}
	want = slices.Delete(want, 500, 501)
	want[7] = -7
	if err := l.Update(want); err != nil {
		t.Fatal(err)
	}
	if b.sets != 1 || b.deletes != 1 {
		t.Fatalf("an Update changing one element made %d writes and %d deletes, want 1 and 1", b.sets, b.deletes)
	}
	if got, err := l.Get(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("list after the edits: %d elements, %v; want %d", len(got), err, len(want))
	}
	b.sets, b.deletes = 0, 0
	if err := l.Update(want[:10]); err != nil {
		t.Fatal(err)
	}
	if b.sets != 1 || b.deletes != len(want)-10 {
		t.Fatalf("truncating by Update made %d writes and %d deletes, want 1 (the range) and %d", b.sets, b.deletes, len(want)-10)
	}
	if b.scans != 0 {
		t.Fatalf("list operations scanned the backend %d times: they read point by point", b.scans)
	}

	// Removing most elements leaves gaps in the numbering; the rest is
	// renumbered, so a read costs in proportion to what is left.
	var long []int64
	for i := range int64(1000) {
		long = append(long, i)
	}
	if err := l.Update(long); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RemoveIf(func(v int64) bool { return v%100 != 0 }); err != nil {
		t.Fatal(err)
	}
	b.gets = 0
	got, err := l.Get()
	if err != nil || !slices.Equal(got, []int64{0, 100, 200, 300, 400, 500, 600, 700, 800, 900}) {
		t.Fatalf("after removing all but every 100th: %v, %v", got, err)
	}
	if b.gets > 2*10+16+2 {
		t.Fatalf("reading a list of 10 took %d point reads", b.gets)
	}
}

// listOp is one step of the list property test.
type listOp struct {
	kind string // add, grow (add 64 + v), remove (values = v mod 3), thin (values != v mod 3), update, clear, get, legacy
	key  string
	v    int
	vs   []int
}

// A list in heap cells changes nothing in the backend until a checkpoint,
// which writes the elements added or changed since the last one (each
// once) and the range; reads of what it holds never reach the backend.
func TestHeapListStateWritesAtCheckpoints(t *testing.T) {
	b, s, l, want := countedList(t, true)
	if got, err := l.Get(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("list of 1000 Adds: %d elements, %v", len(got), err)
	}
	if b.gets+b.sets+b.deletes+b.scans != 0 {
		t.Fatalf("1000 Adds and a Get reached the backend: %d gets, %d sets, %d deletes, %d scans", b.gets, b.sets, b.deletes, b.scans)
	}
	checkpoint := func(sets, deletes int) {
		t.Helper()
		b.sets, b.deletes = 0, 0
		if err := s.flush(); err != nil {
			t.Fatal(err)
		}
		if b.sets != sets || b.deletes != deletes {
			t.Fatalf("checkpoint wrote %d entries and deleted %d, want %d and %d", b.sets, b.deletes, sets, deletes)
		}
	}
	checkpoint(1001, 0) // the elements and the range
	checkpoint(0, 0)
	if n, err := l.RemoveIf(func(v int64) bool { return v == 500 }); err != nil || n != 1 {
		t.Fatalf("RemoveIf = %d, %v", n, err)
	}
	l.Add(1000)
	checkpoint(2, 1) // the new element, the range; the removed one
	got, _ := l.Get()
	got[7] = -7
	if err := l.Update(got); err != nil {
		t.Fatal(err)
	}
	checkpoint(1, 0) // Update wrote the one element it changed
	want[7] = -7
	want = append(slices.Delete(want, 500, 501), 1000)
	other := newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: b, UID: "op"}))
	on(other, "k")
	if got, err := inBackend(NewListState[int64](other, "l")).Get(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("the backend's entries read as a list of %d, %v; want %d", len(got), err, len(want))
	}
}

// List state behaves as a map of slices (the naive model) over random
// Add, RemoveIf, Update and Clear of several keys, in heap cells or in the
// backend's entries, whatever the cache and the cell budget do, including
// lists written whole by older versions (found only after a restore).
// Either way the backend ends up with the same entries: they read back
// through the other.
func TestListStateProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		db, err := pebblestate.Open(pebblestate.Options{Dir: t.TempDir(), CacheBytes: int64(rapid.IntRange(-1, 2048).Draw(rt, "cache"))})
		if err != nil {
			rt.Fatal(err)
		}
		defer db.Close()
		s := newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: db, UID: "op"}))
		s.cellBudget = rapid.IntRange(1, 64).Draw(rt, "cell budget")
		l := NewListState[int](s, "l")
		heap := rapid.Bool().Draw(rt, "heap")
		if !heap {
			inBackend(l)
		}
		restored := rapid.Bool().Draw(rt, "restored")
		if restored {
			asRestored(l)
		}
		model := map[string][]int{}
		keys := []string{"", "a", "ab", "b"}
		ops := rapid.IntRange(1, 120).Draw(rt, "ops")
		for range ops {
			op := listOp{
				kind: rapid.SampledFrom([]string{"add", "add", "add", "grow", "remove", "thin", "update", "clear", "get", "legacy"}).Draw(rt, "op"),
				key:  rapid.SampledFrom(keys).Draw(rt, "key"),
				v:    rapid.IntRange(-5, 20).Draw(rt, "v"),
				vs:   rapid.SliceOfN(rapid.IntRange(-5, 20), 0, 8).Draw(rt, "vs"),
			}
			on(s, op.key)
			switch op.kind {
			case "add":
				err = l.Add(op.v)
				model[op.key] = append(model[op.key], op.v)
			case "grow":
				for i := range 64 + op.v {
					if err = l.Add(i); err != nil {
						break
					}
					model[op.key] = append(model[op.key], i)
				}
			case "remove", "thin":
				// thin leaves gaps in the numbering that renumber the rest.
				m := ((op.v % 3) + 3) % 3
				gone := func(x int) bool { return (((x%3)+3)%3 == m) == (op.kind == "remove") }
				var n int
				n, err = l.RemoveIf(gone)
				before := len(model[op.key])
				model[op.key] = slices.DeleteFunc(model[op.key], gone)
				if err == nil && n != before-len(model[op.key]) {
					rt.Fatalf("RemoveIf reported %d removed, the model %d", n, before-len(model[op.key]))
				}
			case "update":
				err = l.Update(op.vs)
				model[op.key] = slices.Clone(op.vs)
			case "clear":
				err = l.Clear()
				model[op.key] = nil
			case "legacy":
				// What an older version wrote: the whole list in one
				// value, under the key's entry without suffix. Only a
				// restore brings one.
				if !restored {
					continue
				}
				if err = l.Clear(); err == nil {
					var val []byte
					for _, x := range op.vs {
						val = uvarintframe.AppendBytes(val, l.c.Append(nil, x))
					}
					err = db.Set(l.h.entry(nil), val)
				}
				model[op.key] = slices.Clone(op.vs)
			}
			if err != nil {
				rt.Fatalf("%s: %v", op.kind, err)
			}
			if op.kind == "get" {
				checkList(rt, l, op.key, model[op.key])
			}
		}
		for _, k := range keys {
			on(s, k)
			checkList(rt, l, k, model[k])
		}
		if err := s.flush(); err != nil {
			rt.Fatal(err)
		}
		other := newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: db, UID: "op"}))
		o := asRestored(NewListState[int](other, "l"))
		if heap {
			inBackend(o)
		}
		for _, k := range keys {
			on(other, k)
			checkList(rt, o, k, model[k])
		}
		// Nothing is left behind: a key's element entries and the items
		// of its old whole-list entry are its list.
		stored := map[string]int{}
		if err := o.h.scanEntries(func(key, suffix, val []byte) error {
			switch {
			case len(suffix) == 0:
				items, err := runtime.DecodeItems(val)
				stored[string(key)] += len(items)
				return err
			case suffix[0] == listElem:
				stored[string(key)]++
			}
			return nil
		}); err != nil {
			rt.Fatal(err)
		}
		for _, k := range keys {
			if stored[k] != len(model[k]) {
				rt.Fatalf("key %q: %d elements stored, want %d", k, stored[k], len(model[k]))
			}
		}
	})
}

func checkList(rt *rapid.T, l *ListState[int], key string, want []int) {
	got, err := l.Get()
	if err != nil {
		rt.Fatalf("Get %q: %v", key, err)
	}
	if len(want) == 0 {
		want = nil
	}
	if !slices.Equal(got, want) {
		rt.Fatalf("key %q: list %v, want %v", key, got, want)
	}
}

// Each list element expires on its own, d after it was added.
func TestListStateTTLPerElement(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			l := NewListState[string](s, "l", WithTTL(80*time.Millisecond))
			on(s, "k")
			l.Add("old")
			time.Sleep(50 * time.Millisecond)
			l.Add("new")
			if got, _ := l.Get(); !slices.Equal(got, []string{"old", "new"}) {
				t.Fatalf("before expiry: %v", got)
			}
			time.Sleep(50 * time.Millisecond)
			if got, err := l.Get(); err != nil || !slices.Equal(got, []string{"new"}) {
				t.Fatalf("after the first expired: %v, %v", got, err)
			}
			l.Add("newer")
			if got, _ := l.Get(); !slices.Equal(got, []string{"new", "newer"}) {
				t.Fatalf("added after an expiry: %v", got)
			}
			time.Sleep(100 * time.Millisecond)
			if got, _ := l.Get(); got != nil {
				t.Fatalf("after every expiry: %v", got)
			}
			l.Add("again")
			if got, _ := l.Get(); !slices.Equal(got, []string{"again"}) {
				t.Fatalf("a list restarted after expiring: %v", got)
			}
		})
	}
}

// listJob keeps, per key, a list edited with Add, RemoveIf and Update, and
// emits the list after every record into an exactly-once sink. The source
// is one subtask, so each key's records arrive in one order.
func listJob(n int64, req chan<- runtime.CheckpointRequest, killAt []int, out *commitLog[string]) func(p *Pipeline) {
	items := make([]int64, n)
	for i := range items {
		items[i] = int64(i)
	}
	return func(p *Pipeline) {
		p.SetMaxParallelism(16)
		src := killingSourceOf(p, items, nil, req, killAt)
		lists := KeyedProcess(KeyBy(src, func(i int64) int64 { return i % 5 }),
			func(s *StateStore) (func(key, v int64, emit func(string)) error, error) {
				l := NewListState[int64](s, "l")
				return func(key, v int64, emit func(string)) error {
					xs, err := listStep(l, v)
					emit(fmt.Sprint(key, v, xs))
					return err
				}, nil
			}, WithUID("lists"))
		commitSink(lists, out, WithUID("out"))
	}
}

// listStep is one record's edits: add it; every 3rd record removes the
// even elements; every 7th doubles the first element.
func listStep(l *ListState[int64], v int64) ([]int64, error) {
	if err := l.Add(v); err != nil {
		return nil, err
	}
	if v%3 == 0 {
		if _, err := l.RemoveIf(func(x int64) bool { return x%2 == 0 }); err != nil {
			return nil, err
		}
	}
	xs, err := l.Get()
	if err != nil || v%7 != 0 || len(xs) == 0 {
		return xs, err
	}
	xs[0] *= 2
	return xs, l.Update(xs)
}

// listModel is listStep on a slice.
func listModel(n int64) []string {
	lists := map[int64][]int64{}
	var out []string
	for v := range n {
		k := v % 5
		xs := append(lists[k], v)
		if v%3 == 0 {
			xs = slices.DeleteFunc(xs, func(x int64) bool { return x%2 == 0 })
		}
		if v%7 == 0 && len(xs) > 0 {
			xs[0] *= 2
		}
		lists[k] = xs
		if len(xs) == 0 {
			xs = nil
		}
		out = append(out, fmt.Sprint(k, v, xs))
	}
	slices.Sort(out)
	return out
}

// ListState edits survive checkpoints, kills and restores (the elements,
// the counter, what RemoveIf deleted): the job killed three times
// mid-stream commits exactly the model's output.
func TestListStateKillRestore(t *testing.T) {
	const n = 2000
	var out commitLog[string]
	req := make(chan runtime.CheckpointRequest, 64)
	if killed := runKilled(t, req, listJob(n, req, []int{400, 1100, 1700}, &out)); killed != 3 {
		t.Fatalf("killed %d times, want 3", killed)
	}
	got := out.all()
	slices.Sort(got)
	if want := listModel(n); !slices.Equal(got, want) {
		t.Fatalf("after 3 kills: %d outputs, want %d", len(got), len(want))
	}
}

// ttlElem is an element of the TTL model: its value and expiry.
type ttlElem struct {
	v   int
	exp int64
}

// With an event-time TTL, list state behaves as the model of elements that
// each expire at their write time plus the TTL, over random operations,
// watermarks and record times, whatever the cache does: expired elements
// leave gaps the reads skip, RemoveIf keeps the others' expiry, Update
// renews all.
func TestListStateEventTTLProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		db, err := pebblestate.Open(pebblestate.Options{Dir: t.TempDir(), CacheBytes: int64(rapid.IntRange(-1, 2048).Draw(rt, "cache"))})
		if err != nil {
			rt.Fatal(err)
		}
		defer db.Close()
		s := newStateStore(runtime.NewEnv(runtime.EnvOptions{MaxParallelism: 128, State: db, UID: "op"}))
		wm := int64(1000)
		s.watermark = func() int64 { return wm }
		const ttl = 100
		l := NewListState[int](s, "l", WithEventTimeTTL(ttl*time.Millisecond))
		model := map[string][]ttlElem{}
		live := func(k string) []int {
			var out []int
			for _, e := range model[k] {
				if wm < e.exp {
					out = append(out, e.v)
				}
			}
			return out
		}
		keys := []string{"a", "b"}
		for range rapid.IntRange(1, 150).Draw(rt, "ops") {
			k := rapid.SampledFrom(keys).Draw(rt, "key")
			on(s, k)
			s.recordTS, s.inRecord = wm+rapid.Int64Range(-50, 50).Draw(rt, "ts"), true
			write := s.recordTS + ttl
			var err error
			switch op := rapid.SampledFrom([]string{"add", "add", "add", "remove", "update", "clear", "get", "advance"}).Draw(rt, "op"); op {
			case "add":
				v := rapid.IntRange(0, 20).Draw(rt, "v")
				err = l.Add(v)
				model[k] = append(model[k], ttlElem{v, write})
			case "remove":
				m := rapid.IntRange(0, 2).Draw(rt, "mod")
				_, err = l.RemoveIf(func(x int) bool { return x%3 == m })
				model[k] = slices.DeleteFunc(model[k], func(e ttlElem) bool { return e.v%3 == m || wm >= e.exp })
			case "update":
				vs := rapid.SliceOfN(rapid.IntRange(0, 20), 0, 6).Draw(rt, "vs")
				err = l.Update(vs)
				model[k] = nil
				for _, v := range vs {
					model[k] = append(model[k], ttlElem{v, write})
				}
			case "clear":
				err = l.Clear()
				model[k] = nil
			case "get":
				checkList(rt, l, k, live(k))
			case "advance":
				wm += rapid.Int64Range(0, 60).Draw(rt, "advance")
			}
			s.inRecord = false
			if err != nil {
				rt.Fatalf("%v", err)
			}
		}
		for _, k := range keys {
			on(s, k)
			checkList(rt, l, k, live(k))
		}
	})
}

// A restored subtask looks for a list written whole by an older version
// only under the keys its checkpoint had lists of: a new key's list costs
// no backend read, and a restored key's old list still reads back.
func TestRestoredListReadsOnlyRestoredKeys(t *testing.T) {
	be := state.NewMemory()
	fresh := openStore(be, false)
	l := NewListState[int64](fresh, "l")
	on(fresh, "legacy")
	var whole []byte
	for _, x := range []int64{7, 8} {
		whole = uvarintframe.AppendBytes(whole, l.c.Append(nil, x))
	}
	if err := be.Set(l.h.entry(nil), whole); err != nil {
		t.Fatal(err)
	}

	cb := &countingBackend{Backend: be}
	s := openStore(cb, true)
	l = NewListState[int64](s, "l")
	on(s, "new")
	if got, err := l.Get(); err != nil || len(got) != 0 {
		t.Fatalf("list of a new key = %v, %v", got, err)
	}
	if err := l.Add(1); err != nil {
		t.Fatal(err)
	}
	if cb.gets != 0 {
		t.Fatalf("a key the checkpoint had no list of: %d backend reads, want none", cb.gets)
	}
	on(s, "legacy")
	if got, err := l.Get(); err != nil || !slices.Equal(got, []int64{7, 8}) {
		t.Fatalf("restored whole list = %v, %v; want [7 8]", got, err)
	}
}
