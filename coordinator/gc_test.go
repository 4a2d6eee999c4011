package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestOrphanedCheckpointFilesAreCollected: files in a job's checkpoint
// prefix that no retained checkpoint references (a table and private
// files of aborted checkpoints, a manifest a dying leader wrote and never
// recorded) are deleted at the first quiet moment after a checkpoint
// completes; never while a checkpoint is in flight, never a file an
// in-flight checkpoint's ack names, never another job's or a binary.
func TestOrphanedCheckpointFilesAreCollected(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{config: func(c *Config) { c.CheckpointGCInterval = time.Millisecond }})
	w := h.registered(t, "w1", scriptOpts{holdAcks: true})
	ctx := h.ctx
	bucket := h.store.Bucket()
	put := func(key string) {
		t.Helper()
		if err := bucket.WriteAll(ctx, key, []byte(key), nil); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(key string) bool {
		ok, err := bucket.Exists(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	job := h.submit("gc")
	table := func(c byte) string {
		return storelayout.SharedFile(storelayout.Shared(job), strings.Repeat(string(c), 64), ".sst")
	}
	// What aborted checkpoints and a dead leader left, and what is not the
	// job's.
	orphans := []string{table('a'), storelayout.Private(job, 90, false, 1, 0) + "MANIFEST-000001", storelayout.Manifest(job, 91, false)}
	foreign := []string{storelayout.SharedFile(storelayout.Shared("otherjob"), strings.Repeat("c", 64), ".sst"), storelayout.Binary(strings.Repeat("d", 64))}
	// Referenced by the acks below: the completed checkpoint keeps them.
	kept1, kept2 := table('1'), table('2')
	for _, k := range append(append(orphans, foreign...), kept1, kept2) {
		put(k)
	}
	time.Sleep(50 * time.Millisecond) // the trigger comes after their modification times

	// takeTriggers returns both subtasks' triggers of the next checkpoint.
	takeTriggers := func() []trigger {
		t.Helper()
		var trig []trigger
		for len(trig) < 2 {
			select {
			case tr := <-w.triggers:
				if len(trig) == 0 || tr.id == trig[0].id {
					trig = append(trig, tr)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("no checkpoint was triggered")
			}
		}
		return trig
	}
	ack := func(tr trigger, objects ...string) {
		snap := &weirv1.SubtaskSnapshot{VertexId: tr.subtask.VertexId, Subtask: tr.subtask.Subtask}
		for _, o := range objects {
			snap.Files = append(snap.Files, &weirv1.StateFile{Name: "000001.sst", Object: o, Sha256: strings.Repeat("a", 64)})
		}
		w.report(tr.key, &weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_CheckpointAck{CheckpointAck: &weirv1.CheckpointAck{CheckpointId: tr.id, Snapshot: snap}}})
	}
	completed := func(id int64) bool {
		r, err := h.api.ListCheckpoints(ctx, &weirv1.ListCheckpointsRequest{JobId: job})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Checkpoints {
			if c.Id == id && c.Status == weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
				return true
			}
		}
		return false
	}

	// Checkpoint 1 in flight, an ack naming kept2 in: nothing is collected.
	trig := takeTriggers()
	ack(trig[0], kept2)
	time.Sleep(500 * time.Millisecond)
	for _, k := range append(append(orphans, foreign...), kept1, kept2) {
		if !exists(k) {
			t.Fatalf("%s was deleted while checkpoint %d was in flight", k, trig[0].id)
		}
	}
	ack(trig[1], kept1)
	eventually(t, 30*time.Second, "checkpoint 1 completes", func() bool { return completed(trig[0].id) })

	// Quiet after it: the orphans go, the rest stays.
	eventually(t, 30*time.Second, "the orphans are collected", func() bool {
		for _, k := range orphans {
			if exists(k) {
				return false
			}
		}
		return true
	})
	for _, k := range append(append(foreign, kept1, kept2), storelayout.Manifest(job, trig[0].id, false)) {
		if !exists(k) {
			t.Fatalf("%s was collected; it is referenced, retained, or not the job's", k)
		}
	}

	// An orphan left while checkpoint 2 is in flight waits for it, and for
	// the next checkpoint that completes after it was written.
	trig = takeTriggers()
	late := table('e')
	put(late)
	time.Sleep(300 * time.Millisecond)
	if !exists(late) {
		t.Fatalf("%s was deleted while checkpoint %d was in flight", late, trig[0].id)
	}
	for _, tr := range trig {
		ack(tr, kept1)
	}
	eventually(t, 30*time.Second, "checkpoint 2 completes", func() bool { return completed(trig[0].id) })
	time.Sleep(300 * time.Millisecond)
	if !exists(late) {
		t.Fatalf("%s, written after checkpoint %d was triggered, was deleted when it completed", late, trig[0].id)
	}
	trig = takeTriggers()
	for _, tr := range trig {
		ack(tr, kept1)
	}
	eventually(t, 30*time.Second, "the late orphan is collected", func() bool { return !exists(late) })
	// kept2 is still referenced by retained checkpoint 1.
	if !exists(kept2) || !exists(kept1) {
		t.Fatal("a file retained checkpoints reference was collected")
	}
}
