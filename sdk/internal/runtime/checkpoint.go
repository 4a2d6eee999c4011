package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/keygroup"
	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/sealing"
	"github.com/weir-run/weir/internal/snapshot"
	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/internal/storelayout"
	"github.com/weir-run/weir/internal/taskenv"
	"github.com/weir-run/weir/internal/uvarintframe"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// control is a message for a subtask's own goroutine (its mailbox).
type control struct {
	trigger  *weirv1.TriggerCheckpoint // sources only
	complete int64                     // a checkpoint completed
}

// checkpointer is one job process's share of checkpointing: where state
// goes, how acks leave, and what to restore from.
type checkpointer struct {
	store  *objstore.Store
	bucket *blob.Bucket
	// restoreFrom is the store of the state to restore when it is not the
	// job's own (a savepoint from elsewhere); nil otherwise.
	restoreFrom *objstore.Store
	// key seals the job's state in the store (nil: not encrypted);
	// restoreKey opens the state restored, which a savepoint of another
	// job sealed with its own.
	key, restoreKey *sealing.JobKey
	// restoreForeign: the restored state is not the job's own (another
	// store or another key), so it is downloaded apart and every table is
	// uploaded again under the job's key.
	restoreForeign bool
	// restoreErr: the state to restore cannot be read; every subtask
	// fails its restore with it.
	restoreErr *restoreError
	jobID      string
	attempt    int64
	stateRoot  string
	restore    *weirv1.CheckpointManifest // nil: fresh start
	interval   time.Duration              // 0: no periodic checkpoints
	// alignedTimeout: nil keeps checkpoints aligned; else how long after
	// its trigger a checkpoint's alignment turns unaligned.
	alignedTimeout *time.Duration
	ack            func(*weirv1.CheckpointAck)
	decline        func(*weirv1.CheckpointDecline)
	// awaitingFinal, when set, tells the coordinator a subtask waits for
	// its final checkpoint (TaskStateUpdate.awaiting_final_checkpoint),
	// having taken checkpoint taken last before its end.
	awaitingFinal func(r SubtaskRef, taken int64)
	logger        *slog.Logger
	uploads       sync.WaitGroup
}

// Restored is what a subtask restores: its keyed-state snapshots and each
// operator's items.
type Restored struct {
	keyed []*weirv1.SubtaskSnapshot
	// items holds each operator's share of the restored items, by uid; an
	// operator the checkpoint knows has an entry even when its share is
	// empty, so it does not start afresh (a generator would replay).
	items map[string][][]byte
	// all holds every subtask's items, by uid (union state).
	all map[string][][]byte
	// fromID is the checkpoint restored (0: none).
	fromID int64
	// parallelism is the vertex's parallelism in that checkpoint (0: none).
	parallelism int
	// inflight is the subtask's in-flight input, stored by an unaligned
	// snapshot; nil for an aligned one.
	inflight *weirv1.InFlight
	// finished: the subtask starts finished (runRestoredFinished), as
	// every old subtask of its vertex was when the checkpoint was taken
	// (Flink's fully finished operator), or its own old subtask, at the
	// same parallelism, was.
	finished bool
}

// restoredFor picks the state of subtask i of v, at its current
// parallelism, from the checkpoint to restore (none: a fresh start).
func (ck *checkpointer) restoredFor(v *Vertex, i, maxP int) (Restored, error) {
	if ck == nil || ck.restore == nil {
		return Restored{items: map[string][][]byte{}, all: map[string][][]byte{}}, nil
	}
	return Restore(ck.restore, v.head().UID, i, v.Parallelism, maxP)
}

// Restore picks, from checkpoint m, the state of subtask i of p of the
// vertex whose chain starts with operator head. Snapshots belong to the
// vertex whose head uid they start with, so state follows uids, not vertex
// numbers.
func Restore(m *weirv1.CheckpointManifest, head string, i, p, maxP int) (Restored, error) {
	ts := Restored{items: map[string][][]byte{}, all: map[string][][]byte{}, fromID: m.CheckpointId}
	var olds []*weirv1.SubtaskSnapshot
	for _, s := range m.Subtasks {
		if len(s.Uids) > 0 && s.Uids[0] == head {
			olds = append(olds, s)
		}
	}
	sort.Slice(olds, func(a, b int) bool { return olds[a].Subtask < olds[b].Subtask })
	if len(olds) > 0 {
		ts.parallelism = int(olds[0].Parallelism)
	}
	for _, s := range olds {
		if s.InFlight == nil {
			continue
		}
		if int(s.Parallelism) != p {
			return ts, &restoreError{id: ts.fromID, err: fmt.Errorf("checkpoint %d is unaligned: subtask %d of operator %s stored in-flight records, which cannot be restored at parallelism %d instead of %d; restore from an (always aligned) savepoint to rescale", ts.fromID, s.Subtask, head, p, s.Parallelism)}
		}
		if int(s.Subtask) == i {
			ts.inflight = s.InFlight
		}
	}
	all, own := len(olds) > 0, false
	for _, s := range olds {
		all = all && s.Finished
		own = own || (s.Finished && int(s.Parallelism) == p && int(s.Subtask) == i)
	}
	ts.finished = all || own
	start, end := keygroup.Range(i, p, maxP)
	for _, s := range olds {
		if int(s.KeyGroupStart) < end && start < int(s.KeyGroupEnd) && len(s.Files) > 0 {
			ts.keyed = append(ts.keyed, s)
		}
	}
	// Operator state: kept per subtask at equal parallelism, dealt round
	// robin otherwise.
	k := 0
	for _, s := range olds {
		for _, op := range s.Operators {
			items, err := DecodeItems(op.Data)
			if err != nil {
				return ts, &restoreError{id: ts.fromID, err: fmt.Errorf("state of operator %s, subtask %d: %w", op.Uid, s.Subtask, err)}
			}
			if _, ok := ts.items[op.Uid]; !ok {
				ts.items[op.Uid] = [][]byte{}
			}
			ts.all[op.Uid] = append(ts.all[op.Uid], items...)
			for _, it := range items {
				mine := int(s.Subtask) == i
				if int(s.Parallelism) != p {
					mine = k%p == i
					k++
				}
				if mine {
					ts.items[op.Uid] = append(ts.items[op.Uid], it)
				}
			}
		}
	}
	return ts, nil
}

// openState opens the subtask's keyed state: Pebble restored from the
// checkpoint when checkpointing, else memory.
func (ck *checkpointer) openState(ctx context.Context, v *Vertex, i, maxP int, ts Restored, up *snapshot.Uploader, cacheBytes int64) (state.Backend, *pebblestate.DB, error) {
	if ck != nil && ck.restoreErr != nil {
		return nil, nil, ck.restoreErr
	}
	if ck == nil || !v.keyed() {
		return state.NewMemory(), nil, nil
	}
	dir := filepath.Join(ck.stateRoot, fmt.Sprintf("db-v%d-s%d", v.ID, i))
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, err
	}
	if len(ts.keyed) > 0 {
		start, end := keygroup.Range(i, v.Parallelism, maxP)
		if ck.restoreForeign {
			// Files from another store or job: download with an uploader
			// of that store and key, so the next checkpoint uploads them
			// all to ours.
			from := ck.bucket
			if ck.restoreFrom != nil {
				from = ck.restoreFrom.Bucket()
			}
			up = snapshot.NewUploader(from, "").Seal(ck.restoreKey)
		}
		db, err := snapshot.Restore(ctx, up, ts.keyed, start, end, dir, pebblestate.Options{CacheBytes: cacheBytes})
		if err != nil {
			return nil, nil, &restoreError{id: ts.fromID, err: err}
		}
		return db, db, nil
	}
	db, err := pebblestate.Open(pebblestate.Options{Dir: dir, CacheBytes: cacheBytes})
	if err != nil {
		return nil, nil, err
	}
	return db, db, nil
}

const (
	// defaultProcessStateCacheBytes is the hot-state cache of a job process
	// without a memory limit, shared by its keyed subtasks. One fixed
	// budget per subtask grew a process with every subtask it hosted: a
	// restored DB caches the absence of every key it looks up until the
	// budget is full, and a soak's job processes reached a GiB.
	defaultProcessStateCacheBytes = 128 << 20
	// stateCacheMemoryShare is the part of a process's memory limit
	// (GOMEMLIMIT: from weir run --memory or --gomemlimit, or its slots'
	// share of the worker's --memory) its hot-state caches may take: an
	// eighth, because under GOGC 400 the heap grows to five times what is
	// live before a collection, and a cache near the limit would have the
	// collector run all the time; the rest is also for buffers, the
	// records in flight, Pebble's block cache and memtables.
	stateCacheMemoryShare = 8
	// minStateCacheBytes keeps a cache useful however many subtasks share
	// the process: below it nearly every update would write back.
	minStateCacheBytes = 4 << 20
)

// processStateCacheBytes is the hot-state cache budget of a process whose
// Go memory limit is memLimit (math.MaxInt64 when it has none).
func processStateCacheBytes(memLimit int64) int64 {
	if memLimit == math.MaxInt64 {
		return defaultProcessStateCacheBytes
	}
	return memLimit / stateCacheMemoryShare
}

// stateCacheShare is one keyed subtask's share of the process's budget.
func stateCacheShare(process int64, keyedSubtasks int) int64 {
	return max(process/int64(max(keyedSubtasks, 1)), minStateCacheBytes)
}

// checkpoint takes subtask t's snapshot for checkpoint id: the synchronous
// part (output flushed, operator states, Pebble checkpoint), then the barrier
// downstream, then the upload and ack in the background. An unaligned
// snapshot (u) acks once its in-flight data is complete, and stores it.
func (t *task) checkpoint(id, ts int64, savepoint bool, alignment time.Duration, u *inflight) error {
	ck := t.ck
	start := time.Now()
	t.fin.taken = max(t.fin.taken, id)
	if t.fin.ended && t.fin.final == 0 {
		// The first checkpoint after the end is the final one, whether a
		// trigger (a source, or a subtask whose channels ended) or a
		// barrier (one that finished at the end of data) brought it.
		t.fin.final = id
	}
	unaligned := t.forwardUnaligned(ts, savepoint, u)
	flush := t.flush
	if unaligned {
		// The output's partial batches go with the barrier, as overdraft.
		flush = t.flushOperators
	}
	if err := flush(); err != nil {
		return err
	}
	var ops []*weirv1.OperatorState
	if t.source != nil && t.source.Snapshot != nil {
		items, err := t.source.Snapshot()
		if err != nil {
			return fmt.Errorf("snapshot source: %w", err)
		}
		ops = append(ops, &weirv1.OperatorState{Uid: t.v.head().UID, Data: EncodeItems(items)})
	}
	for i, r := range t.runs {
		if r.Snapshot == nil {
			continue
		}
		items, err := r.Snapshot(id)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", t.v.Operators[i].Name, err)
		}
		ops = append(ops, &weirv1.OperatorState{Uid: t.v.Operators[i].UID, Data: EncodeItems(items)})
	}
	dir := ""
	var keyed *pebblestate.PendingCheckpoint
	if t.db != nil {
		// Only the cache's dirty set is frozen here; the write-back, flush
		// and hard links run in the background, off the record path.
		dir = filepath.Join(ck.stateRoot, fmt.Sprintf("chk-%d-v%d-s%d", id, t.v.ID, t.env.subtask))
		var err error
		if keyed, err = t.db.BeginCheckpoint(dir); err != nil {
			return fmt.Errorf("checkpoint keyed state: %w", err)
		}
	}
	sync := time.Since(start)
	if err := t.out.barrier(id, ts, savepoint, unaligned); err != nil {
		return err
	}
	kgStart, kgEnd := keygroup.Range(t.env.subtask, t.env.parallelism, t.env.maxParallelism)
	snap := &weirv1.SubtaskSnapshot{
		VertexId: int32(t.v.ID), Subtask: int32(t.env.subtask), Parallelism: int32(t.env.parallelism),
		KeyGroupStart: int32(kgStart), KeyGroupEnd: int32(kgEnd), Operators: ops, Uids: t.v.uids(),
		States: t.env.declared, Finished: t.fin.ended,
	}
	ack := &weirv1.CheckpointAck{JobId: ck.jobID, Attempt: ck.attempt, CheckpointId: id, Snapshot: snap,
		AlignmentMs: alignment.Milliseconds(), SyncMicros: sync.Microseconds()}
	ck.uploads.Add(1)
	t.fin.uploads.Add(1)
	go func() {
		defer ck.uploads.Done()
		defer t.fin.uploads.Done()
		// One upload at a time per subtask: the uploader's view of which
		// files the store holds must follow checkpoint order.
		t.uploadMu.Lock()
		defer t.uploadMu.Unlock()
		err := error(nil)
		if keyed != nil {
			err = keyed.Wait()
		}
		if err == nil {
			err = t.upload(ack, dir, savepoint)
		}
		if err == nil && u != nil {
			var ok bool
			if ok, err = t.uploadInflight(t.env.ctx, u, ack, savepoint); err == nil && !ok {
				return // abandoned: a newer checkpoint overtook it, or the subtask ended
			}
		}
		if err != nil {
			ck.logger.Warn("checkpoint upload failed", "checkpoint", id, "vertex", t.v.ID, "subtask", t.env.subtask, "err", err)
			ck.decline(&weirv1.CheckpointDecline{JobId: ck.jobID, Attempt: ck.attempt, CheckpointId: id,
				VertexId: int32(t.v.ID), Subtask: int32(t.env.subtask), Reason: err.Error()})
			return
		}
		ck.ack(ack)
	}()
	return nil
}

func (t *task) upload(ack *weirv1.CheckpointAck, dir string, savepoint bool) error {
	if dir == "" {
		return nil
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	prefix := storelayout.Private(t.ck.jobID, ack.CheckpointId, savepoint, t.v.ID, t.env.subtask)
	files, uploaded, err := t.uploader.Upload(t.env.ctx, dir, prefix, savepoint)
	if err != nil {
		return err
	}
	ack.Snapshot.Files = files
	ack.UploadedBytes = uploaded
	for _, f := range files {
		ack.StateBytes += f.Size
	}
	ack.AsyncMs = time.Since(start).Milliseconds()
	return nil
}

// onControl handles a mailbox message in the subtask's goroutine.
func (t *task) onControl(c control) error {
	if c.trigger != nil {
		return t.checkpoint(c.trigger.CheckpointId, c.trigger.TimestampUnixMs, c.trigger.Savepoint, 0, nil)
	}
	for i, r := range t.runs {
		if r.Notify != nil {
			if err := r.Notify(c.complete); err != nil {
				return fmt.Errorf("commit checkpoint %d in %s: %w", c.complete, t.v.Operators[i].Name, err)
			}
		}
	}
	if t.fin.final > 0 && c.complete >= t.fin.final {
		t.fin.final = -1 // the final checkpoint completed (finalCheckpoint)
	}
	return nil
}

// EncodeItems frames a list of byte strings (operator state) as uvarint
// lengths and bytes.
func EncodeItems(items [][]byte) []byte { return uvarintframe.AppendFrames(nil, items...) }

// ErrCorruptItems is DecodeItems' error.
var ErrCorruptItems = errors.New("sdk: corrupt operator state")

// DecodeItems reads what EncodeItems framed.
func DecodeItems(b []byte) ([][]byte, error) {
	items, err := uvarintframe.SplitFrames(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptItems, err)
	}
	return items, nil
}

// openCheckpointer prepares checkpointing for a task-mode process: the
// object store, and the manifest to restore from.
func openCheckpointer(ctx context.Context, env taskenv.Task, a *weirv1.AssignTasks, logger *slog.Logger) (*checkpointer, error) {
	store, err := objstore.Open(ctx, a.Store)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	root, err := filepath.Abs("state")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		store.Close()
		return nil, err
	}
	key, err := sealing.ParseJobKey(a.DataKey)
	if err != nil {
		store.Close()
		return nil, err
	}
	ck := &checkpointer{store: store, bucket: store.Bucket(), jobID: env.JobID, attempt: env.Attempt, stateRoot: root, logger: logger,
		interval: time.Duration(a.CheckpointIntervalMs) * time.Millisecond, key: key}
	if a.AlignedTimeoutMs != nil {
		d := time.Duration(a.GetAlignedTimeoutMs()) * time.Millisecond
		ck.alignedTimeout = &d
	}
	if r := a.Restore; r != nil && r.Manifest != "" {
		if ck.restoreKey, err = sealing.ParseJobKey(r.DataKey); err != nil {
			store.Close()
			return nil, &restoreError{id: r.CheckpointId, err: err}
		}
		ck.restoreForeign = !bytes.Equal(r.DataKey, a.DataKey)
		from := ck.bucket
		if r.Store != "" && r.Store != a.Store {
			ck.restoreForeign = true
			if ck.restoreFrom, err = objstore.Open(ctx, r.Store); err != nil {
				store.Close()
				return nil, &restoreError{id: r.CheckpointId, err: err}
			}
			from = ck.restoreFrom.Bucket()
		}
		m, err := readManifest(ctx, from, r.Manifest, ck.restoreKey)
		if errors.Is(err, errStoreRead) {
			store.Close()
			return nil, &restoreError{id: r.CheckpointId, err: err} // may pass: retried as is
		}
		if err != nil {
			// Every subtask reports it as a failed restore, so that the
			// coordinator falls back to an older checkpoint, as for a
			// corrupt table.
			ck.restoreErr = &restoreError{id: r.CheckpointId, err: err}
			return ck, nil
		}
		ck.restore = m
		logger.Info("restoring", "checkpoint", m.CheckpointId, "savepoint", m.Savepoint)
	}
	return ck, nil
}

// errStoreRead marks a manifest the store failed to hand over, as opposed
// to one that is missing or does not open.
var errStoreRead = errors.New("the store failed")

// readManifest reads and opens the manifest at key.
func readManifest(ctx context.Context, from *blob.Bucket, key string, seal *sealing.JobKey) (*weirv1.CheckpointManifest, error) {
	b, err := from.ReadAll(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return nil, fmt.Errorf("read manifest %s: %w: %w", key, errStoreRead, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	if b, err = seal.OpenBytes(b, key); err != nil {
		return nil, fmt.Errorf("manifest %w", err)
	}
	var m weirv1.CheckpointManifest
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	return &m, nil
}

func (ck *checkpointer) close() {
	ck.store.Close()
	if ck.restoreFrom != nil {
		ck.restoreFrom.Close()
	}
}
