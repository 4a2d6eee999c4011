package align

import (
	"fmt"
	"time"
)

// Aligner aligns checkpoint barriers across the input channels of one
// subtask. Its state is O(channels) and does not grow with the number of
// checkpoints: only the alignment in progress and the last aligned id are
// kept, which suffices because checkpoint ids only increase.
type Aligner struct {
	ended []bool
	live  int // channels not ended

	// The alignment in progress, if id > 0.
	id    int64
	start time.Time // first barrier of id
	seen  []bool    // channel delivered barrier id (and is blocked unless it ended or id is unaligned)
	nseen int       // live channels in seen
	// unaligned: id's snapshot was taken unaligned; the alignment goes on
	// only to collect in-flight data, and blocks nothing.
	unaligned bool

	// last is the newest id aligned or abandoned: barriers up to it are stale.
	last int64
}

// Decision is what the caller must do after a Barrier or End. The zero
// Decision means nothing to do: the barrier was stale or the end changed
// nothing.
type Decision struct {
	// Block: stop reading the channel the barrier came on until a later
	// Decision lists it in Unblock. After a Barrier, that channel is blocked
	// exactly when Block is set; it never appears in the same Decision's
	// Unblock.
	Block bool
	// Aligned: every live channel delivered barrier ID. Snapshot, forward
	// the barrier, then unblock Unblock.
	Aligned bool
	// ID is the checkpoint the Block or Aligned is about; zero when the
	// barrier was ignored as stale.
	ID int64
	// Unblock lists the channels to resume, ascending: those blocked for an
	// alignment that completed (Aligned) or was abandoned (Abandoned). The
	// slice belongs to the caller.
	Unblock []int
	// Abandoned > 0 names an older checkpoint whose alignment was given up
	// because barrier ID arrived first on some channel.
	Abandoned int64
	// Alignment is the time from the first barrier of ID to Aligned, or to
	// Unaligned; zero when the first barrier completed it at once.
	Alignment time.Duration

	// Unaligned: take ID's snapshot now, unaligned: forward barrier ID as an
	// unaligned barrier, unblock Unblock, and from now on store every record
	// delivered by a channel in Record with the snapshot, until that
	// channel delivers barrier ID (or ends). Records a barrier overtook are
	// stored too.
	Unaligned bool
	// Record lists the live channels that have not delivered barrier ID yet
	// (with Unaligned), ascending.
	Record []int
	// Complete: every live channel has delivered barrier ID of an unaligned
	// snapshot, so its in-flight data is whole. May come with Unaligned.
	Complete bool
}

// New returns the aligner of a subtask with the given number of input
// channels, numbered 0..channels-1, all live. It panics if channels < 1.
func New(channels int) *Aligner {
	if channels < 1 {
		panic(fmt.Sprintf("align: %d channels", channels))
	}
	return &Aligner{ended: make([]bool, channels), live: channels, seen: make([]bool, channels)}
}

// Barrier handles barrier id read from channel ch at now; unaligned says the
// barrier is an unaligned one (its producer snapshotted unaligned), which
// turns the alignment unaligned at once.
//
// A barrier older than the alignment in progress, or not newer than the
// last alignment completed or abandoned, is stale and ignored; so is a
// barrier on an ended channel. A newer barrier while an older alignment is in
// progress abandons the older one. A repeated barrier on a channel already
// blocked for id keeps it blocked.
func (a *Aligner) Barrier(ch int, id int64, now time.Time, unaligned bool) Decision {
	a.check(ch)
	if a.ended[ch] || id <= a.last || (a.id != 0 && id < a.id) {
		return Decision{}
	}
	var d Decision
	if a.id != 0 && id > a.id {
		// The coordinator triggered a newer checkpoint before this one
		// aligned, so this one will never complete: let its channels go.
		d.Abandoned = a.id
		if rel := a.release(ch); !a.unaligned {
			d.Unblock = rel
		}
		a.last = a.id
		a.id = 0
	}
	if a.id == 0 {
		a.id, a.start, a.unaligned = id, now, false
	}
	d.ID = id
	if !a.seen[ch] {
		a.seen[ch] = true
		a.nseen++
	}
	if unaligned && !a.unaligned {
		a.turnUnaligned(&d, now, ch)
	}
	if a.nseen == a.live {
		rel := a.release(ch)
		if a.unaligned {
			d.Complete = true // its channels went free when it turned unaligned
		} else {
			d.Aligned = true
			d.Alignment = now.Sub(a.start)
			d.Unblock = append(d.Unblock, rel...)
		}
		a.last, a.id = id, 0
		return d
	}
	d.Block = !a.unaligned
	return d
}

// Timeout turns the alignment in progress unaligned, because it took longer
// than the aligned timeout: the caller snapshots now (Unaligned) and makes
// the barriers still missing overtake the data queued ahead of them. With
// no aligned alignment in progress it returns the zero Decision.
func (a *Aligner) Timeout(now time.Time) Decision {
	if a.id == 0 || a.unaligned {
		return Decision{}
	}
	d := Decision{ID: a.id}
	a.turnUnaligned(&d, now, -1)
	return d
}

// turnUnaligned switches the alignment in progress to unaligned: the
// channels held back go free (except keep, whose barrier is being handled
// and which was never blocked) and the others are to be recorded.
func (a *Aligner) turnUnaligned(d *Decision, now time.Time, keep int) {
	a.unaligned = true
	d.Unaligned = true
	d.Alignment = now.Sub(a.start)
	for ch, s := range a.seen {
		switch {
		case s && ch != keep:
			d.Unblock = append(d.Unblock, ch)
		case !s && !a.ended[ch]:
			d.Record = append(d.Record, ch)
		}
	}
}

// End handles the end of input on channel ch at now. An ended channel no
// longer holds alignments back, so its end may complete the alignment in
// progress: then the Decision is Aligned, and Unblock includes ch if it was
// blocked. Ending a channel twice changes nothing.
func (a *Aligner) End(ch int, now time.Time) Decision {
	a.check(ch)
	if a.ended[ch] {
		return Decision{}
	}
	a.ended[ch] = true
	a.live--
	if a.seen[ch] {
		a.nseen--
	}
	if a.id == 0 || a.nseen < a.live {
		return Decision{}
	}
	// Every remaining live channel has delivered the barrier; with none
	// left, the channels that did deliver it still define a consistent cut.
	d := Decision{ID: a.id}
	if rel := a.release(-1); a.unaligned {
		d.Complete = true // nothing is blocked
	} else {
		d.Aligned, d.Alignment, d.Unblock = true, now.Sub(a.start), rel
	}
	a.last, a.id = a.id, 0
	return d
}

// Last returns the newest checkpoint aligned, completed or abandoned:
// barriers up to it are stale.
func (a *Aligner) Last() int64 { return a.last }

// Unaligned reports whether the alignment in progress is unaligned.
func (a *Aligner) Unaligned() bool { return a.id != 0 && a.unaligned }

// Aligning returns the checkpoint being aligned, if any: some channel
// delivered its barrier and others have not yet.
func (a *Aligner) Aligning() (id int64, ok bool) {
	return a.id, a.id != 0
}

// release clears the alignment's channels and returns them, ascending,
// except keep, which stays out of the list because its barrier is the one
// being handled.
func (a *Aligner) release(keep int) []int {
	var out []int
	for ch, s := range a.seen {
		if !s {
			continue
		}
		a.seen[ch] = false
		if ch != keep {
			out = append(out, ch)
		}
	}
	a.nseen = 0
	return out
}

func (a *Aligner) check(ch int) {
	if ch < 0 || ch >= len(a.ended) {
		panic(fmt.Sprintf("align: channel %d out of range [0, %d)", ch, len(a.ended)))
	}
}
