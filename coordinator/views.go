package coordinator

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/coordinator/jobgraph"
	"github.com/weir-run/weir/coordinator/web"
	"github.com/weir-run/weir/internal/etcdkeys"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// pages adapts the coordinator to the status page's Backend.
type pages struct{ c *Coordinator }

var _ web.Backend = pages{}

// viewTimeout bounds a page's wait for the leader loop.
const viewTimeout = 5 * time.Second

func (p pages) Overview(ctx context.Context) (*web.Overview, error) {
	o := &web.Overview{Cluster: p.c.cluster(ctx)}
	st := p.c.lead()
	if st == nil {
		return o, nil
	}
	ctx, cancel := context.WithTimeout(ctx, viewTimeout)
	defer cancel()
	return call(ctx, st, func() (*web.Overview, error) {
		now := time.Now()
		for _, f := range st.freeSlots() {
			o.Workers = append(o.Workers, st.workerRow(st.workers[f.ID], f.Free, now))
		}
		for _, j := range st.sortedJobs() {
			o.Jobs = append(o.Jobs, jobRow(j, now))
		}
		return o, nil
	})
}

func (s *leaderState) workerRow(w *workerConn, free int, now time.Time) web.WorkerRow {
	r := web.WorkerRow{ID: w.id, Host: w.host, Slots: w.slots, Used: w.slots - free,
		HeartbeatAgeMs: now.Sub(w.lastBeat).Milliseconds(), RSSBytes: w.rss}
	if w.memory != nil {
		r.HeapBytes, r.NumGC = w.memory.HeapAllocBytes, w.memory.NumGc
	}
	return r
}

func jobRow(j *jobDriver, now time.Time) web.JobRow {
	r := web.JobRow{ID: j.rec.Id, Name: j.rec.Name, State: shortState(j.rec.State), Created: time.UnixMilli(j.rec.CreatedUnixMs),
		Restarts: j.rec.Restarts, Attempt: j.rec.Attempt, Parallelism: j.rec.Spec.GetParallelism(),
		History: append([]float64(nil), j.metrics.history...)}
	end := now
	if r.State == "FINISHED" || r.State == "FAILED" || r.State == "CANCELED" {
		end = time.UnixMilli(j.rec.UpdatedUnixMs)
	}
	r.UptimeMs = end.Sub(r.Created).Milliseconds()
	if n := len(r.History); n > 0 && r.State == "RUNNING" {
		r.Throughput = r.History[n-1]
	}
	return r
}

func (p pages) Job(ctx context.Context, id string) (*web.Job, error) {
	st, err := p.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, viewTimeout)
	defer cancel()
	return call(ctx, st, func() (*web.Job, error) {
		j := st.jobs[id]
		if j == nil {
			return nil, status.Errorf(codes.NotFound, "no job %s", id)
		}
		now := time.Now()
		v := &web.Job{JobRow: jobRow(j, now), Error: j.rec.Error, Message: j.rec.Message, CheckpointWarning: checkpointWarning(j)}
		g := j.rec.Spec.GetGraph()
		for _, vx := range g.GetVertices() {
			op := web.Operator{VertexID: vx.Id, Name: vx.Name, Source: vx.IsSource, Parallelism: vx.Parallelism}
			for _, o := range vx.Operators {
				op.UIDs = append(op.UIDs, o.Uid)
			}
			if len(vx.Operators) > 0 {
				if uid, err := jobgraph.TapTarget(g, vx.Operators[len(vx.Operators)-1].Uid); err == nil {
					op.TapUID = uid
				}
			}
			op.RecordsIn, op.RecordsOut = j.records(vx.Id)
			r := j.metrics.rates(vx.Id)
			op.InRate, op.OutRate, op.Busy, op.Backpressured = r.inRate, r.outRate, r.busy, r.backpressured
			finished := func(i int32) bool {
				t := j.tasks[jobgraph.Subtask{VertexID: vx.Id, Index: i}]
				return t != nil && t.state == weirv1.TaskState_TASK_STATE_FINISHED
			}
			if wm, ok := j.metrics.watermark(vx.Id, vx.Parallelism, finished); ok && wm == watermarkEnded {
				op.WatermarkEnded = true
			} else if ok {
				op.WatermarkMs = &wm
				op.WatermarkLag = max(now.UnixMilli()-wm, 0)
			}
			for _, l := range r.lag {
				op.Lag = append(op.Lag, partitionLag(l))
			}
			sort.Slice(op.Lag, func(a, b int) bool {
				if op.Lag[a].Topic != op.Lag[b].Topic {
					return op.Lag[a].Topic < op.Lag[b].Topic
				}
				return op.Lag[a].Partition < op.Lag[b].Partition
			})
			v.Operators = append(v.Operators, op)
		}
		for _, e := range g.GetEdges() {
			v.Edges = append(v.Edges, web.Edge{From: e.Source, To: e.Target,
				Partitioning: strings.TrimPrefix(e.Partitioning.String(), "PARTITIONING_")})
		}
		for _, c := range j.checkpoints.History() {
			v.Checkpoints = append(v.Checkpoints, web.Checkpoint{ID: c.Id, Status: strings.TrimPrefix(c.Status.String(), "CHECKPOINT_STATUS_"),
				Trigger: time.UnixMilli(c.TriggerUnixMs), DurationMs: c.DurationMs, SizeBytes: c.SizeBytes,
				IncrementalBytes: c.IncrementalBytes, AlignmentMs: c.AlignmentMs, Savepoint: c.Savepoint, Failure: c.Failure})
		}
		// Oldest first, whatever order the history keeps.
		sort.Slice(v.Checkpoints, func(a, b int) bool { return v.Checkpoints[a].ID < v.Checkpoints[b].ID })
		for _, e := range slices.Backward(j.metrics.exceptions) {
			v.Exceptions = append(v.Exceptions, web.Exception{At: e.at, Attempt: e.attempt, Text: e.text}) // newest first
		}
		for _, t := range st.status(j).Tasks {
			v.Tasks = append(v.Tasks, web.Task{Vertex: t.Vertex, Subtask: t.Subtask, Worker: t.Worker, State: taskState(t.State)})
		}
		return v, nil
	})
}

func taskState(s weirv1.TaskState) string { return strings.TrimPrefix(s.String(), "TASK_STATE_") }

func (p pages) Worker(ctx context.Context, id string) (*web.Worker, error) {
	st, err := p.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, viewTimeout)
	defer cancel()
	return call(ctx, st, func() (*web.Worker, error) {
		w := st.workers[id]
		if w == nil {
			return nil, status.Errorf(codes.NotFound, "no worker %s is connected", id)
		}
		free := 0
		for _, f := range st.freeSlots() {
			if f.ID == id {
				free = f.Free
			}
		}
		v := &web.Worker{WorkerRow: st.workerRow(w, free, time.Now()), Memory: w.memory}
		for _, j := range st.sortedJobs() {
			for _, pid := range j.attemptProcs() {
				if p := j.procs[pid]; pid.worker == id && !p.exited {
					v.Processes = append(v.Processes, web.Process{Job: j.rec.Id, JobName: j.rec.Name, Attempt: j.attemptOf(pid.region), Pid: p.pid, Memory: j.metrics.memory[id]})
				}
			}
			for _, sub := range j.subtasks {
				if t := j.tasks[sub]; t != nil && t.worker == id {
					v.Tasks = append(v.Tasks, web.Task{Job: j.rec.Id, JobName: j.rec.Name, Vertex: j.vertices[sub.VertexID], Subtask: sub.Index, Worker: id, State: taskState(t.state)})
				}
			}
		}
		return v, nil
	})
}

func (p pages) CancelJob(ctx context.Context, id string) error {
	_, err := (&jobService{c: p.c}).CancelJob(ctx, &weirv1.CancelJobRequest{JobId: id})
	return err
}

func (p pages) Savepoint(ctx context.Context, id string) (string, error) {
	r, err := (&jobService{c: p.c}).TriggerSavepoint(ctx, &weirv1.TriggerSavepointRequest{JobId: id})
	if err != nil {
		return "", err
	}
	return r.Location, nil
}

func (p pages) Tail(ctx context.Context, r *weirv1.TailRequest, send func(*weirv1.TapRecord) error) error {
	return p.c.Tail(ctx, r, send)
}

// lead is the leader state, nil on a standby.
func (c *Coordinator) lead() *leaderState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.lead
}

// candidate reports whether this coordinator would take over at once if
// the leader went (see leader.Elector.Candidate).
func (c *Coordinator) candidate() bool {
	c.mu.Lock()
	el := c.mu.el
	c.mu.Unlock()
	return el != nil && el.Candidate()
}

// coordinatorInfo is what each coordinator publishes about itself in etcd,
// so any of them can list the others and link to the leader's page.
type coordinatorInfo struct {
	ID   string `json:"id"`
	API  string `json:"api"`
	HTTP string `json:"http,omitempty"`
}

// announceLoop keeps this coordinator published until ctx ends, again
// whenever its lease is lost (a partition from etcd outlasting the TTL).
func (c *Coordinator) announceLoop(ctx context.Context) {
	for ctx.Err() == nil {
		if err := c.announce(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("cannot publish this coordinator for the status page", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// announce publishes this coordinator under a lease until the lease is
// lost or ctx ends.
func (c *Coordinator) announce(ctx context.Context) error {
	b, _ := json.Marshal(coordinatorInfo{ID: c.cfg.ID, API: c.cfg.API, HTTP: c.cfg.HTTP})
	lease, err := c.etcd.Grant(ctx, int64(max(c.cfg.LeaseTTL/time.Second, 2)))
	if err != nil {
		return err
	}
	if _, err := c.etcd.Put(ctx, etcdkeys.Coordinators+c.cfg.ID, string(b), clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	ka, err := c.etcd.KeepAlive(ctx, lease.ID)
	if err != nil {
		return err
	}
	for range ka {
	}
	return nil
}

// cluster lists the coordinators that announced themselves and who leads.
func (c *Coordinator) cluster(ctx context.Context) web.Cluster {
	cl := web.Cluster{Self: c.cfg.ID, Leading: c.lead() != nil, Insecure: c.insecure(),
		PlaintextDataPlane: c.cfg.TLS != nil && !c.dataTLS, KEK: c.kek.String()}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	leader, _ := etcdkeys.CurrentLeader(ctx, c.etcd, etcdkeys.Election)
	resp, err := c.etcd.Get(ctx, etcdkeys.Coordinators, clientv3.WithPrefix())
	if err != nil {
		return cl
	}
	for _, kv := range resp.Kvs {
		var info coordinatorInfo
		if json.Unmarshal(kv.Value, &info) != nil {
			continue
		}
		co := web.Coordinator{ID: info.ID, API: info.API, HTTP: info.HTTP, Leader: info.API == leader, Self: info.ID == c.cfg.ID}
		if co.Leader && !co.Self {
			cl.LeaderHTTP = info.HTTP
		}
		cl.Coordinators = append(cl.Coordinators, co)
	}
	return cl
}

// partitionLag is a subtask's report of a partition's lag for the job
// page: the report's "unknown" values (-1 records, 0 ms behind) become
// absent ones.
func partitionLag(l *weirv1.PartitionLag) web.PartitionLag {
	pl := web.PartitionLag{Topic: l.Topic, Partition: l.Partition}
	if n := l.Records; n >= 0 {
		pl.Records = &n
	}
	if ms := l.BehindMs; ms > 0 {
		pl.BehindMs = &ms
	}
	return pl
}
