package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"time"

	"gocloud.dev/gcerrors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/checkpoint"
	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/jobmaster"
	"github.com/weir-run/weir/internal/authz"
	"github.com/weir-run/weir/internal/bytesize"
	"github.com/weir-run/weir/internal/chunkio"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/objstore"
	"github.com/weir-run/weir/internal/sealing"
	"github.com/weir-run/weir/internal/storelayout"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// jobService serves the CLI.
type jobService struct {
	weirv1.UnimplementedJobServiceServer
	c *Coordinator
}

func (s *jobService) StatBinary(ctx context.Context, r *weirv1.StatBinaryRequest) (*weirv1.StatBinaryResponse, error) {
	if !objstore.ValidSHA256(r.Sha256) {
		return nil, status.Errorf(codes.InvalidArgument, "%q is not a sha256 digest", r.Sha256)
	}
	size, ok, err := s.c.store.HasBinary(ctx, r.Sha256)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "object store: %v", err)
	}
	return &weirv1.StatBinaryResponse{Exists: ok, Size: size}, nil
}

// UploadBinary streams the binary into the store without holding it in
// memory; the store only publishes it if the digest matches the header.
func (s *jobService) UploadBinary(stream weirv1.JobService_UploadBinaryServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil || !objstore.ValidSHA256(h.Sha256) {
		return status.Error(codes.InvalidArgument, "upload must start with a header carrying the binary's sha256")
	}
	body := chunkio.NewReader(func() ([]byte, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return m.GetChunk(), nil
	})
	size, err := s.c.store.PutBinary(stream.Context(), body, h.Sha256)
	switch {
	case errors.Is(err, objstore.ErrDigestMismatch):
		return status.Errorf(codes.InvalidArgument, "uploaded bytes do not hash to %s", h.Sha256)
	case err != nil:
		return status.Errorf(codes.Internal, "store binary: %v", err)
	case h.Size > 0 && size != h.Size:
		return status.Errorf(codes.InvalidArgument, "uploaded %d bytes, header said %d", size, h.Size)
	}
	return stream.SendAndClose(&weirv1.UploadBinaryResponse{Sha256: h.Sha256, Size: size})
}

func (s *jobService) SubmitJob(ctx context.Context, r *weirv1.SubmitJobRequest) (*weirv1.SubmitJobResponse, error) {
	spec := r.GetSpec()
	if spec == nil {
		return nil, status.Error(codes.InvalidArgument, "no job spec")
	}
	// First: nothing of a spec too large to record is looked at.
	if n, limit := int64(proto.Size(spec)), s.c.cfg.MaxSpecBytes; n > limit {
		return nil, status.Errorf(codes.InvalidArgument, "the job spec is %s, more than this coordinator's limit of %s (--max-spec-size): pass large inputs as files, not arguments",
			bytesize.Format(n), bytesize.Format(limit))
	}
	if err := validateSpec(spec); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if _, ok, err := s.c.store.HasBinary(ctx, spec.BinarySha256); err != nil {
		return nil, status.Errorf(codes.Internal, "object store: %v", err)
	} else if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "binary %s was not uploaded", spec.BinarySha256)
	}
	if spec.Name == "" {
		spec.Name = spec.Graph.Name
	}
	var savepointKey *sealing.JobKey
	if spec.FromSavepoint != "" {
		var err error
		if savepointKey, err = s.checkSavepoint(ctx, spec); err != nil {
			return nil, err
		}
	}
	secrets, err := s.c.loadSecrets(ctx, spec.Secrets)
	switch {
	case errors.Is(err, errNoSecret) || status.Code(err) == codes.InvalidArgument:
		return nil, status.Errorf(codes.FailedPrecondition, "%v", oneLine(err))
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "%v", oneLine(err))
	}
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	// A binary no registered worker can run would only fail at its
	// deployment: refuse it now.
	platform, err := s.c.binaryPlatform(ctx, spec.BinarySha256)
	if err != nil {
		return nil, err
	}
	if _, err := call(ctx, st, func() (struct{}, error) { return struct{}{}, st.runnable(platform) }); err != nil {
		return nil, err
	}
	who, quota := submitter(ctx)
	slots := jobgraph.SlotsNeeded(spec.Graph)
	res, err := call(ctx, st, func() (*reservation, error) { return st.reserve(who, quota, slots) })
	if err != nil {
		return nil, err
	}
	// Whatever happens next, the reservation goes: to the job once it
	// exists, back otherwise. Releasing twice is harmless.
	defer st.do(context.WithoutCancel(ctx), func() { st.release(res) })
	id := newJobID()
	key, err := s.c.newJobKey(ctx, id)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cannot make the job's data key: %v", oneLine(err))
	}
	now := time.Now().UnixMilli()
	rec := &weirv1.JobStatus{Id: id, Name: spec.Name, State: weirv1.JobState_JOB_STATE_CREATED,
		CreatedUnixMs: now, UpdatedUnixMs: now, Spec: spec, SubmittedBy: who}
	// The record is in etcd before the job exists for the loop: a job that
	// cannot be recorded never runs, and one that runs survives a
	// failover. (A write made by the loop is retried only at the job's
	// next change.)
	b, err := proto.Marshal(rec)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode job record: %v", err)
	}
	if err := st.store.Put(ctx, etcdkeys.Jobs+id, b); err != nil {
		if st.fenced(err) {
			return nil, errNotLeader
		}
		return nil, status.Errorf(codes.Unavailable, "the job was not started: cannot record it in etcd: %v", oneLine(err))
	}
	recorded, err := call(ctx, st, func() (<-chan struct{}, error) {
		j := newJob(rec, jobmaster.New(spec.Restart, time.Now(), jobmaster.WithRand(mrand.Float64)))
		j.key, j.savepointKey, j.secrets = key, savepointKey, secrets
		st.jobs[id] = j
		st.release(res) // the job counts itself now
		st.persist(j)
		st.logger.Info("job submitted", "job", id, "name", spec.Name, "parallelism", spec.Parallelism)
		st.step(st.ctx, j, jobmaster.Start{})
		return j.persisted(), nil
	})
	if err != nil {
		return nil, err
	}
	// Answered once the job is recorded, as before the loop wrote off it.
	if err := st.wait(ctx, recorded); err != nil {
		return nil, err
	}
	return &weirv1.SubmitJobResponse{JobId: id}, nil
}

// savepointReadTimeout bounds reading a savepoint's manifest at submit.
const savepointReadTimeout = 30 * time.Second

// checkSavepoint refuses, before anything runs, a savepoint the job could
// not start from: a location that is not one, that cannot be read or does
// not hold a manifest, or whose state some operator of the job would not
// restore (unless the spec allows dropping it). Otherwise a restore would
// silently start from scratch or drop state.
//
// It returns the data key that opens the savepoint: its job's.
func (s *jobService) checkSavepoint(ctx context.Context, spec *weirv1.JobSpec) (*sealing.JobKey, error) {
	loc := spec.FromSavepoint
	storeURL, key, err := storelayout.Split(loc)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "--from-savepoint %q is not a savepoint location (weir savepoint prints one: STORE/savepoints/JOB/ID/_manifest)", loc)
	}
	seal, err := s.c.objectKey(ctx, key)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "savepoint %s: %v", loc, oneLine(err))
	}
	ctx, cancel := context.WithTimeout(ctx, savepointReadTimeout)
	defer cancel()
	store, err := objstore.Open(ctx, storeURL)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "cannot open the store of savepoint %s: %v", loc, oneLine(err))
	}
	defer store.Close()
	b, err := store.Bucket().ReadAll(ctx, key)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return nil, status.Errorf(codes.FailedPrecondition, "savepoint %s does not exist", loc)
	case err != nil:
		return nil, status.Errorf(codes.FailedPrecondition, "cannot read savepoint %s: %v", loc, oneLine(err))
	}
	if b, err = seal.OpenBytes(b, key); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "savepoint %s: %v", loc, oneLine(err))
	}
	var m weirv1.CheckpointManifest
	if err := proto.Unmarshal(b, &m); err != nil || len(m.Subtasks) == 0 {
		if seal == nil {
			return nil, status.Errorf(codes.FailedPrecondition, "%s is not a savepoint manifest, or one encrypted under a key this cluster does not hold", loc)
		}
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not a savepoint manifest", loc)
	}
	if lost := jobgraph.NotRestored(spec.Graph, &m); len(lost) > 0 && !spec.AllowNonRestoredState {
		return nil, status.Errorf(codes.FailedPrecondition,
			"savepoint %s has state of operators this job does not restore (uids %s): is it another job's? Pass --allow-non-restored-state to drop that state",
			loc, strings.Join(lost, ", "))
	}
	return seal, nil
}

// oneLine keeps the first line of an error's text.
func oneLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// newJobID returns 16 random hex digits: unique without coordination.
func newJobID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *jobService) ListJobs(ctx context.Context, _ *weirv1.ListJobsRequest) (*weirv1.ListJobsResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	return call(ctx, st, func() (*weirv1.ListJobsResponse, error) {
		resp := &weirv1.ListJobsResponse{}
		for _, j := range st.sortedJobs() {
			js := st.status(j)
			js.Tasks, js.Spec = nil, nil
			resp.Jobs = append(resp.Jobs, js)
		}
		return resp, nil
	})
}

func (s *jobService) GetJob(ctx context.Context, r *weirv1.GetJobRequest) (*weirv1.JobStatus, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	return call(ctx, st, func() (*weirv1.JobStatus, error) {
		j := st.jobs[r.JobId]
		if j == nil {
			return nil, status.Errorf(codes.NotFound, "no job %s", r.JobId)
		}
		return st.status(j), nil
	})
}

func (s *jobService) CancelJob(ctx context.Context, r *weirv1.CancelJobRequest) (*weirv1.CancelJobResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	var recorded <-chan struct{}
	resp, err := call(ctx, st, func() (*weirv1.CancelJobResponse, error) {
		j := st.jobs[r.JobId]
		if j == nil {
			return nil, status.Errorf(codes.NotFound, "no job %s", r.JobId)
		}
		st.step(st.ctx, j, jobmaster.CancelRequested{})
		recorded = j.persisted()
		return &weirv1.CancelJobResponse{State: j.m.State()}, nil
	})
	if err != nil {
		return nil, err
	}
	// Answered once the cancel is recorded, as before the loop wrote off it.
	if err := st.wait(ctx, recorded); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *jobService) ListWorkers(ctx context.Context, _ *weirv1.ListWorkersRequest) (*weirv1.ListWorkersResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	return call(ctx, st, func() (*weirv1.ListWorkersResponse, error) {
		resp := &weirv1.ListWorkersResponse{}
		for _, f := range st.freeSlots() {
			w := st.workers[f.ID]
			resp.Workers = append(resp.Workers, &weirv1.WorkerInfo{Id: w.id, Host: w.host, Slots: int32(w.slots),
				Free: int32(f.Free), LastHeartbeatUnixMs: w.lastBeat.UnixMilli(), RssBytes: w.rss, Goos: w.goos, Goarch: w.goarch})
		}
		return resp, nil
	})
}

// clusterService serves workers.
type clusterService struct {
	weirv1.UnimplementedClusterServiceServer
	c *Coordinator
}

// Connect registers a worker and relays its reports to the leader loop until
// the stream or the leader term ends.
func (s *clusterService) Connect(stream weirv1.ClusterService_ConnectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if reg == nil || reg.WorkerId == "" || reg.Slots < 1 {
		return status.Error(codes.InvalidArgument, "a worker must first register with an id and at least one slot")
	}
	if p, ok := authz.PrincipalFrom(stream.Context()); ok && p.Via == "certificate" && p.Name != reg.WorkerId {
		return status.Errorf(codes.PermissionDenied, "this worker's certificate names %s; it cannot register as %s", p.Name, reg.WorkerId)
	}
	st, err := s.c.leading(stream.Context())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	w := &workerConn{id: reg.WorkerId, host: reg.Host, slots: int(reg.Slots), noLimits: reg.MemoryLimitUnavailable, goos: reg.Goos, goarch: reg.Goarch, lastBeat: time.Now(),
		out: make(chan *weirv1.CoordinatorMessage, 1024), close: cancel, reported: map[procKey]*weirv1.RunningProcess{}}
	for _, rp := range reg.Processes {
		w.reported[procKey{rp.JobId, rp.Attempt, rp.Region}] = rp
	}
	if err := st.do(ctx, func() { st.addWorker(context.Background(), w) }); err != nil {
		return err
	}
	// Whatever ends this stream, the loop must forget the worker.
	defer st.do(context.Background(), func() { st.workerGone(context.Background(), w, errors.New("connection closed")) })
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				cancel(fmt.Errorf("worker stream: %w", err))
				return
			}
			if err := st.do(ctx, func() { st.onWorkerMessage(context.Background(), w, m) }); err != nil {
				cancel(err)
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(context.Cause(ctx)).Err()
		case m := <-w.out:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

// DownloadBinary streams a stored job binary to a worker.
func (s *clusterService) DownloadBinary(r *weirv1.DownloadBinaryRequest, stream weirv1.ClusterService_DownloadBinaryServer) error {
	if !objstore.ValidSHA256(r.Sha256) {
		return status.Errorf(codes.InvalidArgument, "%q is not a sha256 digest", r.Sha256)
	}
	rc, _, err := s.c.store.OpenBinary(stream.Context(), r.Sha256)
	if errors.Is(err, objstore.ErrNotFound) {
		return status.Errorf(codes.NotFound, "no binary %s", r.Sha256)
	} else if err != nil {
		return status.Errorf(codes.Internal, "object store: %v", err)
	}
	defer rc.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if err := stream.Send(&weirv1.BinaryChunk{Data: buf[:n]}); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "read binary: %v", err)
		}
	}
}

func (s *jobService) ListCheckpoints(ctx context.Context, r *weirv1.ListCheckpointsRequest) (*weirv1.ListCheckpointsResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	return call(ctx, st, func() (*weirv1.ListCheckpointsResponse, error) {
		j := st.jobs[r.JobId]
		if j == nil {
			return nil, status.Errorf(codes.NotFound, "no job %s", r.JobId)
		}
		return &weirv1.ListCheckpointsResponse{Checkpoints: j.checkpoints.History()}, nil
	})
}

// TriggerSavepoint takes a savepoint and waits for it; with stop, the job is
// cancelled once the savepoint is complete, so no record after it is
// committed by the job's sinks.
func (s *jobService) TriggerSavepoint(ctx context.Context, r *weirv1.TriggerSavepointRequest) (*weirv1.TriggerSavepointResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	wait, err := call(ctx, st, func() (chan savepointResult, error) {
		j := st.jobs[r.JobId]
		if j == nil {
			return nil, status.Errorf(codes.NotFound, "no job %s", r.JobId)
		}
		if j.m.State() != weirv1.JobState_JOB_STATE_RUNNING || !j.checkpointing {
			return nil, status.Errorf(codes.FailedPrecondition, "a savepoint of job %s needs every task running: %s", r.JobId, jobNow(j.m.State()))
		}
		acts, err := j.checkpoints.RequestSavepoint(time.Now())
		if err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		ch := make(chan savepointResult, 1)
		j.savepointWaiter = ch
		st.checkpointInput(st.ctx, j, func(time.Time) []checkpoint.Action { return acts })
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	select {
	case res := <-wait:
		if res.err != nil {
			// What the job does now, as the caller hears of the failure:
			// a savepoint that failed with a task keeps the job running.
			state, _ := call(ctx, st, func() (weirv1.JobState, error) {
				if j := st.jobs[r.JobId]; j != nil {
					return j.m.State(), nil
				}
				return weirv1.JobState_JOB_STATE_UNSPECIFIED, nil
			})
			return nil, status.Error(codes.Aborted, failedSavepoint(res.err, state))
		}
		if r.Stop {
			call(ctx, st, func() (struct{}, error) {
				if j := st.jobs[r.JobId]; j != nil {
					st.step(st.ctx, j, jobmaster.CancelRequested{})
				}
				return struct{}{}, nil
			})
		}
		return &weirv1.TriggerSavepointResponse{Location: res.location, CheckpointId: res.id}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// failedSavepoint is what the caller of a savepoint that failed with err
// hears: why, what the job (now in state) does, and that nothing was taken.
func failedSavepoint(err error, state weirv1.JobState) string {
	return err.Error() + "; " + jobNow(state) + "; no savepoint was taken"
}

// jobNow says what a job in state does, after a failed savepoint.
func jobNow(state weirv1.JobState) string {
	switch {
	case state == weirv1.JobState_JOB_STATE_UNSPECIFIED:
		return "the job is no longer known"
	case state == weirv1.JobState_JOB_STATE_CANCELING || jobmaster.Terminal(state):
		return "the job is " + shortState(state)
	}
	return "the job is " + shortState(state) + " and keeps running"
}

// shortState is a state's name without its enum prefix.
func shortState(s weirv1.JobState) string {
	return strings.TrimPrefix(s.String(), "JOB_STATE_")
}
