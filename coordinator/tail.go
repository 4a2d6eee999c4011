package coordinator

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/coordinator/jobgraph"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// tapBuffer bounds the records waiting for a slow tail client; a sample
// may drop more.
const tapBuffer = 256

// tap is one live tail of an operator, fed by worker reports.
type tap struct {
	uid     string
	records chan *weirv1.TapRecord
}

// deliver hands records to the tail without blocking the leader loop.
func (t *tap) deliver(rs *weirv1.TapRecords) {
	for _, r := range rs.Records {
		select {
		case t.records <- r:
		default:
		}
	}
}

func (s *jobService) Tail(r *weirv1.TailRequest, stream weirv1.JobService_TailServer) error {
	return s.c.Tail(stream.Context(), r, stream.Send)
}

// Tail streams a sample of the records leaving an operator to send until
// limit records were sent or ctx ends.
func (c *Coordinator) Tail(ctx context.Context, r *weirv1.TailRequest, send func(*weirv1.TapRecord) error) error {
	st, err := c.leading(ctx)
	if err != nil {
		return err
	}
	id := newJobID()
	t, err := call(ctx, st, func() (*tap, error) {
		j := st.jobs[r.JobId]
		if j == nil {
			return nil, status.Errorf(codes.NotFound, "no job %s", r.JobId)
		}
		if j.m.State() != weirv1.JobState_JOB_STATE_RUNNING && j.m.State() != weirv1.JobState_JOB_STATE_RESTARTING {
			return nil, status.Errorf(codes.FailedPrecondition, "job %s is %s: only a running job can be tailed", r.JobId, shortState(j.m.State()))
		}
		uid, err := jobgraph.TapTarget(j.rec.Spec.Graph, r.Operator)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		t := &tap{uid: uid, records: make(chan *weirv1.TapRecord, tapBuffer)}
		j.taps[id] = t
		st.startTap(j, id, -1)
		return t, nil
	})
	if err != nil {
		return err
	}
	defer st.do(context.Background(), func() {
		if j := st.jobs[r.JobId]; j != nil {
			delete(j.taps, id)
			st.sendProcs(j, func(int32) *weirv1.ProcessCommand {
				return &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_StopTap{StopTap: &weirv1.StopTap{TapId: id}}}
			})
		}
	})
	for n := int32(0); r.Limit <= 0 || n < r.Limit; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-st.done:
			return errNotLeader
		case rec := <-t.records:
			if err := send(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// startTap asks the processes of region (every region if < 0) to sample
// for tap id.
func (s *leaderState) startTap(j *jobDriver, id string, only int32) {
	s.sendProcs(j, func(region int32) *weirv1.ProcessCommand {
		if only >= 0 && region != only {
			return nil
		}
		return &weirv1.ProcessCommand{Cmd: &weirv1.ProcessCommand_StartTap{StartTap: &weirv1.StartTap{TapId: id, Uid: j.taps[id].uid}}}
	})
}
