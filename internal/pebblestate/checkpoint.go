package pebblestate

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

// PendingCheckpoint is a checkpoint whose directory is being written.
type PendingCheckpoint struct {
	done chan struct{}
	err  error // written before done is closed
}

// Wait blocks until the checkpoint directory is complete and returns the
// checkpoint's error. It may be called from any goroutine, any number of
// times.
func (p *PendingCheckpoint) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the checkpoint directory is complete.
func (p *PendingCheckpoint) Done() <-chan struct{} { return p.done }

// frozenOp is a dirty cache entry as it was at the checkpoint barrier. Its
// val aliases the entry's buffer, which the DB no longer writes into (the
// entry is marked frozen).
type frozenOp struct {
	key string
	val []byte
	del bool
}

// Checkpoint is the synchronous part of a snapshot: it writes the cache's
// dirty entries into Pebble, flushes the memtable (with the WAL off, a
// Pebble checkpoint holds only flushed data) and hard-links a consistent
// copy of the database into dir, which must not exist. The copy is
// immutable: the DB keeps running and never touches it.
//
// Checkpoint is BeginCheckpoint followed by Wait. Its cost grows with the
// dirty bytes since the previous checkpoint (bounded by the cache budget
// and the memtable size); a task that wants the pause to be only the
// freezing of the dirty set calls BeginCheckpoint on the barrier and waits
// for the directory off the processing goroutine.
func (db *DB) Checkpoint(dir string) error {
	p, err := db.BeginCheckpoint(dir)
	if err != nil {
		return err
	}
	return p.Wait()
}

// BeginCheckpoint starts a checkpoint into dir, which must not exist, and
// returns as soon as the state to checkpoint is fixed: with the cache, after
// freezing the list of dirty entries (a few hundred microseconds for ten
// thousand entries). A goroutine then writes the frozen entries into
// Pebble, flushes the memtable and hard-links the copy into dir.
//
// Until that goroutine is done the DB keeps serving Gets, and Sets and
// Deletes that the cache absorbs; a call that has to write to Pebble (a
// write-back on a full cache, Scan, CopyRange, the next checkpoint, Close,
// or any write without the cache) first waits for it. That is what keeps
// the copy consistent: nothing written after BeginCheckpoint can reach it.
//
// The returned error concerns starting; the checkpoint's own outcome comes
// from Wait. If the frozen entries cannot be written to Pebble, every later
// call on the DB fails with that error too.
func (db *DB) BeginCheckpoint(dir string) (*PendingCheckpoint, error) {
	if err := db.usable(true); err != nil {
		return nil, err
	}
	// Pebble would find this too, but only on the writer's goroutine.
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("pebblestate: checkpoint %s: %w", dir, fs.ErrExist)
	}
	ops := make([]frozenOp, 0, len(db.dirtyList))
	for i, e := range db.dirtyList {
		if e.flags&dirty != 0 { // else a write undone before it reached Pebble
			ops = append(ops, frozenOp{key: e.key, val: e.val, del: e.flags&absent != 0})
			e.flags = e.flags&^(dirty|stored) | frozen | storedAfterWrite(e.flags)
			if db.complete {
				// A miss then means absent without reading Pebble, which
				// may not have the tombstone until the writer is done (and
				// nothing can end completeness before: it writes to Pebble).
				db.forgetDeleted(e)
			}
		}
		db.dirtyList[i] = nil
	}
	db.dirtyList = db.dirtyList[:0]
	if len(ops) > 0 {
		db.stats.Flushes++
	}
	p := &PendingCheckpoint{done: make(chan struct{})}
	db.pending = p
	go db.writeCheckpoint(p, ops, dir)
	return p, nil
}

// writeCheckpoint runs on its own goroutine while the DB's goroutine keeps
// away from Pebble's write path. It touches only pdb, ops and p.
func (db *DB) writeCheckpoint(p *PendingCheckpoint, ops []frozenOp, dir string) {
	defer close(p.done)
	if len(ops) > 0 {
		b := db.pdb.NewBatchWithSize(batchSize(ops))
		for _, op := range ops {
			if op.del {
				_ = b.Delete([]byte(op.key), nil)
			} else {
				_ = b.Set([]byte(op.key), op.val, nil)
			}
		}
		err := b.Commit(pebble.NoSync)
		_ = b.Close()
		if err != nil {
			p.err = &writeBackError{fmt.Errorf("pebblestate: checkpoint %s: write %d dirty entries: %w", dir, len(ops), err)}
			return
		}
	}
	if err := db.pdb.Flush(); err != nil {
		p.err = fmt.Errorf("pebblestate: checkpoint %s: flush: %w", dir, err)
		return
	}
	if err := db.pdb.Checkpoint(dir); err != nil {
		p.err = fmt.Errorf("pebblestate: checkpoint %s: %w", dir, err)
	}
}

// writeBackError marks a checkpoint failure that lost cache writes.
type writeBackError struct{ err error }

func (e *writeBackError) Error() string { return e.err.Error() }
func (e *writeBackError) Unwrap() error { return e.err }

// batchSize estimates the batch representation of ops, so that the batch
// is allocated once.
func batchSize(ops []frozenOp) int {
	n := 12 // batch header
	for _, op := range ops {
		n += len(op.key) + len(op.val) + 2*5 + 1
	}
	return n
}

// waitPending waits for the pending checkpoint's writer, if any.
func (db *DB) waitPending() {
	p := db.pending
	if p == nil {
		return
	}
	<-p.done
	db.pending = nil
	if wb, ok := p.err.(*writeBackError); ok && db.failed == nil {
		db.failed = wb.err
	}
}
