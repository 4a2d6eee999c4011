package runtime

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/weir-run/weir/internal/exchange"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// RunLocal runs every subtask of the job in this process, exchanging
// records in memory, without checkpoints. setup, when not nil, sees the
// deployment before its subtasks start.
func (g *Graph) RunLocal(ctx context.Context, logger *slog.Logger, setup func(*Deployment)) error {
	const self = "local"
	net := exchange.NewNetwork("local", 1, exchange.Options{}, logger)
	defer net.Close()
	net.SetLocalAddr(self)
	d := &Deployment{JobID: "local", Attempt: 1, Net: net, Self: self,
		Route: func(SubtaskRef) string { return self }, Logger: logger}
	if setup != nil {
		setup(d)
	}
	var cancelled atomic.Bool
	err := g.Run(ctx, d, g.AllSubtasks(), func(_ SubtaskRef, st weirv1.TaskState, _ error) {
		if st == weirv1.TaskState_TASK_STATE_CANCELED {
			cancelled.Store(true)
		}
	})
	if err == nil && cancelled.Load() {
		// Stopped before the end of input: the job did not complete.
		err = context.Cause(ctx)
	}
	return err
}

// AllSubtasks lists every subtask of the graph, vertex by vertex.
func (g *Graph) AllSubtasks() []SubtaskRef {
	var refs []SubtaskRef
	for _, v := range g.Vertices {
		for i := range v.Parallelism {
			refs = append(refs, SubtaskRef{v.ID, i})
		}
	}
	return refs
}
