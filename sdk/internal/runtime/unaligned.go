package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/weir-run/weir/internal/align"
	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/storelayout"
	"github.com/weir-run/weir/internal/uvarintframe"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Unaligned checkpoints. A subtask takes a checkpoint's snapshot unaligned
// when the barrier reaches it marked unaligned, or when the checkpoint's
// alignment outlasts the job's aligned timeout (measured from the
// checkpoint's trigger, as Flink's aligned-checkpoint-timeout is). It then
// snapshots at once, forwards the barrier unaligned (it overtakes the data
// queued at each consumer, and its own partial batches go out as overdraft
// instead of waiting for credit), and keeps processing every input. The
// records that were in flight across the cut — those its barriers
// overtook, and those a channel delivers before its own barrier — are
// stored with the snapshot (SubtaskSnapshot.in_flight); the ack waits
// until every channel has delivered the barrier. A restore processes them
// before any new input. Savepoints are always aligned: they are what a
// rescale starts from, and in-flight data is tied to the subtask that
// stored it.

// inflight collects the in-flight input of one unaligned snapshot.
type inflight struct {
	id int64
	// recording[i]: records delivered by gate channel i belong to the
	// snapshot, until the channel delivers barrier id or ends.
	recording []bool
	data      []byte
	records   int64
	done      chan struct{} // closed once complete or abandoned
	abandoned bool          // set before done is closed
}

func newInflight(id int64, channels int, record []int) *inflight {
	u := &inflight{id: id, recording: make([]bool, channels), done: make(chan struct{})}
	for _, i := range record {
		u.recording[i] = true
	}
	return u
}

// add stores a record batch of edge: the edge, the count, and the records
// as uvarint-length-prefixed encodings.
func (u *inflight) add(edge int32, count int, records []byte) {
	u.data = binary.AppendUvarint(u.data, uint64(edge))
	u.data = binary.AppendUvarint(u.data, uint64(count))
	u.data = uvarintframe.AppendBytes(u.data, records)
	u.records += int64(count)
}

func (u *inflight) finish(abandoned bool) {
	u.abandoned = abandoned
	close(u.done)
}

// alignedTimeout is the job's aligned timeout; ok is false when
// checkpoints stay aligned.
func (t *task) alignedTimeout() (time.Duration, bool) {
	if t.ck == nil || t.ck.alignedTimeout == nil {
		return 0, false
	}
	return *t.ck.alignedTimeout, true
}

// forwardUnaligned says whether the barrier of a snapshot taken now goes
// downstream unaligned: when the snapshot is, or when the checkpoint has
// outlived the aligned timeout by the time it is taken (its consumers
// would only wait for alignment to time out too).
func (t *task) forwardUnaligned(ts int64, savepoint bool, u *inflight) bool {
	if savepoint {
		return false
	}
	if u != nil {
		return true
	}
	d, ok := t.alignedTimeout()
	return ok && time.Since(time.UnixMilli(ts)) >= d
}

// alignDeadline is when the alignment in progress turns unaligned, or
// when a barrier still queued behind data at the gate must overtake it;
// zero when neither is due ever.
func (t *task) alignDeadline() time.Time {
	d, ok := t.alignedTimeout()
	if !ok || t.aligner == nil || t.aligner.Unaligned() {
		return time.Time{}
	}
	if id, aligning := t.aligner.Aligning(); aligning {
		b := t.barriers[id]
		if b.Savepoint {
			return time.Time{}
		}
		return time.UnixMilli(b.Timestamp).Add(d)
	}
	if id, ts := t.gate.Announced(); id > t.aligner.Last() && id > t.overtaken {
		return time.UnixMilli(ts).Add(d)
	}
	return time.Time{}
}

// record stores a delivered record frame with the unaligned snapshot in
// progress if its channel is being recorded.
func (t *task) record(d *exchange.Delivery) {
	if u := t.inflight; u != nil && u.recording[d.Index] {
		t.storeInflight(u, d.Index, &d.Frame)
	}
}

func (t *task) storeInflight(u *inflight, index int, f *exchange.Frame) {
	u.add(t.edgeIDs[index], f.Count, t.encs[index](f))
}

// onBarrier handles barrier frame f delivered on channel index, with the
// record frames it overtook.
func (t *task) onBarrier(index int, f exchange.Frame, overtaken []exchange.Frame) error {
	if _, seen := t.barriers[f.CheckpointID]; !seen {
		t.barriers[f.CheckpointID] = f
	}
	if u := t.inflight; u != nil && u.id == f.CheckpointID {
		u.recording[index] = false
	}
	dec := t.aligner.Barrier(index, f.CheckpointID, time.Now(), f.Unaligned && !f.Savepoint)
	return t.aligned(index, dec, overtaken)
}

// alignTimeout turns the alignment in progress unaligned, or, with none in
// progress, has the barrier queued at the gate overtake the data ahead of
// it: it arrives marked unaligned and the alignment starts unaligned.
func (t *task) alignTimeout(now time.Time) error {
	if _, aligning := t.aligner.Aligning(); !aligning {
		id, _ := t.gate.Announced()
		t.overtaken = id
		t.gate.Overtake(id)
		return nil
	}
	return t.aligned(-1, t.aligner.Timeout(now), nil)
}

// aligned carries out the aligner's decision for a barrier or end of
// channel index (-1: a timeout), storing the frames the barrier overtook
// when its snapshot is unaligned.
func (t *task) aligned(index int, dec align.Decision, overtaken []exchange.Frame) error {
	if dec.Block {
		t.gate.Block(index)
	}
	if dec.Abandoned > 0 {
		delete(t.barriers, dec.Abandoned)
		if u := t.inflight; u != nil && u.id == dec.Abandoned {
			u.finish(true)
			t.inflight = nil
		}
	}
	if dec.Aligned {
		b := t.barriers[dec.ID]
		delete(t.barriers, dec.ID)
		if err := t.checkpoint(dec.ID, b.Timestamp, b.Savepoint, dec.Alignment, nil); err != nil {
			return err
		}
	}
	if dec.Unaligned {
		b := t.barriers[dec.ID]
		// The barriers still missing overtake what is queued ahead of them.
		t.gate.Overtake(dec.ID)
		u := newInflight(dec.ID, len(t.decs), dec.Record)
		t.inflight = u
		if err := t.checkpoint(dec.ID, b.Timestamp, false, dec.Alignment, u); err != nil {
			return err
		}
	}
	if u := t.inflight; u != nil && index >= 0 && u.id == dec.ID {
		for i := range overtaken {
			t.storeInflight(u, index, &overtaken[i])
		}
	}
	for _, i := range dec.Unblock {
		t.gate.Unblock(i)
	}
	if dec.Complete {
		delete(t.barriers, dec.ID)
		if u := t.inflight; u != nil && u.id == dec.ID {
			u.finish(false)
			t.inflight = nil
		}
	}
	return nil
}

// abandonInflight gives up the unaligned snapshot in progress, if any: the
// subtask is ending without it.
func (t *task) abandonInflight() {
	if u := t.inflight; u != nil {
		u.finish(true)
		t.inflight = nil
	}
}

// uploadInflight waits until u is complete and stores it; false when it
// was abandoned.
func (t *task) uploadInflight(ctx context.Context, u *inflight, ack *weirv1.CheckpointAck, savepoint bool) (bool, error) {
	select {
	case <-u.done:
	case <-ctx.Done():
		return false, nil
	}
	if u.abandoned {
		return false, nil
	}
	ack.Unaligned = true
	if len(u.data) == 0 {
		return true, nil
	}
	key := storelayout.InFlight(t.ck.jobID, ack.CheckpointId, savepoint, t.v.ID, t.env.subtask)
	sealed, err := t.ck.key.SealBytes(u.data, key)
	if err != nil {
		return false, err
	}
	if err := t.ck.bucket.WriteAll(ctx, key, sealed, nil); err != nil {
		return false, fmt.Errorf("upload in-flight data: %w", err)
	}
	sum := sha256.Sum256(u.data)
	ack.Snapshot.InFlight = &weirv1.InFlight{Object: key, Size: int64(len(sealed)), Sha256: hex.EncodeToString(sum[:]), Records: u.records}
	ack.InFlightBytes = int64(len(u.data))
	ack.UploadedBytes += int64(len(sealed))
	return true, nil
}

// replayInflight processes the in-flight records of the restored snapshot
// before any new input: they were on the subtask's input channels, ahead
// of the barrier, when it took the snapshot.
func (t *task) replayInflight() error {
	in := t.env.restored.inflight
	if in == nil {
		return nil
	}
	b, err := t.ck.readInflight(t.env.ctx, in)
	if err != nil {
		return &restoreError{id: t.env.restored.fromID, err: err}
	}
	decs := map[int32]func(*exchange.Frame, func(int64)) error{}
	for i, e := range t.edgeIDs {
		if _, ok := decs[e]; !ok {
			decs[e] = t.decs[i]
		}
	}
	r := uvarintframe.NewReader(b)
	for r.Len() > 0 {
		edge, count, data := r.Uvarint(), int(r.Uvarint()), r.Bytes()
		if r.Err() != nil {
			return &restoreError{id: t.env.restored.fromID, err: fmt.Errorf("in-flight data: %w", r.Err())}
		}
		dec, ok := decs[int32(edge)]
		if !ok {
			return &restoreError{id: t.env.restored.fromID, err: fmt.Errorf("in-flight data of edge %d, which no longer feeds %s", edge, t.v.Name())}
		}
		t.env.metrics.in(count)
		// Stored in-flight data holds records only (watermarks are not
		// state: the restored ones stand in for them).
		if err := dec(&exchange.Frame{Kind: exchange.KindRecords, Data: data, Count: count}, nil); err != nil {
			return err
		}
		if t.env.err != nil {
			return t.env.err
		}
	}
	return nil
}

// readInflight reads and checks a stored in-flight object.
func (ck *checkpointer) readInflight(ctx context.Context, in *weirv1.InFlight) ([]byte, error) {
	from := ck.bucket
	if ck.restoreFrom != nil {
		from = ck.restoreFrom.Bucket()
	}
	sealed, err := from.ReadAll(ctx, in.Object)
	if err != nil {
		return nil, fmt.Errorf("read in-flight data %s: %w", in.Object, err)
	}
	b, err := ck.restoreKey.OpenBytes(sealed, in.Object)
	if err != nil {
		return nil, fmt.Errorf("in-flight data %w", err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != in.Sha256 {
		return nil, fmt.Errorf("in-flight data %s: checksum mismatch", in.Object)
	}
	return b, nil
}
