package coordinator

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/internal/authz"
)

// Quotas: a token may bound how many jobs its submitter has that have not
// ended, and how many task slots they take (weir token create --max-jobs,
// --max-slots). A submit reserves its share on the leader's loop before its
// record is written, so two concurrent submits cannot both squeeze under
// the limit, and releases it once the job exists (then it counts itself) or
// if the submit fails.

// usage is what a submitter's jobs take, or reserve.
type usage struct{ jobs, slots int }

// submitter names the principal of ctx for JobStatus.submitted_by, and
// returns its quota.
func submitter(ctx context.Context) (string, authz.Quota) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return "", authz.Quota{}
	}
	return fmt.Sprintf("%s (%s)", p.Name, p.Via), p.Quota
}

// reservation is one admitted submit's share, until release.
type reservation struct {
	who      string
	share    usage
	released bool
}

// reserve admits a job of slots for who under q, or refuses it with
// ResourceExhausted. Loop only.
func (s *leaderState) reserve(who string, q authz.Quota, slots int) (*reservation, error) {
	res := &reservation{who: who, share: usage{1, slots}}
	if q == (authz.Quota{}) {
		res.released = true // nothing to count
		return res, nil
	}
	used := s.reserved[who]
	for _, j := range s.jobs {
		if j.rec.SubmittedBy == who && !jobmaster.Terminal(j.m.State()) {
			used.jobs++
			used.slots += jobgraph.SlotsNeeded(j.rec.Spec.GetGraph())
		}
	}
	switch {
	case q.MaxJobs > 0 && used.jobs+1 > q.MaxJobs:
		return nil, status.Errorf(codes.ResourceExhausted, "%s has %d jobs that have not ended, and its token allows %d (--max-jobs): cancel or wait for one", who, used.jobs, q.MaxJobs)
	case q.MaxSlots > 0 && used.slots+slots > q.MaxSlots:
		return nil, status.Errorf(codes.ResourceExhausted, "this job needs %d slots and %s's jobs take %d, and its token allows %d (--max-slots)", slots, who, used.slots, q.MaxSlots)
	}
	r := s.reserved[who]
	s.reserved[who] = usage{r.jobs + 1, r.slots + slots}
	return res, nil
}

// release gives a reservation back, once. Loop only.
func (s *leaderState) release(res *reservation) {
	if res == nil || res.released {
		return
	}
	res.released = true
	r := s.reserved[res.who]
	if r = (usage{r.jobs - res.share.jobs, r.slots - res.share.slots}); r.jobs <= 0 {
		delete(s.reserved, res.who)
		return
	}
	s.reserved[res.who] = r
}
