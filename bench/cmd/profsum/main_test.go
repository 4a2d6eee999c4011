package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/pprof/profile"
)

// A sample goes to the innermost frame with a component, inlined frames
// included, the loop's frames and system calls only when nothing else
// claims it, and the components sum to the profile's whole.
func TestSumDirAttributesInnermostComponent(t *testing.T) {
	fns := map[string]*profile.Function{}
	fn := func(name string) *profile.Function {
		if f, ok := fns[name]; ok {
			return f
		}
		f := &profile.Function{ID: uint64(len(fns) + 1), Name: name}
		fns[name] = f
		return f
	}
	var locs []*profile.Location
	// loc is one location; its lines are innermost first (as inlined).
	loc := func(names ...string) *profile.Location {
		l := &profile.Location{ID: uint64(len(locs) + 1)}
		for _, n := range names {
			l.Line = append(l.Line, profile.Line{Function: fn(n)})
		}
		locs = append(locs, l)
		return l
	}
	sample := func(ms int64, stack ...*profile.Location) *profile.Sample {
		return &profile.Sample{Value: []int64{ms, ms * 1e6}, Location: stack}
	}
	gate := loc("github.com/weir-run/weir/sdk/internal/runtime.(*task).runGate")
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     1e7,
		Sample: []*profile.Sample{
			// A map lookup under heap state under a window: keyed state.
			sample(30, loc("runtime.mapaccess1"), loc("github.com/weir-run/weir/sdk.(*heapState[...]).get"), loc("github.com/weir-run/weir/sdk.(*winOp[...]).fire"), gate),
			// An allocation inlined into the generator: allocation.
			sample(20, loc("runtime.mallocgc", "runtime.newobject", "github.com/weir-run/weir/bench/nexmark.(*Generator).bid")),
			// Nothing but the loop: the exchange and loop.
			sample(10, gate),
			// A system call under Pebble under the loop: Pebble.
			sample(7, loc("syscall.Syscall6"), loc("github.com/cockroachdb/pebble/v2.(*DB).flush"), gate),
			// No component at all.
			sample(5, loc("runtime.futex")),
		},
		Location: locs,
	}
	for _, f := range fns {
		p.Function = append(p.Function, f)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "a.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	by, total, err := sumDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"keyed state": 30, "allocation": 20, "exchange, loop": 10, "pebble": 7, other: 5}
	if total != 72 || len(by) != len(want) {
		t.Fatalf("total %v, by %v; want 72, %v", total, by, want)
	}
	for k, v := range want {
		if by[k] != v {
			t.Errorf("%s: %v ms, want %v", k, by[k], v)
		}
	}
	if _, _, err := sumDir(t.TempDir()); err == nil {
		t.Error("a directory without profiles summed to nothing without an error")
	}
}
