package coordinator

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/internal/authz"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestQuotaReservations(t *testing.T) {
	s := newLeaderState(&Coordinator{}, nil)
	job := func(id, who string, p int32, state weirv1.JobState) {
		rec := &weirv1.JobStatus{Id: id, SubmittedBy: who, State: state,
			Spec: &weirv1.JobSpec{Graph: &weirv1.JobGraph{Vertices: []*weirv1.Vertex{{Parallelism: p}, {Parallelism: 1}}}}}
		s.jobs[id] = newJob(rec, jobmaster.Restore(jobmaster.Snapshot{State: state}, nil))
	}
	job("a", "team (token)", 3, weirv1.JobState_JOB_STATE_RUNNING)
	job("b", "team (token)", 8, weirv1.JobState_JOB_STATE_CANCELED) // ended: not counted
	job("c", "other (token)", 8, weirv1.JobState_JOB_STATE_RUNNING)
	q := authz.Quota{MaxJobs: 3, MaxSlots: 6}

	refused := func(res *reservation, err error, want string) {
		t.Helper()
		if res != nil || status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, %v; want ResourceExhausted with %q", res, err, want)
		}
	}
	r1, err := s.reserve("team (token)", q, 2) // 3 + 2 slots, 2 jobs
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.reserve("team (token)", q, 2) // 3 + 2 + 2 > 6
	refused(res, err, "this job needs 2 slots and team (token)'s jobs take 5, and its token allows 6 (--max-slots)")
	r2, err := s.reserve("team (token)", q, 1) // 6 slots, 3 jobs
	if err != nil {
		t.Fatal(err)
	}
	res, err = s.reserve("team (token)", authz.Quota{MaxJobs: 3}, 0)
	refused(res, err, "team (token) has 3 jobs that have not ended, and its token allows 3 (--max-jobs)")
	if _, err := s.reserve("other (token)", authz.Quota{}, 100); err != nil {
		t.Fatalf("no quota: %v", err)
	}
	s.release(r1)
	s.release(r1) // twice: once only
	if got := s.reserved["team (token)"]; got != (usage{1, 1}) {
		t.Fatalf("reserved after releasing r1 twice: %+v, want r2's {1 1}", got)
	}
	if _, err := s.reserve("team (token)", q, 2); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	s.release(r2)
	if got := s.reserved["team (token)"]; got != (usage{1, 2}) {
		t.Fatalf("reserved: %+v, want {1 2}", got)
	}
}

// TestSecretLookingArgsAreRedacted: what a job's status shows of its
// arguments hides values that look like secrets; its processes still get
// them as given.
func TestSecretLookingArgsAreRedacted(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	w := h.registered(t, "w1", scriptOpts{})
	spec := h.spec("redacted")
	spec.Args = []string{"--user", "app", "--password", "hunter2", "api_key=k3y"}
	r, err := h.api.SubmitJob(h.ctx, &weirv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: r.JobId})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(st.Spec.Args, " "); got != "--user app --password (redacted) api_key=(redacted)" {
		t.Fatalf("shown args %q", got)
	}
	eventually(t, 30*time.Second, "the deploy", func() bool { d, _ := w.seen(); return len(d) > 0 })
	if d, _ := w.seen(); strings.Join(d[0].Args, " ") != "--user app --password hunter2 api_key=k3y" {
		t.Fatalf("deployed args %q", d[0].Args)
	}
}
