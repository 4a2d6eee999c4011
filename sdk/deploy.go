package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/weir-run/weir/internal/align"
	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/storelayout"
	"github.com/weir-run/weir/internal/watermark"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// subtaskRef names one subtask of the plan.
type subtaskRef struct{ vertex, subtask int }

// deployment is one process's share of one execution attempt of a job.
type deployment struct {
	jobID   string
	attempt int64
	net     *exchange.Network
	// route gives the data address of the process hosting a subtask; an
	// address equal to self is in this process.
	route  func(subtaskRef) string
	self   string
	logger *slog.Logger
	// ck is nil when the job does not checkpoint.
	ck *checkpointer

	mu    sync.Mutex
	tasks map[subtaskRef]*task // built tasks, for control messages
	taps  map[string]liveTap   // live taps by id, for tasks built later
}

// post delivers a control message to the process's tasks: triggers go to
// sources (they start checkpoints), completions to every task.
func (d *deployment) post(c control) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.tasks {
		switch {
		case t.source != nil:
			if c.trigger == nil && !t.hasNotify() {
				continue
			}
			select {
			case t.mailbox <- c:
			default:
				d.logger.Warn("subtask mailbox full; dropping control message", "vertex", t.v.id, "subtask", t.env.subtask)
			}
		case c.trigger == nil:
			t.gate.Post(exchange.Frame{Kind: exchange.KindRecords, Local: c})
		}
	}
}

// watermarks reports the event-time progress of the process's subtasks,
// for metrics; safe to call while they run.
func (d *deployment) watermarks(now time.Time) map[subtaskRef]watermarkStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[subtaskRef]watermarkStatus, len(d.tasks))
	for ref, t := range d.tasks {
		out[ref] = t.watermarkStatus(now)
	}
	return out
}

func (t *task) hasNotify() bool {
	for _, r := range t.runs {
		if r.notify != nil {
			return true
		}
	}
	return false
}

// taskState reports a subtask's progress to whoever supervises the process.
type taskReporter func(ref subtaskRef, st weirv1.TaskState, err error)

// channelsInto lists the input channels of subtask i of v, in gate order.
func (pl *plan) channelsInto(v *vertex, i int) ([]exchange.ChannelID, []*edge) {
	var chans []exchange.ChannelID
	var edges []*edge
	for _, e := range v.in {
		for _, j := range producersOf(e, i) {
			chans = append(chans, exchange.ChannelID{Edge: int32(e.id), Producer: int32(j), Consumer: int32(i)})
			edges = append(edges, e)
		}
	}
	return chans, edges
}

// producersOf lists the upstream subtasks feeding consumer i over e.
func producersOf(e *edge, i int) []int {
	if e.part == weirv1.Partitioning_PARTITIONING_FORWARD {
		return []int{i}
	}
	ps := make([]int, e.from.parallelism)
	for j := range ps {
		ps[j] = j
	}
	return ps
}

// consumersOf lists the downstream subtasks producer i feeds over e.
func consumersOf(e *edge, i int) []int {
	if e.part == weirv1.Partitioning_PARTITIONING_FORWARD {
		return []int{i}
	}
	cs := make([]int, e.to.parallelism)
	for j := range cs {
		cs[j] = j
	}
	return cs
}

// prepare builds subtask ref's task: its gate must exist before any
// producer sends, so run calls prepare for all local subtasks first.
func (pl *plan) prepareGate(d *deployment, ref subtaskRef) (*exchange.Gate, []*edge) {
	v := pl.vertices[ref.vertex]
	if len(v.in) == 0 {
		return nil, nil
	}
	chans, edges := pl.channelsInto(v, ref.subtask)
	return d.net.Gate(chans), edges
}

// newTask opens the subtask's output channels and builds its chain.
func (pl *plan) newTask(ctx context.Context, d *deployment, ref subtaskRef, gate *exchange.Gate, inEdges []*edge) (*task, error) {
	v := pl.vertices[ref.vertex]
	restored, err := d.ck.restoredFor(v, ref.subtask, pl.maxParallelism)
	if err != nil {
		return nil, err
	}
	env := &subtaskEnv{
		ctx: ctx, jobID: d.jobID, attempt: d.attempt, vertex: v.id, subtask: ref.subtask,
		parallelism: v.parallelism, maxParallelism: pl.maxParallelism,
		logger:   d.logger.With("vertex", v.id, "subtask", ref.subtask),
		restored: restored.items, restoredAll: restored.all, restoredParallelism: restored.parallelism,
		checkpointing: d.ck != nil && d.ck.interval > 0,
	}
	for _, k := range restored.keyed {
		for _, st := range k.GetStates() {
			if env.restoredStates == nil {
				env.restoredStates = map[string]*weirv1.StateInfo{}
			}
			env.restoredStates[stateKey(st.GetUid(), st.GetName())] = st
		}
	}
	env.metrics.init(time.Now())
	t := &task{env: env, v: v, gate: gate, out: noOutput{}, ck: d.ck, mailbox: make(chan control, 16),
		barriers: map[int64]exchange.Frame{}}
	if gate != nil {
		t.aligner = align.New(len(inEdges))
	}
	if d.ck != nil {
		t.uploader = snapshot.NewUploader(d.ck.bucket, storelayout.Shared(d.ck.jobID))
		t.uploader.OnAbort(d.ck.store.CleanUpFailedWrite)
	}
	if env.state, t.db, err = d.ck.openState(ctx, v, ref.subtask, pl.maxParallelism, restored, t.uploader); err != nil {
		return nil, err
	}
	// The tail's outputs: the main one and its side outputs, each with
	// the edges leaving from it.
	tail := v.tail()
	types := append([]streamType{tail.out}, tail.sideTypes()...)
	emits := make([]any, len(types))
	var outs outputs
	for side, st := range types {
		var edges []outEdge
		for _, e := range v.out {
			if e.link.side != side {
				continue
			}
			oe := outEdge{part: e.part, keyHash: e.link.keyHash}
			for _, j := range consumersOf(e, ref.subtask) {
				addr := d.route(subtaskRef{e.to.id, j})
				s, err := d.net.Open(ctx, exchange.ChannelID{Edge: int32(e.id), Producer: int32(ref.subtask), Consumer: int32(j)}, addr)
				if err != nil {
					return nil, fmt.Errorf("connect %s to subtask %d of %q at %s: %w", v.tail().name, j, e.to.head().name, addr, err)
				}
				oe.senders = append(oe.senders, s)
				oe.local = append(oe.local, addr == d.self)
			}
			edges = append(edges, oe)
		}
		switch {
		case len(edges) > 0:
			var out output
			emits[side], out = st.newOutput(env, edges)
			if s, ok := out.(sampler); ok && side == 0 && tappable {
				s.attachTap(&env.tap)
			}
			outs = append(outs, out)
		case st != nil:
			emits[side] = st.discard()
		}
	}
	switch len(outs) {
	case 0:
	case 1:
		t.out = outs[0]
	default:
		t.out = outs
	}
	env.setIdle = t.sendIdle
	emit := emits[0]
	t.outputWM.Store(watermark.Min)
	wmNext := func(ts int64) {
		t.outputWM.Store(ts)
		if err := t.out.watermark(ts, false); err != nil {
			env.fail(err)
		}
	}
	t.runs = make([]opRun, len(v.nodes))
	t.wmDown = make([]func(int64), len(v.nodes))
	t.wmEntry = -1
	for j := len(v.nodes) - 1; j >= 0; j-- {
		n := v.nodes[j]
		oe := &opEnv{subtaskEnv: env, uid: n.uid, emitWatermark: wmNext}
		if j == len(v.nodes)-1 {
			oe.sides = emits[1:]
		}
		if n.newSource != nil {
			src, err := n.newSource(oe, emit)
			if err != nil {
				return nil, err
			}
			t.source = &src
			break
		}
		r, err := n.newOp(oe, emit)
		if err != nil {
			return nil, err
		}
		t.runs[j] = r
		t.wmDown[j] = wmNext
		emit = r.in
		if r.watermark != nil {
			wmNext = r.watermark
			t.wmEntry = j
		}
	}
	t.wmIn, t.wm = wmNext, watermark.Min
	t.inputWM.Store(watermark.Min)
	if gate != nil {
		t.valve = watermark.New(len(inEdges))
	}
	for _, e := range inEdges {
		in := emit
		if e.link.input == 1 {
			in = t.runs[0].in2
		}
		t.decs = append(t.decs, e.from.tail().outType(e.link.side).decoder(in))
	}
	d.mu.Lock()
	if d.tasks == nil {
		d.tasks = make(map[subtaskRef]*task)
	}
	d.tasks[ref] = t
	for id := range d.taps {
		d.installTapLocked(id, ref, t)
	}
	d.mu.Unlock()
	return t, nil
}

// run executes the given subtasks of the plan in this process until they all
// end. The first failure cancels the others: the attempt is lost anyway and
// the coordinator restarts it as a whole.
func (pl *plan) run(ctx context.Context, d *deployment, refs []subtaskRef, report taskReporter) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type prepared struct {
		gate  *exchange.Gate
		edges []*edge
	}
	gates := make([]prepared, len(refs))
	for i, ref := range refs {
		gates[i].gate, gates[i].edges = pl.prepareGate(d, ref)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i, ref := range refs {
		wg.Go(func() {
			err := func() (err error) {
				// User code runs in opening, processing and closing alike:
				// a panic anywhere fails this task, not the process.
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
					}
				}()
				t, err := pl.newTask(ctx, d, ref, gates[i].gate, gates[i].edges)
				if err != nil {
					return err
				}
				report(ref, weirv1.TaskState_TASK_STATE_RUNNING, nil)
				return t.run()
			}()
			// The whole chain: a panic in any of its operators lands here.
			name := pl.vertices[ref.vertex].name()
			switch {
			case err == nil:
				report(ref, weirv1.TaskState_TASK_STATE_FINISHED, nil)
			case ctx.Err() != nil:
				// Cancelled, or collateral of another subtask's failure.
				report(ref, weirv1.TaskState_TASK_STATE_CANCELED, nil)
			default:
				err = fmt.Errorf("%s (subtask %d/%d): %w", name, ref.subtask+1, pl.vertices[ref.vertex].parallelism, err)
				report(ref, weirv1.TaskState_TASK_STATE_FAILED, err)
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel(err)
			}
		})
	}
	wg.Wait()
	return first
}
