package checkpoint

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"google.golang.org/protobuf/proto"
)

// Sentinel errors of RequestSavepoint.
var (
	ErrNotRunning       = errors.New("checkpoint: job not running")
	ErrSavepointPending = errors.New("checkpoint: a savepoint is already pending")
)

// historyLimit bounds the finished checkpoints History remembers, and so
// also how long a late ack is told AckDiscarded rather than AckUnknown.
const historyLimit = 50

// pending is a checkpoint triggered and not yet completed or aborted.
type pending struct {
	id        int64
	savepoint bool
	trigger   time.Time
	// run is the Start the checkpoint was triggered in; Notify goes only to
	// the tasks of that run.
	run uint64
	// tasks maps each task the checkpoint waits for to its index in acks. It
	// is the run's map, shared and never modified.
	tasks  map[TaskID]int
	acks   []*weirv1.CheckpointAck
	nacked int
	// storing: every task acked and Complete is out; the driver's Stored or
	// StoreFailed decides.
	storing bool

	size, uploaded, alignMs, inFlight int64
	unaligned                         bool
}

func (p *pending) info() *weirv1.CheckpointInfo {
	return &weirv1.CheckpointInfo{
		Id:               p.id,
		Status:           weirv1.CheckpointStatus_CHECKPOINT_STATUS_PENDING,
		TriggerUnixMs:    p.trigger.UnixMilli(),
		SizeBytes:        p.size,
		IncrementalBytes: p.uploaded,
		AlignmentMs:      p.alignMs,
		Savepoint:        p.savepoint,
		Unaligned:        p.unaligned,
		InFlightBytes:    p.inFlight,
	}
}

// completed is a checkpoint recorded in etcd that the coordinator keeps.
type completed struct {
	id        int64
	location  string
	savepoint bool
}

// Machine is the checkpoint coordinator of one job. It is not safe for
// concurrent use: one driver goroutine owns it.
type Machine struct {
	cfg Config

	running bool
	run     uint64
	tasks   []TaskID // sorted, of the current run
	index   map[TaskID]int
	// finished holds the tasks of the current run that ended (FLIP-147),
	// with the ack that stands for them in every checkpoint they did not
	// acknowledge themselves: they are never waited for.
	finished map[TaskID]*weirv1.CheckpointAck

	// lastID is the highest checkpoint id seen, allocated or restored.
	lastID int64
	// lastAllocated is the highest checkpoint (not savepoint) id this
	// machine allocated.
	lastAllocated int64
	// An AllocateID is out and not yet answered.
	allocPeriodic, allocSavepoint bool
	// hurryOnFail: tasks wait for their final checkpoint, one newer than
	// hurryTaken, and one pending (or being allocated) will be it, so
	// nothing was hurried; if it fails, the next is due at once (Hurry).
	hurryOnFail bool
	hurryTaken  int64

	pending   []*pending  // ascending id
	completed []completed // ascending id: retained checkpoints, at most one savepoint
	history   []*weirv1.CheckpointInfo

	// nextTrigger is when the next periodic checkpoint is due.
	nextTrigger time.Time
	// lastEnd is when the last checkpoint completed or was aborted.
	lastEnd time.Time
}

// New returns the checkpoint machine of a job, stopped. Zero Config fields take
// their defaults.
func New(cfg Config) *Machine {
	return &Machine{cfg: cfg.withDefaults()}
}

// Start says every task of the job's current attempt runs: checkpoints may
// be triggered, the first periodic one at now+Interval. tasks are the
// attempt's tasks, each of which must ack a checkpoint for it to complete;
// the slice is copied and duplicates are ignored. Start while started stops
// first, aborting the pending checkpoints.
func (c *Machine) Start(tasks []TaskID, now time.Time) []Action {
	var acts []Action
	if c.running {
		acts = c.Stop("restarted", now)
	}
	c.running = true
	c.run++
	c.tasks = slices.Clone(tasks)
	slices.SortFunc(c.tasks, compareTasks)
	c.tasks = slices.Compact(c.tasks)
	c.index = make(map[TaskID]int, len(c.tasks))
	for i, t := range c.tasks {
		c.index[t] = i
	}
	c.finished = map[TaskID]*weirv1.CheckpointAck{}
	if c.cfg.Interval > 0 {
		c.nextTrigger = now.Add(c.cfg.Interval)
	}
	return acts
}

// Stop says the attempt ended (failure, restart, finish, cancel): every
// pending checkpoint still waiting for acks is aborted, and none is
// triggered until the next Start. Checkpoints whose Complete is out are
// left to the driver's Stored or StoreFailed. An AllocateID still out is
// answered after Start as usual, or aborted if the job is still stopped.
func (c *Machine) Stop(reason string, now time.Time) []Action {
	if !c.running {
		return nil
	}
	c.running = false
	c.nextTrigger = time.Time{}
	c.hurryOnFail, c.hurryTaken = false, 0
	if reason == "" {
		reason = "no reason given"
	}
	var acts []Action
	for _, p := range slices.Clone(c.pending) {
		if !p.storing {
			acts = append(acts, c.abort(p, "job stopped: "+reason, now))
		}
	}
	return acts
}

// Tick says time passed; the driver calls it at NextWake. Pending
// checkpoints older than the timeout are aborted, then a periodic checkpoint
// is started if one is due.
func (c *Machine) Tick(now time.Time) []Action {
	if !c.running {
		return nil
	}
	var acts []Action
	for _, p := range slices.Clone(c.pending) {
		if !p.storing && !now.Before(p.trigger.Add(c.cfg.Timeout)) {
			reason := fmt.Sprintf("expired after %v: %d of %d tasks acknowledged", c.cfg.Timeout, p.nacked, len(p.acks))
			acts = append(acts, c.abort(p, reason, now))
		}
	}
	if t, ok := c.periodicAt(); ok && !now.Before(t) {
		c.allocPeriodic = true
		c.nextTrigger = now.Add(c.cfg.Interval)
		acts = append(acts, AllocateID{})
	}
	return acts
}

// Hurry says tasks wait for their final checkpoint (FLIP-147), one taken
// after the end of their input; taken is the newest checkpoint any of them
// took before its end (0: none). The next periodic checkpoint is then due
// now rather than at the next interval, so that each stage of a bounded
// job, which ends only after such a checkpoint, does not wait an interval
// in turn. MinPause and MaxConcurrent still hold.
//
// A checkpoint newer than taken that is pending in this run or being
// allocated has not been taken by them yet, so it will be taken after
// their end: it is their final checkpoint, and hurrying another would only
// trigger one that the job's end then aborts. Nothing is hurried then
// unless that checkpoint fails.
func (c *Machine) Hurry(taken int64, now time.Time) []Action {
	if !c.running || c.cfg.Interval <= 0 {
		return nil
	}
	if c.allocPeriodic || c.allocSavepoint || slices.ContainsFunc(c.pending, func(p *pending) bool { return p.run == c.run && p.id > taken }) {
		c.hurryOnFail, c.hurryTaken = true, max(c.hurryTaken, taken)
		return nil
	}
	c.hurryNow(now)
	return c.Tick(now)
}

// hurryNow makes the next periodic checkpoint due at now.
func (c *Machine) hurryNow(now time.Time) {
	c.hurryOnFail, c.hurryTaken = false, 0
	if now.Before(c.nextTrigger) {
		c.nextTrigger = now
	}
}

// failed notes that a checkpoint or an id allocation failed: if tasks wait
// for it as their final checkpoint, the next one is due at once.
func (c *Machine) failed(now time.Time) {
	c.lastEnd = now
	if c.hurryOnFail && c.running {
		c.hurryNow(now)
	}
}

// RequestSavepoint starts a savepoint, whatever Interval, MinPause and
// MaxConcurrent say. It fails with ErrNotRunning when the job is stopped and
// with ErrSavepointPending while another savepoint is under way.
func (c *Machine) RequestSavepoint(now time.Time) ([]Action, error) {
	if !c.running {
		return nil, ErrNotRunning
	}
	if c.allocSavepoint || slices.ContainsFunc(c.pending, func(p *pending) bool { return p.savepoint }) {
		return nil, ErrSavepointPending
	}
	c.allocSavepoint = true
	return []Action{AllocateID{Savepoint: true}}, nil
}

// IDAllocated answers AllocateID{savepoint} with a fresh id from etcd and
// triggers the checkpoint. Ids must strictly increase: an id not above
// every id seen before is refused with an Abort naming it and the request
// fails; nothing else changes, so a pending checkpoint with that id (a
// broken counter) carries on. An id nobody asked for, or one arriving while
// the job is stopped, is aborted too.
func (c *Machine) IDAllocated(id int64, savepoint bool, now time.Time) []Action {
	alloc := &c.allocPeriodic
	if savepoint {
		alloc = &c.allocSavepoint
	}
	if id <= c.lastID {
		if *alloc {
			*alloc = false
			c.lastEnd = now
		}
		reason := fmt.Sprintf("checkpoint id %d refused: not above the last id %d", id, c.lastID)
		return []Action{Abort{ID: id, Savepoint: savepoint, Reason: reason}}
	}
	c.lastID = id
	if !savepoint {
		c.lastAllocated = id
	}
	if !*alloc {
		return []Action{Abort{ID: id, Savepoint: savepoint, Reason: "no checkpoint id was requested"}}
	}
	*alloc = false
	if !c.running {
		c.lastEnd = now
		c.remember(&weirv1.CheckpointInfo{
			Id:            id,
			Status:        weirv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED,
			TriggerUnixMs: now.UnixMilli(),
			Savepoint:     savepoint,
			Failure:       "job not running",
		})
		return []Action{Abort{ID: id, Savepoint: savepoint, Reason: "job not running"}}
	}
	p := &pending{
		id:        id,
		savepoint: savepoint,
		trigger:   now,
		run:       c.run,
		tasks:     c.index,
		acks:      make([]*weirv1.CheckpointAck, len(c.tasks)),
	}
	for t, ack := range c.finished {
		p.record(c.index[t], ack)
	}
	// id is above every pending id, so the list stays sorted.
	c.pending = append(c.pending, p)
	acts := []Action{Trigger{ID: id, Timestamp: now, Savepoint: savepoint}}
	if p.nacked == len(p.acks) {
		acts = append(acts, c.acked(p))
	}
	return acts
}

// Finished says task ended after reaching the end of its input (FLIP-147):
// it acks no checkpoint any more, and none waits for it. Every pending
// checkpoint it has not acknowledged, and every later one, records ack in
// its place: the driver makes it a snapshot marked finished, so that a
// restore starts the task finished instead of reading its input again. A
// pending checkpoint it was the last one missing from completes here. The
// driver reports a task's own acks before its end (the task waits for its
// uploads before it exits), so an ack the task sent is never replaced. A
// task not of the current run, or already finished, changes nothing; so
// does a stopped machine.
func (c *Machine) Finished(task TaskID, ack *weirv1.CheckpointAck, now time.Time) []Action {
	i, ok := c.index[task]
	if !c.running || !ok || c.finished[task] != nil {
		return nil
	}
	if ack == nil {
		ack = &weirv1.CheckpointAck{}
	}
	c.finished[task] = ack
	var acts []Action
	for _, p := range slices.Clone(c.pending) {
		if p.storing || p.acks[i] != nil {
			continue
		}
		p.record(i, ack)
		if p.nacked == len(p.acks) {
			acts = append(acts, c.acked(p))
		}
	}
	return acts
}

// IDFailed answers AllocateID{savepoint} when no id could be allocated. The
// request fails with an Abort of ID 0; a periodic checkpoint is tried again
// at the next interval.
func (c *Machine) IDFailed(savepoint bool, reason string, now time.Time) []Action {
	alloc := &c.allocPeriodic
	if savepoint {
		alloc = &c.allocSavepoint
	}
	if !*alloc {
		return nil
	}
	*alloc = false
	c.failed(now)
	return []Action{Abort{Savepoint: savepoint, Reason: "allocating a checkpoint id: " + reason}}
}

// Ack records task's acknowledgement of checkpoint id. When it is the last
// one missing, the checkpoint is complete: the Complete action carries every
// ack. The coordinator keeps ack (a nil ack counts as an empty one); the
// caller must not modify it afterwards.
func (c *Machine) Ack(id int64, task TaskID, ack *weirv1.CheckpointAck, now time.Time) (AckResult, []Action) {
	p := c.find(id)
	if p == nil {
		switch c.recalled(id) {
		case weirv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED:
			return AckDiscarded, nil
		case weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED:
			return AckDuplicate, nil
		}
		return AckUnknown, nil
	}
	i, ok := p.tasks[task]
	if !ok {
		return AckUnknown, nil
	}
	if p.acks[i] != nil {
		return AckDuplicate, nil
	}
	if ack == nil {
		ack = &weirv1.CheckpointAck{}
	}
	p.record(i, ack)
	if p.nacked < len(p.acks) {
		return AckSuccess, nil
	}
	return AckSuccess, []Action{c.acked(p)}
}

// record keeps ack as the i-th task's.
func (p *pending) record(i int, ack *weirv1.CheckpointAck) {
	p.acks[i] = ack
	p.nacked++
	p.size += ack.GetStateBytes()
	p.uploaded += ack.GetUploadedBytes()
	p.alignMs = max(p.alignMs, ack.GetAlignmentMs())
	p.unaligned = p.unaligned || ack.GetUnaligned()
	p.inFlight += ack.GetInFlightBytes()
}

// acked hands a fully acknowledged checkpoint to the driver to store.
func (c *Machine) acked(p *pending) Action {
	p.storing = true
	return Complete{ID: p.id, Savepoint: p.savepoint, Acks: slices.Clone(p.acks)}
}

// Decline aborts checkpoint id because task could not take it. Declines
// for checkpoints not waiting for acks, or from tasks they do not wait for,
// are ignored.
func (c *Machine) Decline(id int64, task TaskID, reason string, now time.Time) []Action {
	p := c.find(id)
	if p == nil || p.storing {
		return nil
	}
	if _, ok := p.tasks[task]; !ok {
		return nil
	}
	if reason == "" {
		reason = "no reason given"
	}
	return []Action{c.abort(p, fmt.Sprintf("declined by %s: %s", task, reason), now)}
}

// Stored says the driver wrote checkpoint id's manifest to location and
// recorded it in etcd: it is complete. The actions are, in order: Notify
// (when the checkpoint belongs to the running attempt), an Abort for each
// older pending checkpoint it subsumes (savepoints and checkpoints being
// stored are not subsumed), and a Discard for each completed checkpoint
// beyond Retained, oldest first. Stored for a checkpoint with no Complete
// out is ignored.
func (c *Machine) Stored(id int64, location string, now time.Time) []Action {
	p := c.find(id)
	if p == nil || !p.storing {
		return nil
	}
	c.remove(p)
	c.lastEnd = now
	if p.run == c.run && id > c.hurryTaken {
		// The tasks that waited for a final checkpoint took this one.
		c.hurryOnFail, c.hurryTaken = false, 0
	}
	info := p.info()
	info.Status = weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED
	info.DurationMs = now.Sub(p.trigger).Milliseconds()
	info.Location = location
	c.remember(info)

	var acts []Action
	if c.running && p.run == c.run {
		acts = append(acts, Notify{ID: id})
	}
	for _, q := range slices.Clone(c.pending) {
		if q.id < id && !q.savepoint && !q.storing {
			acts = append(acts, c.abort(q, fmt.Sprintf("subsumed by checkpoint %d", id), now))
		}
	}
	c.addCompleted(completed{id: id, location: location, savepoint: p.savepoint})
	return append(acts, c.retain()...)
}

// StoreFailed says the driver could not store checkpoint id: it is aborted.
// StoreFailed for a checkpoint with no Complete out is ignored.
func (c *Machine) StoreFailed(id int64, reason string, now time.Time) []Action {
	p := c.find(id)
	if p == nil || !p.storing {
		return nil
	}
	if reason == "" {
		reason = "no reason given"
	}
	return []Action{c.abort(p, "storing the checkpoint failed: "+reason, now)}
}

// Restored seeds a completed checkpoint found in etcd, on a new leader or a
// restart, before Start: later ids must be above it, Latest may return it,
// and retention counts it. Retention discards only on the next Stored, so
// the Discards come from there. info may be nil; its id, status and location
// are taken from the arguments, and the coordinator keeps a copy.
func (c *Machine) Restored(id int64, location string, info *weirv1.CheckpointInfo) {
	if id <= 0 {
		return
	}
	c.lastID = max(c.lastID, id)
	h := &weirv1.CheckpointInfo{}
	if info != nil {
		h = proto.CloneOf(info)
	}
	h.Id = id
	h.Status = weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED
	h.Location = location
	h.Failure = ""
	c.remember(h)
	c.addCompleted(completed{id: id, location: location, savepoint: h.GetSavepoint()})
}

// Latest returns the newest completed checkpoint or savepoint: the one to
// restore from.
func (c *Machine) Latest() (id int64, location string, ok bool) {
	if len(c.completed) == 0 {
		return 0, "", false
	}
	l := c.completed[len(c.completed)-1]
	return l.id, l.location, true
}

// Quiet reports whether no checkpoint is pending or being allocated and
// the last checkpoint this machine allocated completed and is retained:
// then every subtask's latest incremental upload is that checkpoint's,
// whose files a retained manifest lists. Savepoints upload nothing shared
// and do not count. It returns that checkpoint's id.
func (c *Machine) Quiet() (int64, bool) {
	if len(c.pending) > 0 || c.allocPeriodic || c.allocSavepoint || c.lastAllocated == 0 {
		return 0, false
	}
	for _, cp := range c.completed {
		if cp.id == c.lastAllocated && !cp.savepoint {
			return cp.id, true
		}
	}
	return 0, false
}

// Retained lists the completed checkpoints and savepoint the machine keeps,
// ascending id, with their manifest locations.
func (c *Machine) Retained() (ids []int64, locations []string) {
	for _, cp := range c.completed {
		ids, locations = append(ids, cp.id), append(locations, cp.location)
	}
	return ids, locations
}

// History returns the pending checkpoints and the last completed and
// failed ones (up to 50), newest first. Durations of pending checkpoints
// are 0. The messages are the caller's.
func (c *Machine) History() []*weirv1.CheckpointInfo {
	out := make([]*weirv1.CheckpointInfo, 0, len(c.pending)+len(c.history))
	for _, p := range c.pending {
		out = append(out, p.info())
	}
	for _, h := range c.history {
		out = append(out, proto.CloneOf(h))
	}
	slices.SortFunc(out, func(a, b *weirv1.CheckpointInfo) int { return cmp.Compare(b.GetId(), a.GetId()) })
	return out
}

// NextWake returns when the driver must call Tick: the first pending
// checkpoint's deadline or the next periodic trigger, whichever is first;
// it may be in the past. ok is false when no Tick is needed: the job is
// stopped, or nothing will happen without another event.
func (c *Machine) NextWake() (time.Time, bool) {
	if !c.running {
		return time.Time{}, false
	}
	wake, ok := c.periodicAt()
	for _, p := range c.pending {
		if p.storing {
			continue
		}
		if d := p.trigger.Add(c.cfg.Timeout); !ok || d.Before(wake) {
			wake, ok = d, true
		}
	}
	return wake, ok
}

// periodicAt returns when the next periodic checkpoint may start, if
// nothing but time stands in its way.
func (c *Machine) periodicAt() (time.Time, bool) {
	if !c.running || c.cfg.Interval <= 0 || c.allocPeriodic || (len(c.tasks) > 0 && len(c.finished) == len(c.tasks)) {
		// With every task finished there is nothing left to checkpoint:
		// the job is about to end.
		return time.Time{}, false
	}
	n := 0
	for _, p := range c.pending {
		if !p.savepoint {
			n++
		}
	}
	limit := c.cfg.MaxConcurrent
	if c.cfg.MinPause > 0 {
		// A pause between checkpoints means they do not overlap (Flink).
		limit = 1
	}
	if n >= limit {
		return time.Time{}, false
	}
	at := c.nextTrigger
	if c.cfg.MinPause > 0 && !c.lastEnd.IsZero() {
		if p := c.lastEnd.Add(c.cfg.MinPause); p.After(at) {
			at = p
		}
	}
	return at, true
}

// abort ends pending checkpoint p as failed.
func (c *Machine) abort(p *pending, reason string, now time.Time) Action {
	c.remove(p)
	c.failed(now)
	info := p.info()
	info.Status = weirv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED
	info.DurationMs = now.Sub(p.trigger).Milliseconds()
	info.Failure = reason
	c.remember(info)
	return Abort{ID: p.id, Savepoint: p.savepoint, Reason: reason}
}

func (c *Machine) find(id int64) *pending {
	for _, p := range c.pending {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (c *Machine) remove(p *pending) {
	c.pending = slices.DeleteFunc(c.pending, func(q *pending) bool { return q == p })
}

// remember adds a finished checkpoint to the history, replacing one with
// the same id, and forgets the oldest beyond historyLimit.
func (c *Machine) remember(info *weirv1.CheckpointInfo) {
	i, found := slices.BinarySearchFunc(c.history, info.GetId(), func(h *weirv1.CheckpointInfo, id int64) int {
		return cmp.Compare(h.GetId(), id)
	})
	if found {
		c.history[i] = info
		return
	}
	c.history = slices.Insert(c.history, i, info)
	if len(c.history) > historyLimit {
		c.history = slices.Delete(c.history, 0, len(c.history)-historyLimit)
	}
}

// recalled returns the status of a finished checkpoint still in the history.
func (c *Machine) recalled(id int64) weirv1.CheckpointStatus {
	for _, h := range c.history {
		if h.GetId() == id {
			return h.GetStatus()
		}
	}
	return weirv1.CheckpointStatus_CHECKPOINT_STATUS_UNSPECIFIED
}

// addCompleted inserts cp in id order, replacing one with the same id. Only
// the newest completed entry may be a savepoint: older savepoints are never
// discarded nor the latest, so there is no reason to keep them.
func (c *Machine) addCompleted(cp completed) {
	i, found := slices.BinarySearchFunc(c.completed, cp.id, func(e completed, id int64) int {
		return cmp.Compare(e.id, id)
	})
	if found {
		c.completed[i] = cp
	} else {
		c.completed = slices.Insert(c.completed, i, cp)
	}
	newest := c.completed[len(c.completed)-1].id
	c.completed = slices.DeleteFunc(c.completed, func(e completed) bool {
		return e.savepoint && e.id != newest
	})
}

// retain discards the oldest completed checkpoints beyond Retained.
func (c *Machine) retain() []Action {
	n := 0
	for _, e := range c.completed {
		if !e.savepoint {
			n++
		}
	}
	var acts []Action
	for n > c.cfg.Retained {
		i := slices.IndexFunc(c.completed, func(e completed) bool { return !e.savepoint })
		e := c.completed[i]
		c.completed = slices.Delete(c.completed, i, i+1)
		acts = append(acts, Discard{ID: e.id, Location: e.location})
		n--
	}
	return acts
}
