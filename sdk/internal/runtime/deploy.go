package runtime

import (
	"cmp"
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

// SubtaskRef names one subtask of a graph.
type SubtaskRef struct{ Vertex, Subtask int }

// Deployment is one process's share of one execution attempt of a job.
// Its exported fields are set before Graph.Run.
type Deployment struct {
	JobID   string
	Attempt int64
	Net     *exchange.Network
	// Route gives the data address of the process hosting a subtask; an
	// address equal to Self is in this process.
	Route  func(SubtaskRef) string
	Self   string
	Logger *slog.Logger
	// ck is nil when the job does not checkpoint.
	ck *checkpointer
	// stateCacheBytes is each keyed subtask's hot-state cache budget: its
	// share of the process's (Run sets it).
	stateCacheBytes int64

	mu    sync.Mutex
	tasks map[SubtaskRef]*task // built tasks, for control messages
	taps  map[string]liveTap   // live taps by id, for tasks built later
}

// post delivers a control message to the process's tasks: triggers go to
// sources (they start checkpoints) and to subtasks waiting for their final
// checkpoint, completions to every task.
func (d *Deployment) post(c control) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.tasks {
		// Under the subtask's finishing lock: it starts waiting either
		// before (and gets c queued) or after (and drains c from its
		// mailbox or gate).
		t.fin.mu.Lock()
		if !t.fin.offerLocked(c) {
			d.postLive(t, c)
		}
		t.fin.mu.Unlock()
	}
}

// postLive delivers c to a subtask still reading its input.
func (d *Deployment) postLive(t *task, c control) {
	switch {
	case t.source != nil:
		if c.trigger == nil && !t.hasNotify() {
			return
		}
		select {
		case t.mailbox <- c:
		default:
			d.Logger.Warn("subtask mailbox full; dropping control message", "vertex", t.v.ID, "subtask", t.env.subtask)
		}
	case c.trigger == nil:
		t.gate.Post(exchange.Frame{Kind: exchange.KindRecords, Local: c})
	}
}

// Watermarks reports the event-time progress of the process's subtasks,
// for metrics; safe to call while they run.
func (d *Deployment) Watermarks(now time.Time) map[SubtaskRef]WatermarkStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[SubtaskRef]WatermarkStatus, len(d.tasks))
	for ref, t := range d.tasks {
		out[ref] = t.watermarkStatus(now)
	}
	return out
}

func (t *task) hasNotify() bool {
	for _, r := range t.runs {
		if r.Notify != nil {
			return true
		}
	}
	return false
}

// Reporter reports a subtask's progress to whoever supervises the process.
type Reporter func(ref SubtaskRef, st weirv1.TaskState, err error)

// channelsInto lists the input channels of subtask i of v, in gate order.
func (g *Graph) channelsInto(v *Vertex, i int) ([]exchange.ChannelID, []*Edge) {
	var chans []exchange.ChannelID
	var edges []*Edge
	for _, e := range v.In {
		for _, j := range producersOf(e, i) {
			chans = append(chans, exchange.ChannelID{Edge: int32(e.ID), Producer: int32(j), Consumer: int32(i)})
			edges = append(edges, e)
		}
	}
	return chans, edges
}

// producersOf lists the upstream subtasks feeding consumer i over e.
func producersOf(e *Edge, i int) []int {
	if e.Part == weirv1.Partitioning_PARTITIONING_FORWARD {
		return []int{i}
	}
	ps := make([]int, e.From.Parallelism)
	for j := range ps {
		ps[j] = j
	}
	return ps
}

// consumersOf lists the downstream subtasks producer i feeds over e.
func consumersOf(e *Edge, i int) []int {
	if e.Part == weirv1.Partitioning_PARTITIONING_FORWARD {
		return []int{i}
	}
	cs := make([]int, e.To.Parallelism)
	for j := range cs {
		cs[j] = j
	}
	return cs
}

// prepareGate opens subtask ref's input gate: it must exist before any
// producer sends, so Run opens the gates of all its subtasks first.
func (g *Graph) prepareGate(d *Deployment, ref SubtaskRef) (*exchange.Gate, []*Edge) {
	v := g.Vertices[ref.Vertex]
	if len(v.In) == 0 {
		return nil, nil
	}
	chans, edges := g.channelsInto(v, ref.Subtask)
	return d.Net.Gate(chans), edges
}

// newTask opens the subtask's output channels and builds its chain.
func (g *Graph) newTask(ctx context.Context, d *Deployment, ref SubtaskRef, gate *exchange.Gate, inEdges []*Edge) (*task, error) {
	v := g.Vertices[ref.Vertex]
	restored, err := d.ck.restoredFor(v, ref.Subtask, g.MaxParallelism)
	if err != nil {
		return nil, err
	}
	env := &subtaskEnv{
		ctx: ctx, jobID: d.JobID, attempt: d.Attempt, vertex: v.ID, subtask: ref.Subtask,
		parallelism: v.Parallelism, maxParallelism: g.MaxParallelism,
		logger:        d.Logger.With("vertex", v.ID, "subtask", ref.Subtask),
		restored:      restored,
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
		barriers: map[int64]exchange.Frame{}, bufferTimeout: cmp.Or(g.BufferTimeout, bufferTimeout)}
	if gate != nil {
		t.aligner = align.New(len(inEdges))
	}
	if d.ck != nil {
		t.uploader = snapshot.NewUploader(d.ck.bucket, storelayout.Shared(d.ck.jobID)).Seal(d.ck.key)
		t.uploader.OnAbort(d.ck.store.CleanUpFailedWrite)
	}
	if env.state, t.db, err = d.ck.openState(ctx, v, ref.Subtask, g.MaxParallelism, restored, t.uploader, d.stateCacheBytes); err != nil {
		return nil, err
	}
	// The tail's outputs: the main one and its side outputs, each with
	// the edges leaving from it.
	tail := v.tail()
	types := append([]StreamType{tail.Out}, tail.Sides...)
	emits := make([]any, len(types))
	var outs outputs
	for side, st := range types {
		var edges []outEdge
		for _, e := range v.Out {
			if e.Side != side {
				continue
			}
			oe := outEdge{part: e.Part, keyHash: e.KeyHash}
			for _, j := range consumersOf(e, ref.Subtask) {
				addr := d.Route(SubtaskRef{e.To.ID, j})
				s, err := d.Net.Open(ctx, exchange.ChannelID{Edge: int32(e.ID), Producer: int32(ref.Subtask), Consumer: int32(j)}, addr)
				if err != nil {
					return nil, fmt.Errorf("connect %s to subtask %d of %q at %s: %w", v.tail().Name, j, e.To.head().Name, addr, err)
				}
				oe.senders = append(oe.senders, s)
				oe.local = append(oe.local, exchange.IsLocal(s))
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
	t.runs = make([]OpRun, len(v.Operators))
	t.wmDown = make([]func(int64), len(v.Operators))
	t.wmEntry = -1
	for j := len(v.Operators) - 1; j >= 0; j-- {
		n := v.Operators[j]
		oe := &Env{subtaskEnv: env, uid: n.UID, emitWatermark: wmNext}
		if j == len(v.Operators)-1 {
			oe.sides = emits[1:]
		}
		if n.NewSource != nil {
			src, err := n.NewSource(oe, emit)
			if err != nil {
				return nil, err
			}
			t.source = &src
			break
		}
		r, err := n.NewOp(oe, emit)
		if err != nil {
			return nil, err
		}
		t.runs[j] = r
		t.wmDown[j] = wmNext
		emit = r.In
		if r.Watermark != nil {
			wmNext = r.Watermark
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
		if e.Input == 1 {
			in = t.runs[0].In2
		}
		st := e.From.tail().outType(e.Side)
		t.decs = append(t.decs, st.decoder(in))
		i := len(t.marks)
		t.marks = append(t.marks, func(ts int64) { t.valveStatus(t.valve.Watermark(i, ts)) })
		t.encs = append(t.encs, st.encoded)
		t.edgeIDs = append(t.edgeIDs, int32(e.ID))
	}
	d.mu.Lock()
	if d.tasks == nil {
		d.tasks = make(map[SubtaskRef]*task)
	}
	d.tasks[ref] = t
	for id := range d.taps {
		d.installTapLocked(id, ref, t)
	}
	d.mu.Unlock()
	return t, nil
}

// Run executes the given subtasks of the graph in this process until they all
// end. The first failure cancels the others: the attempt is lost anyway and
// the coordinator restarts it as a whole.
func (g *Graph) Run(ctx context.Context, d *Deployment, refs []SubtaskRef, report Reporter) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type prepared struct {
		gate  *exchange.Gate
		edges []*Edge
	}
	gates := make([]prepared, len(refs))
	keyed := 0
	for i, ref := range refs {
		gates[i].gate, gates[i].edges = g.prepareGate(d, ref)
		if g.Vertices[ref.Vertex].keyed() {
			keyed++
		}
	}
	d.stateCacheBytes = stateCacheShare(processStateCacheBytes(debug.SetMemoryLimit(-1)), keyed)
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
				t, err := g.newTask(ctx, d, ref, gates[i].gate, gates[i].edges)
				if err != nil {
					return err
				}
				report(ref, weirv1.TaskState_TASK_STATE_RUNNING, nil)
				return t.run()
			}()
			// The whole chain: a panic in any of its operators lands here.
			name := g.Vertices[ref.Vertex].Name()
			switch {
			case err == nil:
				report(ref, weirv1.TaskState_TASK_STATE_FINISHED, nil)
			case ctx.Err() != nil:
				// Cancelled, or collateral of another subtask's failure.
				report(ref, weirv1.TaskState_TASK_STATE_CANCELED, nil)
			default:
				err = fmt.Errorf("%s (subtask %d/%d): %w", name, ref.Subtask+1, g.Vertices[ref.Vertex].Parallelism, err)
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
