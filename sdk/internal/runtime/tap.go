package runtime

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weir-run/weir/internal/uvarintframe"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A tap samples the records leaving an operator for `weir tail`. The
// output checks one atomic pointer per batch sent, so an idle tap costs a
// load per few hundred records; a live one renders at most rate records
// per second per subtask.

// tappable attaches tap slots to outputs; benchmarks switch it off to
// compare an idle tap with none.
var tappable = true

// defaultTapRate bounds the records a tap samples per second per subtask.
const defaultTapRate = 100

// tapState is one tap on one subtask. Its budget is owned by the subtask
// goroutine, the only one that samples.
type tapState struct {
	id    string
	rate  int
	out   func(*weirv1.TapRecord) // must not block
	ref   SubtaskRef
	until time.Time // end of the current budget window
	left  int
}

// tapWindow is the period of a tap's budget: a tenth of the rate every
// 100 ms keeps the sample spread over the second rather than taken from
// its first batch.
const tapWindow = 100 * time.Millisecond

// allow returns how many records may be sampled now.
func (s *tapState) allow(now time.Time) int {
	if now.After(s.until) {
		s.until, s.left = now.Add(tapWindow), max(s.rate*int(tapWindow)/int(time.Second), 1)
	}
	return s.left
}

// sampler is implemented by an output whose records can be tapped.
type sampler interface {
	attachTap(p *atomic.Pointer[tapState])
}

func (o *typedOutput[T]) attachTap(p *atomic.Pointer[tapState]) { o.tap = p }

// sample hands up to the tap's budget of the batch's records to the tap,
// spread evenly over the batch.
func (o *typedOutput[T]) sample(s *tapState, c *chanWriter[T], now time.Time) {
	n := c.n
	if c.local {
		n = len(c.recs)
	}
	take := min(s.allow(now), n)
	if take == 0 {
		return
	}
	s.left -= take
	stride := n / take
	var vals []T
	if c.local {
		for i := 0; i < take; i++ {
			vals = append(vals, c.recs[i*stride])
		}
	} else {
		var err error
		if vals, err = decodeSome(o.codec, c.buf, take, stride); err != nil {
			return
		}
	}
	for _, v := range vals {
		s.out(renderTap(v, s.ref, now))
	}
}

// decodeSome decodes every stride-th of the first take*stride records of an
// encoded batch.
func decodeSome[T any](codec Codec[T], b []byte, take, stride int) ([]T, error) {
	out := make([]T, 0, take)
	r := uvarintframe.NewReader(b)
	for i := 0; len(out) < take; i++ {
		rec := r.Frame()
		if r.Err() != nil {
			return nil, fmt.Errorf("%w: corrupt batch framing: %w", ErrDecode, r.Err())
		}
		if i%stride == 0 {
			v, err := codec.Decode(rec)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// renderTap renders a record as JSON where encoding/json can, else as %v.
func renderTap(v any, ref SubtaskRef, now time.Time) *weirv1.TapRecord {
	r := &weirv1.TapRecord{VertexId: int32(ref.Vertex), Subtask: int32(ref.Subtask), UnixMs: now.UnixMilli()}
	if b, err := json.Marshal(v); err == nil {
		r.Json = string(b)
	} else {
		r.Text = fmt.Sprintf("%v", v)
	}
	return r
}

// liveTap is a tap the deployment runs, remembered so that subtasks built
// after it started get it too.
type liveTap struct {
	uid  string
	rate int
	out  func(*weirv1.TapRecord)
}

// StartTap installs a tap on every subtask of the deployment whose chain
// ends with the operator uid; records go to out.
func (d *Deployment) StartTap(st *weirv1.StartTap, out func(*weirv1.TapRecord)) {
	rate := int(st.Rate)
	if rate <= 0 {
		rate = defaultTapRate
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.taps == nil {
		d.taps = map[string]liveTap{}
	}
	d.taps[st.TapId] = liveTap{uid: st.Uid, rate: rate, out: out}
	for ref, t := range d.tasks {
		d.installTapLocked(st.TapId, ref, t)
	}
}

// installTapLocked puts tap id on t if t's chain ends with the tapped
// operator. d.mu must be held.
func (d *Deployment) installTapLocked(id string, ref SubtaskRef, t *task) {
	lt := d.taps[id]
	if t.v.tail().UID == lt.uid {
		t.env.tap.Store(&tapState{id: id, rate: lt.rate, out: lt.out, ref: ref})
	}
}

// stopTap removes tap id wherever it is installed.
func (d *Deployment) stopTap(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.taps, id)
	for _, t := range d.tasks {
		if s := t.env.tap.Load(); s != nil && s.id == id {
			t.env.tap.CompareAndSwap(s, nil)
		}
	}
}

// tapRelay batches tapped records from subtask goroutines to the stream.
type tapRelay struct {
	jobID string
	recs  chan tappedRecord
	send  func(*weirv1.TapRecords)
}

type tappedRecord struct {
	tap string
	rec *weirv1.TapRecord
}

// tapRelayBuffer bounds the records waiting for the stream; more are
// dropped, which a sample may do.
const tapRelayBuffer = 1024

func newTapRelay(jobID string, send func(*weirv1.TapRecords)) *tapRelay {
	return &tapRelay{jobID: jobID, recs: make(chan tappedRecord, tapRelayBuffer), send: send}
}

// offer returns the non-blocking sink of tap id's records.
func (r *tapRelay) offer(id string) func(*weirv1.TapRecord) {
	return func(rec *weirv1.TapRecord) {
		select {
		case r.recs <- tappedRecord{id, rec}:
		default:
		}
	}
}

// run sends what arrived, grouped by tap, until done.
func (r *tapRelay) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case first := <-r.recs:
			batch := map[string]*weirv1.TapRecords{}
			add := func(t tappedRecord) {
				b := batch[t.tap]
				if b == nil {
					b = &weirv1.TapRecords{JobId: r.jobID, TapId: t.tap}
					batch[t.tap] = b
				}
				b.Records = append(b.Records, t.rec)
			}
			add(first)
		more:
			for {
				select {
				case t := <-r.recs:
					add(t)
				default:
					break more
				}
			}
			for _, b := range batch {
				r.send(b)
			}
		}
	}
}
