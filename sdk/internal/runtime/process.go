package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/weir-run/weir/internal/exchange"
	"github.com/weir-run/weir/internal/taskenv"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// RunTask is task mode: serve DataService, attach to the worker that started
// this process, run the subtasks it assigns once it says where every subtask
// lives, and report their states. The process ends with its subtasks, on
// cancel, or when the worker goes away.
func (g *Graph) RunTask(ctx context.Context, logger *slog.Logger) error {
	env, err := taskenv.FromEnv()
	if err != nil {
		return err
	}
	logger = logger.With("job", env.JobID, "attempt", env.Attempt)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	lis, err := net.Listen("tcp", net.JoinHostPort(env.DataHost, "0"))
	if err != nil {
		return fmt.Errorf("listen for data: %w", err)
	}
	nw := exchange.NewNetwork(env.JobID, env.Attempt, exchange.Options{ChannelSecret: env.ChannelSecret, TLS: env.DataTLS}, logger)
	defer nw.Close()
	srvOpts := exchange.ServerOptions()
	var fingerprint []byte
	if env.DataTLS {
		id, err := exchange.NewIdentity()
		if err != nil {
			return err
		}
		srvOpts, fingerprint = append(srvOpts, id.ServerOption()), id.Fingerprint()
	}
	srv := grpc.NewServer(srvOpts...)
	nw.Register(srv)
	go srv.Serve(lis)
	defer srv.Stop()
	self := lis.Addr().String()
	nw.SetLocalAddr(self)

	conn, err := grpc.NewClient(env.WorkerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial worker at %s: %w", env.WorkerAddr, err)
	}
	defer conn.Close()
	stream, err := weirv1.NewTaskServiceClient(conn).Attach(ctx)
	if err != nil {
		return fmt.Errorf("attach to worker at %s: %w", env.WorkerAddr, err)
	}
	var sendMu sync.Mutex
	send := func(m *weirv1.ProcessMessage) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	hello := &weirv1.ProcessHello{JobId: env.JobID, Attempt: env.Attempt, Token: env.Token, DataAddress: self,
		DataCertSha256: fingerprint}
	if err := send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_Hello{Hello: hello}}); err != nil {
		return fmt.Errorf("hello to worker: %w", err)
	}

	// The worker sends Assign, then Start once every process is ready.
	var refs []SubtaskRef
	var start *weirv1.StartTasks
	var ck *checkpointer
	for start == nil {
		cmd, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("worker went away before the tasks started: %w", err)
		}
		switch c := cmd.Cmd.(type) {
		case *weirv1.ProcessCommand_Assign:
			SetSecrets(c.Assign.Secrets)
			refs, err = g.refsOf(c.Assign.Subtasks)
			if err != nil {
				return err
			}
			if c.Assign.Store != "" {
				if ck, err = openCheckpointer(ctx, env, c.Assign, logger); err != nil {
					return err
				}
				defer ck.close()
				ck.ack = func(a *weirv1.CheckpointAck) {
					send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_CheckpointAck{CheckpointAck: a}})
				}
				ck.decline = func(dc *weirv1.CheckpointDecline) {
					send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_CheckpointDecline{CheckpointDecline: dc}})
				}
				ck.awaitingFinal = func(r SubtaskRef, taken int64) {
					send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TaskState{TaskState: &weirv1.TaskStateUpdate{
						JobId: env.JobID, Attempt: env.Attempt, VertexId: int32(r.Vertex), Subtask: int32(r.Subtask),
						State: weirv1.TaskState_TASK_STATE_RUNNING, AwaitingFinalCheckpoint: true, CheckpointTaken: taken}}})
				}
			}
		case *weirv1.ProcessCommand_Start:
			start = c.Start
		case *weirv1.ProcessCommand_Cancel:
			return nil
		}
	}
	routes := make(map[SubtaskRef]string, len(start.Routes))
	pins := make(map[string][]byte)
	for _, r := range start.Routes {
		routes[SubtaskRef{int(r.VertexId), int(r.Subtask)}] = r.DataAddress
		if len(r.DataCertSha256) > 0 {
			pins[r.DataAddress] = r.DataCertSha256
		}
	}
	nw.SetPins(pins)

	d := &Deployment{JobID: env.JobID, Attempt: env.Attempt, Net: nw, Self: self, Logger: logger, ck: ck,
		Route: func(r SubtaskRef) string { return routes[r] }}
	report := func(r SubtaskRef, st weirv1.TaskState, err error) {
		u := &weirv1.TaskStateUpdate{JobId: env.JobID, Attempt: env.Attempt,
			VertexId: int32(r.Vertex), Subtask: int32(r.Subtask), State: st}
		if err != nil {
			u.Error = err.Error()
			var re *restoreError
			u.RestoreFailed = errors.As(err, &re)
			u.Permanent = IsPermanent(err)
			logger.Error("subtask failed", "vertex", r.Vertex, "subtask", r.Subtask, "err", err)
		}
		if err := send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TaskState{TaskState: u}}); err != nil {
			logger.Warn("cannot report task state", "err", err)
		}
	}
	// Metrics and tapped records leave through the stream, never from a
	// subtask goroutine: those only hand over without blocking.
	stopReports := make(chan struct{})
	defer close(stopReports)
	go d.reportMetrics(stopReports, func(m *weirv1.ProcessMetrics) {
		send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_Metrics{Metrics: m}})
	})
	taps := newTapRelay(env.JobID, func(r *weirv1.TapRecords) {
		send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_TapRecords{TapRecords: r}})
	})
	go taps.run(stopReports)

	// One goroutine reads the stream from here on (gRPC allows one reader):
	// a cancel command, or the stream's end once the worker has read our
	// last report or went away.
	errCancelled := errors.New("cancelled by the coordinator")
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			cmd, err := stream.Recv()
			if err != nil {
				cancel(fmt.Errorf("worker connection lost: %w", err))
				return
			}
			switch c := cmd.Cmd.(type) {
			case *weirv1.ProcessCommand_Cancel:
				cancel(errCancelled)
			case *weirv1.ProcessCommand_Trigger:
				d.post(control{trigger: c.Trigger})
			case *weirv1.ProcessCommand_Complete:
				d.post(control{complete: c.Complete.CheckpointId})
			case *weirv1.ProcessCommand_StartTap:
				d.StartTap(c.StartTap, taps.offer(c.StartTap.TapId))
			case *weirv1.ProcessCommand_StopTap:
				d.stopTap(c.StopTap.TapId)
			}
		}
	}()

	runErr := g.Run(ctx, d, refs, report)
	interrupted := context.Cause(ctx)
	if ck != nil {
		// Uploads run on the tasks' context, which ended with them.
		ck.uploads.Wait()
	}

	// A last metrics report: the subtasks' final watermarks (and counts)
	// reach the coordinator even when they ended within a report interval.
	send(&weirv1.ProcessMessage{Msg: &weirv1.ProcessMessage_Metrics{Metrics: d.ProcessMetrics(time.Now())}})

	// Let the worker read every report before the process exits: it ends
	// the stream once it has seen our half-close.
	sendMu.Lock()
	stream.CloseSend()
	sendMu.Unlock()
	select {
	case <-recvDone:
	case <-time.After(5 * time.Second):
	}
	switch {
	case runErr != nil:
		return runErr
	case interrupted != nil && !errors.Is(interrupted, errCancelled):
		return interrupted
	}
	return nil
}

// refsOf checks the assigned subtasks against the graph: a mismatch means the
// binary built a different graph from the same arguments.
func (g *Graph) refsOf(subs []*weirv1.SubtaskRef) ([]SubtaskRef, error) {
	refs := make([]SubtaskRef, 0, len(subs))
	for _, s := range subs {
		if int(s.VertexId) >= len(g.Vertices) || int(s.Subtask) >= g.Vertices[s.VertexId].Parallelism {
			return nil, fmt.Errorf("assigned subtask %d of vertex %d does not exist in this binary's graph: the job must build the same graph in every process", s.Subtask, s.VertexId)
		}
		refs = append(refs, SubtaskRef{int(s.VertexId), int(s.Subtask)})
	}
	return refs, nil
}
