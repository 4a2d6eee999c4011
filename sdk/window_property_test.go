package sdk

// Property tests of the window operator against the reference model in
// windowmodel_test.go: random scripts of records, watermarks, processing
// time, checkpoints, kills, restores and rescales drive the real operator
// (one instance per subtask, built as the runtime builds it) and the model,
// and the panes and late records must be the same.

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/state"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// rapidChecks sets how many cases rapid tries in the calling test: n, or
// WEIR_RAPID_CHECKS when set (a soak: WEIR_RAPID_CHECKS=5000 go test ./sdk
// -run TestWindowOperatorModel). An explicit -rapid.checks (or RAPID_CHECKS)
// wins over n.
func rapidChecks(t *testing.T, n int) {
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	if s := os.Getenv("WEIR_RAPID_CHECKS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("WEIR_RAPID_CHECKS=%q is not a positive number", s)
		}
		n = v
	} else {
		explicit := false
		flag.Visit(func(g *flag.Flag) { explicit = explicit || g.Name == "rapid.checks" })
		if _, env := os.LookupEnv("RAPID_CHECKS"); explicit || env {
			return
		}
	}
	old := f.Value.String()
	f.Value.Set(strconv.Itoa(n))
	t.Cleanup(func() { f.Value.Set(old) })
}

// rapidShrinkTime bounds the time rapid spends minimising a failing case of
// the calling test, unless -rapid.shrinktime (or RAPID_SHRINKTIME) says.
func rapidShrinkTime(t *testing.T, d time.Duration) {
	f := flag.Lookup("rapid.shrinktime")
	if f == nil {
		return
	}
	explicit := false
	flag.Visit(func(g *flag.Flag) { explicit = explicit || g.Name == "rapid.shrinktime" })
	if _, env := os.LookupEnv("RAPID_SHRINKTIME"); explicit || env {
		return
	}
	old := f.Value.String()
	f.Value.Set(d.String())
	t.Cleanup(func() { f.Value.Set(old) })
}

// evKind is the kind of a script step.
type evKind uint8

const (
	evRecord     evKind = iota
	evWatermark         // the watermark advances to t (or is stale)
	evProcTime          // the processing-time clock reaches t
	evCheckpoint        // a checkpoint completes (its output is committed)
	evRestore           // kill; restore from the last checkpoint at parallelism p
	evEnd               // end of input
)

type scriptEv struct {
	kind evKind
	rec  mrec
	t    int64
	p    int
	// savepoint: the checkpoint is a savepoint (pipeline test).
	savepoint bool
}

func (e scriptEv) String() string {
	switch e.kind {
	case evRecord:
		return fmt.Sprintf("record key=%s ts=%d v=%d (id %d)", e.rec.Key, e.rec.TS, e.rec.V, e.rec.ID)
	case evWatermark:
		return fmt.Sprintf("watermark %d", e.t)
	case evProcTime:
		return fmt.Sprintf("processing time %d", e.t)
	case evCheckpoint:
		if e.savepoint {
			return "savepoint"
		}
		return "checkpoint"
	case evRestore:
		return fmt.Sprintf("kill, restore from the last checkpoint at parallelism %d", e.p)
	case evEnd:
		return "end of input"
	}
	return "?"
}

// script is a test case: a window configuration and the steps fed to it.
type script struct {
	spec mSpec
	p    int // parallelism at the start
	maxP int
	now0 int64 // processing time at the start
	evs  []scriptEv
}

func (s script) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "window %v\nparallelism %d, max parallelism %d, processing time starts at %d\n", s.spec, s.p, s.maxP, s.now0)
	for i, e := range s.evs {
		fmt.Fprintf(&b, "%3d: %v\n", i, e)
	}
	return b.String()
}

// scriptOpts says what drawScript may generate.
type scriptOpts struct {
	procTime bool  // EarlyAfter and processing-time steps
	restore  bool  // checkpoints and kills
	ps       []int // parallelisms to start and restore at
	steps    int   // at most this many steps (plus the end)
	// sessions: only session windows with allowed lateness, where late
	// records grow and bridge sessions that fired already.
	sessions bool
	keys     int // at most this many keys (all of modelKeys when 0)
	// combiner: only windows WindowAggregate pre-aggregates for
	// (combine.go), which the operator then runs behind its combiner.
	combiner bool
}

func drawSpec(t *rapid.T, procTime bool) mSpec {
	var s mSpec
	switch rapid.IntRange(0, 4).Draw(t, "assigner") {
	case 0:
		s.kind = mTumbling
		s.size = rapid.Int64Range(1, 30).Draw(t, "size") * 100
		s.slide = s.size
	case 1:
		s.kind = mSliding
		s.size = rapid.Int64Range(1, 30).Draw(t, "size") * 100
		s.slide = rapid.Int64Range(1, 30).Draw(t, "slide") * 100
	case 2: // hopping: sliding with gaps between windows
		s.kind = mSliding
		s.size = rapid.Int64Range(1, 20).Draw(t, "size") * 100
		s.slide = s.size + rapid.Int64Range(1, 20).Draw(t, "hop")*100
	case 3:
		s.kind = mSessions
		s.gap = rapid.Int64Range(1, 30).Draw(t, "gap") * 100
	case 4:
		s.kind = mGlobal
	}
	if rapid.IntRange(0, 3).Draw(t, "late?") > 0 {
		s.lateness = rapid.Int64Range(1, 40).Draw(t, "lateness") * 100
	}
	s.earlyEvery = rapid.Int64Range(0, 4).Draw(t, "early every")
	if procTime && rapid.Bool().Draw(t, "early after?") {
		s.earlyAfter = rapid.Int64Range(1, 10).Draw(t, "early after") * 100
	}
	s.mode = Accumulation(rapid.IntRange(0, 2).Draw(t, "mode"))
	if s.mode == Discarding && s.kind == mSliding && s.size != s.slide {
		s.mode = Retracting // discarding needs windows that share no panes
	}
	s.noCombiner = rapid.IntRange(0, 3).Draw(t, "no combiner?") == 0
	return s
}

func drawSessionSpec(t *rapid.T, procTime bool) mSpec {
	s := mSpec{kind: mSessions, gap: rapid.Int64Range(1, 30).Draw(t, "gap") * 100,
		lateness:   rapid.Int64Range(1, 40).Draw(t, "lateness") * 100,
		earlyEvery: rapid.Int64Range(0, 3).Draw(t, "early every"),
		mode:       Accumulation(rapid.IntRange(0, 2).Draw(t, "mode"))}
	if procTime && rapid.Bool().Draw(t, "early after?") {
		s.earlyAfter = rapid.Int64Range(1, 10).Draw(t, "early after") * 100
	}
	return s
}

// rawStep is a drawn step, relative to the state of the script before it
// (so that deleting steps while shrinking keeps a valid script).
type rawStep struct {
	kind          evKind
	key, off, jit int
	v             int64
	p             int
	savepoint     bool
}

// scriptT0 is where event time starts in drawn scripts: far enough from 0
// that no window of theirs ends at or below it (TestWindowNegativeTimes
// covers those).
const scriptT0 = 100_000

// drawScript draws a random script. Records fall around the watermark
// (within and beyond the allowed lateness), watermarks and the processing
// time advance in steps of 100ms, sometimes 1ms short of them so that
// window ends are hit exactly.
func drawScript(t *rapid.T, o scriptOpts) script {
	s := script{maxP: 128, now0: 1_000_000}
	switch {
	case o.sessions:
		s.spec = drawSessionSpec(t, o.procTime)
	case o.combiner:
		s.spec = drawSpec(t, o.procTime)
		if s.spec.kind == mSessions {
			s.spec.kind, s.spec.size, s.spec.slide = mGlobal, 0, 0
		}
		s.spec.earlyEvery, s.spec.earlyAfter, s.spec.noCombiner = 0, 0, false
	default:
		s.spec = drawSpec(t, o.procTime)
	}
	s.p = rapid.SampledFrom(o.ps).Draw(t, "parallelism")
	nkeys := len(modelKeys)
	if o.keys > 0 {
		nkeys = o.keys
	}
	keys := modelKeys[:rapid.IntRange(1, nkeys).Draw(t, "keys")]
	step := rapid.Custom(func(t *rapid.T) rawStep {
		var r rawStep
		// Kinds by weight (records first: shrinking turns steps into
		// records).
		w := [...]int{55, 20, 10, 8, 7} // records, watermarks, processing time, checkpoints, kills
		if o.sessions {
			w = [...]int{45, 20, 20, 8, 7}
		}
		if !o.procTime {
			w[2] = 0
		}
		if !o.restore {
			w[3], w[4] = 0, 0
		}
		k := rapid.IntRange(0, w[0]+w[1]+w[2]+w[3]+w[4]-1).Draw(t, "kind")
		kind := 0
		for k >= w[kind] {
			k -= w[kind]
			kind++
		}
		switch kind {
		case 0:
			r.kind = evRecord
			r.key = rapid.IntRange(0, len(keys)-1).Draw(t, "key")
			if o.sessions { // mostly just behind the watermark: late records that grow sessions
				r.off = rapid.IntRange(-20, 10).Draw(t, "ts-wm")
			} else {
				r.off = rapid.IntRange(-40, 40).Draw(t, "ts-wm")
			}
			r.jit = rapid.IntRange(0, 1).Draw(t, "jitter")
			r.v = rapid.Int64Range(1, 5).Draw(t, "value")
		case 1:
			r.kind = evWatermark
			r.off = rapid.IntRange(0, 40).Draw(t, "advance")
			r.jit = rapid.IntRange(0, 1).Draw(t, "jitter")
		case 2:
			r.kind = evProcTime
			r.off = rapid.IntRange(0, 10).Draw(t, "advance")
		case 3:
			r.kind = evCheckpoint
			r.savepoint = rapid.Bool().Draw(t, "savepoint")
		default:
			r.kind = evRestore
			r.p = rapid.SampledFrom(o.ps).Draw(t, "parallelism")
		}
		return r
	})
	// Chunks of steps: long scripts (a slice alone is short on average)
	// whose steps shrinking can still delete one by one.
	var raw []rawStep
	for range rapid.IntRange(1, max(o.steps/5, 1)).Draw(t, "chunks") {
		raw = append(raw, rapid.SliceOfN(step, 0, o.steps).Draw(t, "steps")...)
	}
	raw = raw[:min(len(raw), o.steps)]
	wm, now := int64(math.MinInt64), s.now0
	for i, r := range raw {
		base := max(wm, scriptT0)
		e := scriptEv{kind: r.kind, p: r.p, savepoint: r.savepoint}
		switch r.kind {
		case evRecord:
			e.rec = mrec{Key: keys[r.key], TS: base + int64(r.off)*100 - int64(r.jit), V: r.v, ID: i}
		case evWatermark:
			e.t = base + int64(r.off)*100 - int64(r.jit)
			wm = max(wm, e.t)
		case evProcTime:
			now += int64(r.off) * 100
			e.t = now
		}
		s.evs = append(s.evs, e)
	}
	if rapid.IntRange(0, 3).Draw(t, "no end") < 3 {
		s.evs = append(s.evs, scriptEv{kind: evEnd})
	}
	return s
}

// modelKeys are four keys that land on four different subtasks at
// parallelism 4 (max parallelism 128).
var modelKeys = func() []string {
	var keys []string
	seen := map[int]bool{}
	for c := 'a'; len(keys) < 4; c++ {
		k := string(c)
		if s := subtaskOfKey(k, 4, 128); !seen[s] {
			seen[s] = true
			keys = append(keys, k)
		}
	}
	return keys
}()

// subtaskOfKey is the subtask of p that a keyed exchange sends key to.
func subtaskOfKey(key string, p, maxP int) int {
	g := keygroup.Of(keygroup.Hash(CodecFor[string]().Append(nil, key)), maxP)
	return keygroup.Subtask(g, maxP, p)
}

// runModel runs the script's data steps through the model.
func runModel(s script) *model {
	m := newModel(s.spec)
	m.now = s.now0
	for i, e := range s.evs {
		m.step = i
		switch e.kind {
		case evRecord:
			m.record(e.rec)
		case evWatermark:
			m.watermark(e.t)
		case evProcTime:
			m.procTime(e.t)
		case evEnd:
			m.watermark(MaxWatermark)
		}
	}
	return m
}

// windowNode builds the window operator of spec as a pipeline node, the
// way WindowAggregate adds it to a job: its newOp opens an instance. comb
// is the combiner WindowAggregate put in front of it, if any.
func windowNode(spec mSpec) (win, comb *node, err error) {
	pl := NewPipeline("model", 1)
	src := WithTimestamps(NewSource(pl, "script", func(TaskInfo) (SourceReader[mrec], error) {
		return nil, fmt.Errorf("not run")
	}), func(r mrec) int64 { return r.TS })
	a, opts := spec.api()
	w := WindowAggregate(Window(KeyBy(src, func(r mrec) string { return r.Key }), a, opts...), mAggFunc(), WithUID("window"))
	win = w.results.n
	if in := win.inputs[0].from; in.Kind == "combine" {
		comb = in
	}
	return win, comb, pl.Err()
}

// mPartial is what the model's combiner sends the window operator.
type mPartial = partial[string, mrec, mAgg]

// opDriver runs the real window operator as a set of subtasks over
// in-memory keyed state, the way the runtime does: records go to the
// subtask of their key group, watermarks and processing time to all.
// Output counts once the checkpoint after it completes (an exactly-once
// sink): a kill loses the output since the last checkpoint, the restored
// subtasks replay the steps since then. When WindowAggregate adds a
// combiner, records and watermarks go through one subtask of it, whose
// output goes to the window subtasks as a keyed exchange would send it.
type opDriver struct {
	s       script
	node    *node
	comb    *node  // the combiner, if any
	combSub *opSub // its one subtask
	fatalf  func(format string, args ...any)
	now     int64
	attempt int64
	subs    []*opSub
	step    int
	// committed output, and output since the last checkpoint
	out, pendOut   []mOut
	late, pendLate []mLate
	ck             *opCk
	ckID           int64
}

type opSub struct {
	env *runtime.Env
	run runtime.OpRun
	mem *state.Memory
}

// opCk is a completed checkpoint: each subtask's operator-state items and
// a copy of its keyed state.
type opCk struct {
	id   int64
	step int
	now  int64
	p    int
	subs []ckSub
	// combItems is the combiner's operator state.
	combItems [][]byte
}

type ckSub struct {
	items          [][]byte
	entries        map[string][]byte
	kgStart, kgEnd int
}

func newOpDriver(s script, fatalf func(string, ...any)) *opDriver {
	n, comb, err := windowNode(s.spec)
	if err != nil {
		fatalf("build the window operator: %v", err)
	}
	d := &opDriver{s: s, node: n, comb: comb, fatalf: fatalf, now: s.now0, attempt: 1}
	for i := range s.p {
		d.subs = append(d.subs, d.open(i, s.p, state.NewMemory(), runtime.Restored{}))
	}
	d.openCombiner(runtime.Restored{})
	return d
}

// openCombiner opens the combiner's subtask with its restored state.
func (d *opDriver) openCombiner(ts runtime.Restored) {
	if d.comb == nil {
		return
	}
	env := runtime.NewEnv(runtime.EnvOptions{JobID: "model", Attempt: d.attempt, Subtask: 0, Parallelism: 1,
		MaxParallelism: d.s.maxP, UID: d.comb.UID, Logger: testLogger(), Restored: ts,
		Clock: func() time.Time { return time.UnixMilli(d.now) },
		EmitWatermark: func(wm int64) {
			for _, sub := range d.subs {
				sub.run.Watermark(wm)
			}
		}})
	run, err := d.comb.NewOp(env, func(p mPartial) {
		d.subs[subtaskOfKey(p.Key, len(d.subs), d.s.maxP)].run.In.(func(mPartial))(p)
	})
	if err != nil {
		d.fatalf("open the combiner: %v", err)
	}
	d.combSub = &opSub{env: env, run: run}
}

// open opens subtask i of p over mem with the restored operator state.
func (d *opDriver) open(i, p int, mem *state.Memory, ts runtime.Restored) *opSub {
	env := runtime.NewEnv(runtime.EnvOptions{JobID: "model", Attempt: d.attempt, Subtask: i, Parallelism: p,
		MaxParallelism: d.s.maxP, UID: d.node.UID, State: mem, Logger: testLogger(), Restored: ts,
		Clock: func() time.Time { return time.UnixMilli(d.now) },
		Sides: []any{func(r mrec) { d.pendLate = append(d.pendLate, mLate{d.step, r}) }}})
	run, err := d.node.NewOp(env, func(p Pane[string, mAgg]) { d.pendOut = append(d.pendOut, mOut{d.step, paneOf(p)}) })
	if err != nil {
		d.fatalf("open subtask %d/%d: %v", i, p, err)
	}
	return &opSub{env: env, run: run, mem: mem}
}

func (d *opDriver) check() {
	for i, sub := range d.subs {
		if sub.env.Err() != nil {
			d.fatalf("step %d: subtask %d failed: %v", d.step, i, sub.env.Err())
		}
	}
}

// apply runs step i of the script.
func (d *opDriver) apply(i int) {
	d.step = i
	e := d.s.evs[i]
	switch e.kind {
	case evRecord:
		if d.combSub != nil {
			d.combSub.run.In.(func(mrec))(e.rec)
			break
		}
		sub := d.subs[subtaskOfKey(e.rec.Key, len(d.subs), d.s.maxP)]
		sub.run.In.(func(mrec))(e.rec)
	case evWatermark:
		if d.combSub != nil {
			d.combSub.run.Watermark(e.t)
			break
		}
		for _, sub := range d.subs {
			sub.run.Watermark(e.t)
		}
	case evProcTime:
		d.now = e.t
		for _, sub := range d.subs {
			d.tick(sub)
		}
	case evEnd:
		if c := d.combSub; c != nil {
			c.run.Watermark(MaxWatermark)
			if err := c.run.Finish(); err != nil {
				d.fatalf("step %d: finish the combiner: %v", i, err)
			}
		}
		for _, sub := range d.subs {
			sub.run.Watermark(MaxWatermark)
			if sub.run.Finish != nil {
				if err := sub.run.Finish(); err != nil {
					d.fatalf("step %d: finish: %v", i, err)
				}
			}
		}
	case evCheckpoint:
		d.checkpoint()
	case evRestore:
		d.restore(e.p)
	}
	d.check()
}

// tick does what the task loop does on its clock: the operators'
// processing-time callback runs when the time one of them asked to be woken
// at has come.
func (d *opDriver) tick(sub *opSub) {
	now := time.UnixMilli(d.now)
	if sub.env.WakeDue(now) {
		sub.run.OnTime(now)
	}
}

func (d *opDriver) commit() {
	d.out, d.pendOut = append(d.out, d.pendOut...), nil
	d.late, d.pendLate = append(d.late, d.pendLate...), nil
}

// checkpoint snapshots every subtask as the runtime does: flush, the
// operator's items, then its keyed state (the memory backend has no
// write-back cache, so a copy of its entries is the snapshot; Pebble's
// BeginCheckpoint would freeze its dirty cache at this point).
func (d *opDriver) checkpoint() {
	d.ckID++
	ck := &opCk{id: d.ckID, step: d.step, now: d.now, p: len(d.subs)}
	if c := d.combSub; c != nil {
		// Upstream of the window subtasks, the combiner takes its snapshot
		// first; what it emits reaches them before the barrier.
		items, err := c.run.Snapshot(d.ckID)
		if err != nil {
			d.fatalf("step %d: snapshot the combiner: %v", d.step, err)
		}
		for _, it := range items {
			ck.combItems = append(ck.combItems, bytes.Clone(it))
		}
	}
	for i, sub := range d.subs {
		if sub.run.Flush != nil {
			if err := sub.run.Flush(); err != nil {
				d.fatalf("step %d: flush subtask %d: %v", d.step, i, err)
			}
		}
		items, err := sub.run.Snapshot(d.ckID)
		if err != nil {
			d.fatalf("step %d: snapshot subtask %d: %v", d.step, i, err)
		}
		cs := ckSub{entries: map[string][]byte{}}
		for _, it := range items {
			cs.items = append(cs.items, bytes.Clone(it))
		}
		sub.mem.Scan(nil, func(k, v []byte) error {
			cs.entries[string(k)] = bytes.Clone(v)
			return nil
		})
		cs.kgStart, cs.kgEnd = keygroup.Range(i, len(d.subs), d.s.maxP)
		ck.subs = append(ck.subs, cs)
	}
	d.ck = ck
	d.commit()
}

// manifest describes the last checkpoint as the coordinator would.
func (d *opDriver) manifest() *weirv1.CheckpointManifest {
	m := &weirv1.CheckpointManifest{JobId: "model", CheckpointId: d.ck.id, MaxParallelism: int32(d.s.maxP)}
	for i, cs := range d.ck.subs {
		m.Subtasks = append(m.Subtasks, &weirv1.SubtaskSnapshot{Subtask: int32(i), Parallelism: int32(d.ck.p),
			KeyGroupStart: int32(cs.kgStart), KeyGroupEnd: int32(cs.kgEnd), Uids: []string{d.node.UID},
			Operators: []*weirv1.OperatorState{{Uid: d.node.UID, Data: runtime.EncodeItems(cs.items)}}})
	}
	if d.comb != nil {
		m.Subtasks = append(m.Subtasks, &weirv1.SubtaskSnapshot{Subtask: 0, Parallelism: 1,
			KeyGroupStart: 0, KeyGroupEnd: int32(d.s.maxP), Uids: []string{d.comb.UID},
			Operators: []*weirv1.OperatorState{{Uid: d.comb.UID, Data: runtime.EncodeItems(d.ck.combItems)}}})
	}
	return m
}

// restore kills every subtask (their output since the last checkpoint is
// lost) and starts p new ones from the last checkpoint: each gets the keyed
// state of its key groups and the operator state the runtime deals it
// (runtime.Restore), then the steps since the checkpoint are
// replayed, at the processing times they first ran at.
func (d *opDriver) restore(p int) {
	at := d.step
	d.pendOut, d.pendLate = nil, nil
	d.attempt++
	from, now := 0, d.s.now0
	var m *weirv1.CheckpointManifest
	if d.ck != nil {
		from, now = d.ck.step+1, d.ck.now
		m = d.manifest()
	}
	subs := make([]*opSub, p)
	for j := range p {
		mem := state.NewMemory()
		ts := runtime.Restored{}
		if m != nil {
			var err error
			if ts, err = runtime.Restore(m, d.node.UID, j, p, d.s.maxP); err != nil {
				d.fatalf("step %d: restore: %v", at, err)
			}
			start, end := keygroup.Range(j, p, d.s.maxP)
			for _, cs := range d.ck.subs {
				for k, val := range cs.entries {
					if g := int(binary.BigEndian.Uint16([]byte(k))); start <= g && g < end {
						mem.Set([]byte(k), val)
					}
				}
			}
		}
		subs[j] = d.open(j, p, mem, ts)
	}
	d.subs = subs
	d.now = now
	cts := runtime.Restored{}
	if m != nil && d.comb != nil {
		var err error
		if cts, err = runtime.Restore(m, d.comb.UID, 0, 1, d.s.maxP); err != nil {
			d.fatalf("step %d: restore the combiner: %v", at, err)
		}
	}
	d.openCombiner(cts)
	for i := from; i < at; i++ {
		switch d.s.evs[i].kind {
		case evRecord, evWatermark, evProcTime:
			d.apply(i)
		}
	}
	d.step = at
}

// run runs the whole script; the output of a script without an end counts
// as if a last checkpoint completed.
func (d *opDriver) run() {
	for i := range d.s.evs {
		d.apply(i)
	}
	d.commit()
}

// byKey groups output by key.
func byKey[T any](xs []T, key func(T) string) map[string][]T {
	m := map[string][]T{}
	for _, x := range xs {
		m[key(x)] = append(m[key(x)], x)
	}
	return m
}

// canonical orders the panes one step emitted for one key where the spec
// leaves their order open: a record or a processing-time step may fire
// several windows, and a pane is preceded by the retractions of several
// panes. It keeps each pane with the retractions right before it and sorts
// these blocks by window (the spec's order for watermarks, maxTs, is the
// same), and the retractions of a block among themselves. Retractions that
// no pane follows in their step stay last.
func canonical(ps []mOut) []mOut {
	var out []mOut
	for len(ps) > 0 {
		n := 1
		for n < len(ps) && ps[n].step == ps[0].step {
			n++
		}
		var blocks [][]mOut
		var cur []mOut
		for _, p := range ps[:n] {
			cur = append(cur, p)
			if !p.pane.Retraction {
				blocks = append(blocks, cur)
				cur = nil
			}
		}
		for _, b := range blocks {
			r := b[:len(b)-1]
			slices.SortFunc(r, func(x, y mOut) int { return strings.Compare(x.pane.String(), y.pane.String()) })
		}
		slices.SortStableFunc(blocks, func(x, y []mOut) int {
			a, b := x[len(x)-1].pane, y[len(y)-1].pane
			if c := cmpInt(a.End, b.End); c != 0 {
				return c
			}
			return cmpInt(a.Start, b.Start)
		})
		slices.SortFunc(cur, func(x, y mOut) int { return strings.Compare(x.pane.String(), y.pane.String()) })
		for _, b := range blocks {
			out = append(out, b...)
		}
		out = append(out, cur...)
		ps = ps[n:]
	}
	return out
}

// diffOutput compares the operator's output with the model's, per key:
// panes in order (see canonical) with the step that emitted them, and late
// records. It returns "" when they agree.
func diffOutput(wantPanes, gotPanes []mOut, wantLate, gotLate []mLate) string {
	var b strings.Builder
	pk := func(o mOut) string { return o.pane.Key }
	want, got := byKey(wantPanes, pk), byKey(gotPanes, pk)
	keys := slices.Sorted(maps.Keys(want))
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		w, g := canonical(want[k]), canonical(got[k])
		if slices.Equal(w, g) {
			continue
		}
		i := 0
		for i < len(w) && i < len(g) && w[i] == g[i] {
			i++
		}
		fmt.Fprintf(&b, "key %s: panes differ from the %d-th on\n", k, i+1)
		show := func(name string, xs []mOut) {
			fmt.Fprintf(&b, "  %s (%d):\n", name, len(xs))
			lo := max(0, i-3)
			if lo > 0 {
				fmt.Fprintf(&b, "    ... %d before\n", lo)
			}
			for j := lo; j < len(xs) && j < i+12; j++ {
				mark := " "
				if j == i {
					mark = ">"
				}
				fmt.Fprintf(&b, "   %s step %3d: %v\n", mark, xs[j].step, xs[j].pane)
			}
			if len(xs) > i+12 {
				fmt.Fprintf(&b, "    ... %d more\n", len(xs)-i-12)
			}
		}
		show("want (model)", w)
		show("got (operator)", g)
	}
	lk := func(l mLate) string { return l.rec.Key }
	wl, gl := byKey(wantLate, lk), byKey(gotLate, lk)
	lkeys := slices.Sorted(maps.Keys(wl))
	for k := range gl {
		if _, ok := wl[k]; !ok {
			lkeys = append(lkeys, k)
		}
	}
	for _, k := range lkeys {
		if !slices.Equal(wl[k], gl[k]) {
			fmt.Fprintf(&b, "key %s: late records differ\n  want (model):   %v\n  got (operator): %v\n", k, fmtLate(wl[k]), fmtLate(gl[k]))
		}
	}
	return b.String()
}

func fmtLate(ls []mLate) string {
	var s []string
	for _, l := range ls {
		s = append(s, fmt.Sprintf("step %d: %v", l.step, l.rec))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// checkOperator runs s through the model and the operator and fails with
// the script and the differences when they disagree.
func checkOperator(t *rapid.T, s script) {
	m := runModel(s)
	d := newOpDriver(s, func(format string, args ...any) {
		t.Fatalf("%s\nscript:\n%v", fmt.Sprintf(format, args...), s)
	})
	d.run()
	if diff := diffOutput(m.out, d.out, m.late, d.late); diff != "" {
		t.Fatalf("the window operator disagrees with the model\nscript:\n%v\n%s", s, diff)
	}
}

// TestWindowOperatorModel: the window operator, driven directly by random
// scripts (out-of-order records over a few keys, records within and beyond
// the allowed lateness, watermarks, processing time, end of input,
// checkpoints, kills with restores and rescales), emits exactly the panes
// and late records of the reference model, per key and in order.
func TestWindowOperatorModel(t *testing.T) {
	t.Run("p=1", func(t *testing.T) {
		rapidChecks(t, 3000)
		rapid.Check(t, func(t *rapid.T) {
			checkOperator(t, drawScript(t, scriptOpts{procTime: true, restore: true, ps: []int{1}, steps: 60}))
		})
	})
	t.Run("sessions", func(t *testing.T) {
		rapidChecks(t, 5000)
		rapid.Check(t, func(t *rapid.T) {
			checkOperator(t, drawScript(t, scriptOpts{procTime: true, restore: true, ps: []int{1, 2}, steps: 30, sessions: true, keys: 2}))
		})
	})
	t.Run("combiner", func(t *testing.T) {
		rapidChecks(t, 3000)
		rapid.Check(t, func(t *rapid.T) {
			checkOperator(t, drawScript(t, scriptOpts{restore: true, ps: []int{1, 2, 3}, steps: 60, combiner: true}))
		})
	})
	t.Run("rescale", func(t *testing.T) {
		rapidChecks(t, 3000)
		rapid.Check(t, func(t *rapid.T) {
			checkOperator(t, drawScript(t, scriptOpts{procTime: true, restore: true, ps: []int{1, 2, 3, 4}, steps: 60}))
		})
	})
}
