package sdk

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/state"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"github.com/weir-run/weir/sdk/internal/runtime"
)

// deleteLog records the keys deleted in a backend.
type deleteLog struct {
	state.Backend
	deleted []string
}

func (d *deleteLog) Delete(k []byte) error {
	d.deleted = append(d.deleted, string(k))
	return d.Backend.Delete(k)
}

// A restored window subtask whose trigger keeps no state deletes the
// trigger state of a window it drops only where its checkpoint had some
// (from a version of the job with a stateful trigger), and still deletes
// the restored panes it drops. (A tombstone per window, written for
// nothing, made a restored q5 fall behind its rate.)
func TestRestoredWindowDeletesOnlyTriggerStateItHas(t *testing.T) {
	before, _, err := windowNode(mSpec{kind: mSliding, size: 10_000, slide: 2_000, earlyEvery: 5, mode: Accumulating, noCombiner: true})
	if err != nil {
		t.Fatal(err)
	}
	after, _, err := windowNode(mSpec{kind: mSliding, size: 10_000, slide: 2_000, mode: Accumulating, noCombiner: true})
	if err != nil {
		t.Fatal(err)
	}
	open := func(n *node, be state.Backend, ts runtime.Restored, panes *int) runtime.OpRun {
		env := runtime.NewEnv(runtime.EnvOptions{JobID: "model", Attempt: 1, Parallelism: 1, MaxParallelism: 128,
			UID: n.UID, State: be, Logger: testLogger(), Restored: ts, Clock: time.Now, Sides: []any{func(mrec) {}}})
		run, err := n.NewOp(env, func(Pane[string, mAgg]) { *panes++ })
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	mem := state.NewMemory()
	var early int
	run := open(before, mem, runtime.Restored{}, &early)
	run.In.(func(mrec))(mrec{Key: "a", TS: 1000, V: 1})
	items, err := run.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	uid := before.UID
	m := &weirv1.CheckpointManifest{JobId: "model", CheckpointId: 1, MaxParallelism: 128,
		Subtasks: []*weirv1.SubtaskSnapshot{{Parallelism: 1, KeyGroupEnd: 128, Uids: []string{uid},
			Operators: []*weirv1.OperatorState{{Uid: uid, Data: runtime.EncodeItems(items)}}}}}
	ts, err := runtime.Restore(m, uid, 0, 1, 128)
	if err != nil {
		t.Fatal(err)
	}

	log := &deleteLog{Backend: mem}
	var panes int
	run = open(after, log, ts, &panes)
	run.In.(func(mrec))(mrec{Key: "b", TS: 1000, V: 1})
	run.Watermark(MaxWatermark)
	if early != 0 || panes != 10 {
		t.Fatalf("%d early panes before the restore, %d panes after; want 0 and 10 (the 5 windows of a and of b)", early, panes)
	}
	if _, err := run.Snapshot(2); err != nil { // writes the dropped cells back
		t.Fatal(err)
	}
	trigger, contents := statePrefix(uid, "\x00trigger"), statePrefix(uid, "\x00contents")
	deleted := map[string]int{}
	for _, k := range log.deleted {
		for kind, prefix := range map[string][]byte{"trigger": trigger, "contents": contents} {
			if i := bytes.Index([]byte(k), prefix); i >= 0 {
				deleted[kind+" "+k[i+len(prefix)+1:i+len(prefix)+2]]++
			}
		}
	}
	want := map[string]int{"trigger a": 5, "contents a": 1}
	if !maps.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v: a's trigger state of its 5 windows and its pane; nothing of b, which was never stored", deleted, want)
	}
	if err := mem.Scan(nil, func(k, _ []byte) error {
		if bytes.Contains(k, trigger) || bytes.Contains(k, contents) {
			t.Errorf("left %q", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
