package checkpoint

import (
	"fmt"
	"slices"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"pgregory.net/rapid"
)

// driver is a fake driver: it answers the coordinator's actions the way the
// real one would (and sometimes the way a broken one would), and keeps its
// own account of what it saw to check the coordinator against.
type driver struct {
	t   *rapid.T
	c   *Machine
	cfg Config
	now time.Time

	running bool
	tasks   []TaskID
	run     int
	// finished holds the tasks of the current run reported Finished, with
	// the ack given for them.
	finished map[TaskID]*weirv1.CheckpointAck

	allocs    []bool // savepoint flags of the AllocateIDs not yet answered
	nextID    int64  // the last id given out
	lastTrig  int64
	triggered map[int64]*trig
	storing   []int64 // Complete out, Stored/StoreFailed not yet called
	completed map[int64]bool
	discarded map[int64]bool
}

type trig struct {
	savepoint bool
	tasks     []TaskID // of the attempt it was triggered in, sorted
	sent      map[TaskID]*weirv1.CheckpointAck
	live      bool // neither aborted nor stored
	run       int
}

func (d *driver) apply(acts []Action) {
	t := d.t
	for _, a := range acts {
		switch a := a.(type) {
		case AllocateID:
			if !d.running {
				t.Fatalf("AllocateID while stopped")
			}
			d.allocs = append(d.allocs, a.Savepoint)
		case Trigger:
			if !d.running {
				t.Fatalf("Trigger %d while stopped", a.ID)
			}
			if a.ID <= d.lastTrig {
				t.Fatalf("Trigger %d after %d: ids must strictly increase", a.ID, d.lastTrig)
			}
			if !a.Timestamp.Equal(d.now) {
				t.Fatalf("Trigger %d timestamp %v, now %v", a.ID, a.Timestamp, d.now)
			}
			d.lastTrig = a.ID
			// Complete lists acks in task order.
			tasks := slices.SortedFunc(slices.Values(d.tasks), compareTasks)
			tr := &trig{savepoint: a.Savepoint, tasks: tasks, sent: map[TaskID]*weirv1.CheckpointAck{}, live: true, run: d.run}
			// A finished task's ack stands in from the start.
			for task, ack := range d.finished {
				tr.sent[task] = ack
			}
			d.triggered[a.ID] = tr
		case Complete:
			tr := d.triggered[a.ID]
			if tr == nil || !tr.live || slices.Contains(d.storing, a.ID) {
				t.Fatalf("Complete %d: not a live checkpoint", a.ID)
			}
			if a.Savepoint != tr.savepoint {
				t.Fatalf("Complete %d: savepoint %v, triggered as %v", a.ID, a.Savepoint, tr.savepoint)
			}
			if len(a.Acks) != len(tr.tasks) {
				t.Fatalf("Complete %d with %d acks for %d tasks", a.ID, len(a.Acks), len(tr.tasks))
			}
			for i, task := range tr.tasks {
				if tr.sent[task] == nil {
					t.Fatalf("Complete %d without an ack from %s", a.ID, task)
				}
				if a.Acks[i] != tr.sent[task] {
					t.Fatalf("Complete %d: ack %d is not %s's first ack", a.ID, i, task)
				}
			}
			d.storing = append(d.storing, a.ID)
		case Notify:
			if !d.completed[a.ID] {
				t.Fatalf("Notify %d before it was stored", a.ID)
			}
		case Abort:
			if a.ID == 0 {
				continue
			}
			if tr := d.triggered[a.ID]; tr != nil && tr.live && !slices.Contains(d.storing, a.ID) {
				tr.live = false
			}
		case Discard:
			if !d.completed[a.ID] || d.discarded[a.ID] {
				t.Fatalf("Discard %d: not a retained checkpoint", a.ID)
			}
			if d.triggered[a.ID].savepoint {
				t.Fatalf("Discard %d: a savepoint", a.ID)
			}
			d.discarded[a.ID] = true
		default:
			t.Fatalf("unknown action %T", a)
		}
	}
	d.check()
}

// check asserts the invariants that hold between events.
func (d *driver) check() {
	t := d.t
	periodic := 0
	for _, sp := range d.allocs {
		if !sp {
			periodic++
		}
	}
	pending := map[int64]bool{}
	for id, tr := range d.triggered {
		if tr.live && !tr.savepoint {
			periodic++
		}
		if tr.live {
			pending[id] = true
		}
	}
	limit := d.cfg.withDefaults().MaxConcurrent
	if d.cfg.MinPause > 0 {
		limit = 1
	}
	if periodic > limit {
		t.Fatalf("%d periodic checkpoints pending or allocating, limit %d", periodic, limit)
	}
	for _, h := range d.c.History() {
		if h.GetStatus() == weirv1.CheckpointStatus_CHECKPOINT_STATUS_PENDING && !pending[h.GetId()] {
			t.Fatalf("History has %d pending, the driver does not", h.GetId())
		}
		delete(pending, h.GetId())
	}
	if len(pending) > 0 {
		t.Fatalf("History misses pending %v", pending)
	}
	retained := 0
	for id := range d.completed {
		if !d.discarded[id] && !d.triggered[id].savepoint {
			retained++
		}
	}
	if retained > d.cfg.withDefaults().Retained {
		t.Fatalf("%d checkpoints retained", retained)
	}
	var newest int64
	for id := range d.completed {
		newest = max(newest, id)
	}
	if id, _, ok := d.c.Latest(); ok != (newest > 0) || id != newest {
		t.Fatalf("Latest = %d, %v; newest stored %d", id, ok, newest)
	}
	if w, ok := d.c.NextWake(); ok && !d.running {
		t.Fatalf("NextWake %v while stopped", w)
	}
}

func (d *driver) pick(label string) (int64, *trig, bool) {
	var ids []int64
	for id := range d.triggered {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return 0, nil, false
	}
	slices.Sort(ids)
	id := rapid.SampledFrom(ids).Draw(d.t, label)
	return id, d.triggered[id], true
}

func genTasks(t *rapid.T) []TaskID {
	n := rapid.IntRange(1, 4).Draw(t, "ntasks")
	tasks := make([]TaskID, n)
	for i := range tasks {
		tasks[i] = TaskID{Vertex: int32(i % 2), Subtask: int32(i / 2)}
	}
	return tasks
}

// TestPropertyRandomEvents drives the coordinator through random event
// sequences with a fake driver that mostly behaves, checking that no
// checkpoint completes without every task's ack, that triggered ids strictly
// increase, that at most MaxConcurrent periodic checkpoints are pending, and
// that retention, Latest and History agree with what the driver saw.
func TestPropertyRandomEvents(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			Interval:      rapid.SampledFrom([]time.Duration{0, time.Second, 3 * time.Second}).Draw(t, "interval"),
			Timeout:       rapid.SampledFrom([]time.Duration{2 * time.Second, 5 * time.Second}).Draw(t, "timeout"),
			MinPause:      rapid.SampledFrom([]time.Duration{0, 0, 500 * time.Millisecond}).Draw(t, "minPause"),
			MaxConcurrent: rapid.IntRange(0, 3).Draw(t, "maxConcurrent"),
			Retained:      rapid.IntRange(0, 3).Draw(t, "retained"),
		}
		d := &driver{
			t: t, c: New(cfg), cfg: cfg, now: epoch,
			triggered: map[int64]*trig{}, completed: map[int64]bool{}, discarded: map[int64]bool{},
		}
		for range rapid.IntRange(0, 150).Draw(t, "steps") {
			if w, ok := d.c.NextWake(); ok && w.After(d.now) && rapid.IntRange(0, 3).Draw(t, "toWake") == 0 {
				d.now = w
			} else {
				d.now = d.now.Add(time.Duration(rapid.IntRange(0, 700).Draw(t, "ms")) * time.Millisecond)
			}
			switch ev := rapid.IntRange(0, 14).Draw(t, "event"); ev {
			case 0:
				d.tasks = genTasks(t)
				d.running = true
				d.run++
				d.finished = map[TaskID]*weirv1.CheckpointAck{}
				d.apply(d.c.Start(d.tasks, d.now))
			case 1:
				d.running = false
				d.apply(d.c.Stop("test", d.now))
			case 2, 3:
				d.apply(d.c.Tick(d.now))
			case 4:
				acts, err := d.c.RequestSavepoint(d.now)
				if (err != nil) != (len(acts) == 0) {
					t.Fatalf("RequestSavepoint: %v with %v", err, acts)
				}
				d.apply(acts)
			case 5, 6:
				if len(d.allocs) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(d.allocs)-1).Draw(t, "alloc")
				sp := d.allocs[i]
				d.allocs = slices.Delete(d.allocs, i, i+1)
				answer := rapid.IntRange(0, 9).Draw(t, "answer")
				if answer == 1 && d.nextID == 0 {
					answer = 2 // nothing to go back from
				}
				switch answer {
				case 0:
					d.apply(d.c.IDFailed(sp, "etcd down", d.now))
				case 1:
					// A broken counter: the id goes back. The Abort names
					// the refused id, which may be a live checkpoint's, so
					// it is checked here rather than applied.
					id := d.nextID - rapid.Int64Range(0, 2).Draw(t, "back")
					acts := d.c.IDAllocated(id, sp, d.now)
					if len(acts) != 1 {
						t.Fatalf("id %d going back: %v", id, acts)
					}
					if a, ok := acts[0].(Abort); !ok || a.ID != id || a.Savepoint != sp {
						t.Fatalf("id %d going back: %v", id, acts)
					}
					d.check()
				default:
					d.nextID += rapid.Int64Range(1, 2).Draw(t, "step")
					d.apply(d.c.IDAllocated(d.nextID, sp, d.now))
				}
			case 7, 8, 9:
				id, tr, ok := d.pick("ackID")
				if !ok {
					continue
				}
				task := rapid.SampledFrom(append(slices.Clone(tr.tasks), TaskID{9, 9})).Draw(t, "ackTask")
				ack := &weirv1.CheckpointAck{CheckpointId: id, StateBytes: 10, UploadedBytes: 1, AlignmentMs: 2}
				res, acts := d.c.Ack(id, task, ack, d.now)
				if res == AckSuccess {
					if tr.sent[task] != nil || !slices.Contains(tr.tasks, task) || !tr.live {
						t.Fatalf("ack %d from %s: success, but sent before %v, live %v", id, task, tr.sent[task] != nil, tr.live)
					}
					tr.sent[task] = ack
				} else if len(acts) > 0 {
					t.Fatalf("ack %d: %s with actions %v", id, res, acts)
				}
				if res == AckDuplicate && tr.sent[task] == nil && !d.completed[id] {
					t.Fatalf("ack %d from %s: duplicate of nothing", id, task)
				}
				d.apply(acts)
			case 10:
				id, tr, ok := d.pick("declineID")
				if !ok {
					continue
				}
				task := rapid.SampledFrom(tr.tasks).Draw(t, "declineTask")
				d.apply(d.c.Decline(id, task, "no", d.now))
			case 11, 12:
				if len(d.storing) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(d.storing)-1).Draw(t, "store")
				id := d.storing[i]
				d.storing = slices.Delete(d.storing, i, i+1)
				d.triggered[id].live = false
				if rapid.IntRange(0, 4).Draw(t, "storeFails") == 0 {
					acts := d.c.StoreFailed(id, "full", d.now)
					if len(acts) != 1 || acts[0].(Abort).ID != id {
						t.Fatalf("StoreFailed %d: %v", id, acts)
					}
					d.apply(acts)
					continue
				}
				d.completed[id] = true
				d.apply(d.c.Stored(id, fmt.Sprintf("chk-%d", id), d.now))
			case 14:
				// A task ends (FLIP-147): pending checkpoints of its run it
				// did not ack take the finished ack, and so do later ones.
				if len(d.tasks) == 0 {
					continue
				}
				task := rapid.SampledFrom(d.tasks).Draw(t, "finishedTask")
				ack := &weirv1.CheckpointAck{Snapshot: &weirv1.SubtaskSnapshot{Finished: true}}
				if d.running && d.finished[task] == nil {
					d.finished[task] = ack
					for _, tr := range d.triggered {
						if tr.run == d.run && tr.live && tr.sent[task] == nil {
							storing := false
							for id, x := range d.triggered {
								storing = storing || (x == tr && slices.Contains(d.storing, id))
							}
							if !storing {
								tr.sent[task] = ack
							}
						}
					}
					d.apply(d.c.Finished(task, ack, d.now))
				} else if acts := d.c.Finished(task, ack, d.now); len(acts) != 0 {
					t.Fatalf("Finished %s again or while stopped: %v", task, acts)
				}
			case 13:
				// Stray answers a broken driver might send.
				id, _, ok := d.pick("strayID")
				if !ok {
					continue
				}
				d.apply(d.c.Stored(id+1000, "nowhere", d.now))
				d.apply(d.c.StoreFailed(id+1000, "nowhere", d.now))
				if !slices.Contains(d.storing, id) {
					if acts := d.c.Stored(id, "again", d.now); len(acts) != 0 {
						t.Fatalf("Stored %d without a Complete out: %v", id, acts)
					}
				}
			}
		}
	})
}
