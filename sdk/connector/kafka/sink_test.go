package kafka

import (
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/sdk"
)

// job drives sink writers the way the runtime does, with crashes between
// any two steps.
type job struct {
	t       *testing.T
	brokers []string
	attempt int64
	p       int
}

func (j *job) open(items [][]byte, restored bool) []*writer[string] {
	j.t.Helper()
	j.attempt++
	var ws []*writer[string]
	for s := range j.p {
		w, err := openWriter(task{subtask: s, parallelism: j.p, attempt: j.attempt, job: "job1", uid: "sink",
			all: items, restored: restored, checkpointing: true},
			SinkConfig{Brokers: j.brokers, Topic: "out"}.withDefaults(), sdk.StringCodec{})
		if err != nil {
			j.t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

// crash drops a writer as a killed process would: nothing is ended.
func crash(w *writer[string]) {
	if w.cur != nil {
		w.cur.cl.Close()
	}
	for _, t := range w.pending {
		t.cl.Close()
	}
	w.admin.Close()
}

func write(t *testing.T, w *writer[string], vs ...string) {
	t.Helper()
	for _, v := range vs {
		if err := w.Write(Record[string]{Key: []byte(v), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// finish ends a writer's input as the runtime does under checkpoints:
// Finish, then the final checkpoint, which commits the last transaction.
func finish(t *testing.T, w *writer[string], final int64) {
	t.Helper()
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.PreCommit(final); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(final); err != nil {
		t.Fatal(err)
	}
}

func preCommit(t *testing.T, ws []*writer[string], id int64) [][]byte {
	t.Helper()
	var items [][]byte
	for _, w := range ws {
		its, err := w.PreCommit(id)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, its...)
	}
	return items
}

// The two-phase commit at the classic failure points: output is invisible
// until its checkpoint completes, a restore commits what the checkpoint
// pre-committed (once, even if it was committed already) and aborts what
// came after it.
func TestSinkTwoPhaseCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		// restoreFrom is the checkpoint restored (1 or 2); committed says
		// whether checkpoint 2's commit ran before the crash.
		restoreFrom int
		committed   bool
		parallelism int // of the restored job
	}{
		{name: "crash between pre-commit and commit", restoreFrom: 2, parallelism: 2},
		{name: "crash after commit", restoreFrom: 2, committed: true, parallelism: 2},
		{name: "restore from the older checkpoint", restoreFrom: 1, parallelism: 2},
		{name: "rescale down", restoreFrom: 2, parallelism: 1},
		{name: "rescale up", restoreFrom: 2, parallelism: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := broker(t, 3, "out")
			j := &job{t: t, brokers: brokers, p: 2}
			ws := j.open(nil, false)
			write(t, ws[0], values("v", 0, 5)...)
			write(t, ws[1], values("v", 5, 10)...)
			items1 := preCommit(t, ws, 1)
			if got := readCommitted(t, brokers, "out"); len(got) != 0 {
				t.Fatalf("read %d records before their checkpoint completed", len(got))
			}
			for _, w := range ws {
				if err := w.Commit(1); err != nil {
					t.Fatal(err)
				}
			}
			write(t, ws[0], values("v", 10, 15)...)
			write(t, ws[1], values("v", 15, 20)...)
			items2 := preCommit(t, ws, 2)
			if tc.committed {
				for _, w := range ws {
					if err := w.Commit(2); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(t, ws[0], "after-2") // in an open transaction at the crash
			for _, w := range ws {
				crash(w)
			}
			items, from := items2, 20
			if tc.restoreFrom == 1 {
				items, from = items1, 10
			}
			j.p = tc.parallelism
			ws = j.open(items, true)
			for i, v := range values("v", from, 30) {
				write(t, ws[i%len(ws)], v)
			}
			for _, w := range ws {
				finish(t, w, 3)
				w.Close()
			}
			if got, want := readCommitted(t, brokers, "out"), sorted(values("v", 0, 30)); !equal(got, want) {
				t.Fatalf("read_committed output has %d records: %v\nwant each of %d once", len(got), got, len(want))
			}
		})
	}
}

// A zombie writer of a failed attempt can neither write nor commit once the
// restored attempt fenced its ids.
func TestSinkFencesZombie(t *testing.T) {
	brokers := broker(t, 2, "out")
	j := &job{t: t, brokers: brokers, p: 1}
	zombie := j.open(nil, false)[0]
	write(t, zombie, values("v", 0, 10)...)
	items := preCommit(t, []*writer[string]{zombie}, 1)
	if err := zombie.Commit(1); err != nil {
		t.Fatal(err)
	}
	write(t, zombie, "zombie-1") // open when the new attempt starts
	next := j.open(items, true)[0]
	if err := zombie.Commit(1); err != nil {
		t.Fatal(err) // nothing pending: a no-op
	}
	_, err := zombie.PreCommit(2)
	if err == nil {
		err = zombie.Commit(2)
	}
	if err == nil {
		t.Fatal("the zombie committed after being fenced")
	}
	if !strings.Contains(err.Error(), "transaction") {
		t.Errorf("zombie error %q does not say which transaction", err)
	}
	crash(zombie)
	write(t, next, values("v", 10, 20)...)
	finish(t, next, 2)
	next.Close()
	if got, want := readCommitted(t, brokers, "out"), sorted(values("v", 0, 20)); !equal(got, want) {
		t.Fatalf("output %v, want %v", got, want)
	}
}

// Random runs with checkpoints that fail, commits that are lost and crashes
// at random points, against the model "every input record once".
func TestSinkExactlyOnceUnderInjectedFailures(t *testing.T) {
	brokers := broker(t, 4, "out")
	rng := rand.New(rand.NewSource(7))
	const n = 400
	j := &job{t: t, brokers: brokers, p: 2}
	type completed struct {
		pos   int
		items [][]byte
	}
	var last *completed
	ws := j.open(nil, false)
	pos, id := 0, int64(0)
	crashes := 0
	for pos < n {
		switch r := rng.Intn(100); {
		case r < 70: // a few records
			for range rng.Intn(10) + 1 {
				if pos == n {
					break
				}
				write(t, ws[pos%len(ws)], "v"+itoa(pos))
				pos++
			}
		case r < 88: // a checkpoint: it may fail, its commit may be lost
			id++
			items := preCommit(t, ws, id)
			if rng.Intn(4) == 0 {
				continue // declined: never completes
			}
			last = &completed{pos: pos, items: items}
			if rng.Intn(3) == 0 {
				continue // completed, but the notification was lost
			}
			for _, w := range ws {
				if err := w.Commit(id); err != nil {
					t.Fatal(err)
				}
			}
		default: // a crash, then a restore at a random parallelism
			crashes++
			for _, w := range ws {
				crash(w)
			}
			j.p = 1 + rng.Intn(3)
			if last == nil {
				ws, pos = j.open(nil, false), 0
			} else {
				ws, pos = j.open(last.items, true), last.pos
			}
		}
	}
	for _, w := range ws {
		finish(t, w, id+1)
		w.Close()
	}
	if got, want := readCommitted(t, brokers, "out"), sorted(values("v", 0, n)); !equal(got, want) {
		t.Fatalf("after %d crashes and %d checkpoints: output has %d records, want each of %d once", crashes, id, len(got), n)
	}
	t.Logf("%d crashes, %d checkpoints", crashes, id)
}

func TestSinkExactlyOnceNeedsCheckpoints(t *testing.T) {
	brokers := broker(t, 1, "out")
	_, err := openWriter(task{parallelism: 1, job: "j", uid: "s"},
		SinkConfig{Brokers: brokers, Topic: "out", Delivery: ExactlyOnce}.withDefaults(), sdk.StringCodec{})
	if err == nil || !strings.Contains(err.Error(), "--checkpoint-interval") {
		t.Fatalf("err = %v, want advice to enable checkpoints", err)
	}
	// The default falls back to at-least-once, flushed at the end.
	w, err := openWriter(task{parallelism: 1, job: "j", uid: "s"},
		SinkConfig{Brokers: brokers, Topic: "out", Compression: Zstd}.withDefaults(), sdk.StringCodec{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, "a", "b")
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := readCommitted(t, brokers, "out"); !equal(got, []string{"a", "b"}) {
		t.Fatalf("output %v", got)
	}
}

func TestSinkConfigValidate(t *testing.T) {
	err := SinkConfig{Compression: "brotli", TransactionTimeout: -time.Second}.Validate()
	for _, want := range []string{"no brokers", `unknown compression "brotli"`, "negative transaction timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	if _, err := ParseDelivery("twice"); err == nil {
		t.Error("ParseDelivery accepted twice")
	}
}

func FuzzDecodeSinkState(f *testing.F) {
	f.Add([]byte(`{"base":"weir-j-s","subtask":0,"subtasks":2,"pending":[{"checkpoint":3,"id":"weir-j-s-0-1","producer_id":7,"epoch":2}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeSinkState(b)
		if err != nil {
			return
		}
		if st.Base == "" || st.Subtask >= st.Subtasks {
			t.Fatalf("accepted %+v", st)
		}
	})
}

func itoa(i int) string { return values("", i, i+1)[0] }
