package coordinator

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/internal/etcdkeys"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A job's record writes run off the loop, in order, and a message for the
// job's processes made while one is out waits until it is done: the record
// comes before the effects it describes. The test plays the loop (settle).
func TestMessagesWaitForTheRecord(t *testing.T) {
	c, el := electedCoordinator(t)
	s := newLeaderState(c, el.Store())
	s.fence = func(err error) { t.Fatalf("fenced: %v", err) }
	w := &workerConn{id: "w1", slots: 1, lastBeat: time.Now(), out: make(chan *weirv1.CoordinatorMessage, 16), close: func(error) {}}
	s.workers[w.id] = w
	rec := &weirv1.JobStatus{Id: "j1", State: weirv1.JobState_JOB_STATE_RUNNING, Attempt: 1, Spec: &weirv1.JobSpec{}}
	j := newJob(rec, jobmaster.New(nil, time.Now()))
	s.jobs[rec.Id] = j

	for attempt := int64(2); attempt <= 4; attempt++ {
		j.rec.Attempt = attempt
		s.persist(j)
	}
	recorded := j.persisted()
	s.commandJob(j, w, procKey{"j1", 4, 0}, cancelCommand())
	if len(w.out) != 0 {
		t.Fatal("a message went out before the record describing it was written")
	}
	select {
	case <-recorded:
		t.Fatal("the record was reported written before the loop applied the result")
	default:
	}
	settle(t, s)
	select {
	case <-recorded:
	default:
		t.Fatal("the record writes are done but persisted() is not closed")
	}
	if len(w.out) != 1 {
		t.Fatalf("%d messages went out once the record was written, want 1", len(w.out))
	}
	got, err := c.etcd.Get(context.Background(), etcdkeys.Jobs+"j1")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("job record: %v %v", got, err)
	}
	var stored weirv1.JobStatus
	if err := proto.Unmarshal(got.Kvs[0].Value, &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Attempt != 4 {
		t.Fatalf("the record has attempt %d, want the last written, 4", stored.Attempt)
	}
	// Nothing out: messages go straight to the worker.
	s.commandJob(j, w, procKey{"j1", 4, 0}, cancelCommand())
	if len(w.out) != 2 {
		t.Fatalf("%d messages out, want 2", len(w.out))
	}
}
