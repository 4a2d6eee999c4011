package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/weir-run/weir/coordinator/checkpoint"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// instrumentation is the coordinator's name as an OTel scope.
const instrumentation = "github.com/weir-run/weir/coordinator"

// instruments are the coordinator's synchronous metrics and its tracer.
// Counters that mirror state (records, restarts, job states) are
// observed at scrape time instead, from the leader loop (observe).
type instruments struct {
	tracer                 trace.Tracer
	checkpointDuration     metric.Float64Histogram
	checkpointTaskDuration metric.Float64Histogram
	checkpointSize         metric.Int64Gauge
	checkpointIncrement    metric.Int64Gauge
	checkpointFailures     metric.Int64Counter
	reportsRefused         metric.Int64Counter
}

// inst returns the coordinator's instruments; a coordinator built without
// Run (in tests) gets ones that record nothing.
func (s *leaderState) inst() *instruments {
	if s.c.inst != nil {
		return s.c.inst
	}
	return noInstruments
}

// noInstruments record nothing.
var noInstruments = func() *instruments {
	in, err := newInstruments(nil, nil, nil)
	if err != nil {
		panic(err)
	}
	return in
}()

// checkpointBuckets suit checkpoint durations: tens of milliseconds to minutes.
var checkpointBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

func newInstruments(c *Coordinator, mp metric.MeterProvider, tp trace.TracerProvider) (*instruments, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	if tp == nil {
		tp = tnoop.NewTracerProvider()
	}
	m := mp.Meter(instrumentation)
	in := &instruments{tracer: tp.Tracer(instrumentation)}
	// Instrument errors are collected, not checked one by one: any of
	// them means a misconfigured provider.
	var errs []error
	var e error
	in.checkpointDuration, e = m.Float64Histogram("weir.checkpoint.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from triggering a checkpoint to its completion."), metric.WithExplicitBucketBoundaries(checkpointBuckets...))
	errs = append(errs, e)
	in.checkpointTaskDuration, e = m.Float64Histogram("weir.checkpoint.task.duration", metric.WithUnit("s"),
		metric.WithDescription("A task's share of a checkpoint: alignment, synchronous snapshot and upload."), metric.WithExplicitBucketBoundaries(checkpointBuckets...))
	errs = append(errs, e)
	in.checkpointSize, e = m.Int64Gauge("weir.checkpoint.size", metric.WithUnit("By"), metric.WithDescription("Full state size of the last completed checkpoint."))
	errs = append(errs, e)
	in.checkpointIncrement, e = m.Int64Gauge("weir.checkpoint.incremental.size", metric.WithUnit("By"), metric.WithDescription("Bytes uploaded by the last completed checkpoint."))
	errs = append(errs, e)
	in.checkpointFailures, e = m.Int64Counter("weir.checkpoint.failures", metric.WithDescription("Checkpoints that were aborted."))
	errs = append(errs, e)
	in.reportsRefused, e = m.Int64Counter("weir.reports.refused", metric.WithDescription("Reports of job processes dropped: from a worker that does not host the subtask, or naming objects outside the job."))
	errs = append(errs, e)
	recIn, e := m.Int64ObservableCounter("weir.operator.records.in", metric.WithDescription("Records received by an operator chain's head."))
	errs = append(errs, e)
	recOut, e := m.Int64ObservableCounter("weir.operator.records.out", metric.WithDescription("Records sent downstream by an operator chain's tail."))
	errs = append(errs, e)
	restarts, e := m.Int64ObservableCounter("weir.job.restarts", metric.WithDescription("Restarts of a job."))
	errs = append(errs, e)
	state, e := m.Int64ObservableGauge("weir.job.state", metric.WithDescription("1 for a job's current state."))
	errs = append(errs, e)
	slots, e := m.Int64ObservableGauge("weir.worker.slots", metric.WithDescription("Task slots of a worker, by use."))
	errs = append(errs, e)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("coordinator: metrics: %w", err)
	}
	_, err := m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		obs, err := c.observe(ctx)
		if err != nil {
			return nil // a standby observes nothing; not an error to report per scrape
		}
		for _, r := range obs.records {
			attrs := metric.WithAttributes(attribute.String("job", r.job), attribute.String("operator", r.operator))
			o.ObserveInt64(recIn, r.in, attrs)
			o.ObserveInt64(recOut, r.out, attrs)
		}
		for _, j := range obs.jobs {
			o.ObserveInt64(restarts, int64(j.restarts), metric.WithAttributes(attribute.String("job", j.id)))
			o.ObserveInt64(state, 1, metric.WithAttributes(attribute.String("job", j.id), attribute.String("state", j.state)))
		}
		for _, w := range obs.workers {
			o.ObserveInt64(slots, int64(w.used), metric.WithAttributes(attribute.String("worker", w.id), attribute.String("use", "used")))
			o.ObserveInt64(slots, int64(w.free), metric.WithAttributes(attribute.String("worker", w.id), attribute.String("use", "free")))
		}
		return nil
	}, recIn, recOut, restarts, state, slots)
	if err != nil {
		return nil, fmt.Errorf("coordinator: metrics: %w", err)
	}
	return in, nil
}

// observations are what the scrape-time instruments report.
type observations struct {
	records []recordObs
	jobs    []jobObs
	workers []workerObs
}

type recordObs struct {
	job, operator string
	in, out       int64
}

type jobObs struct {
	id, state string
	restarts  int32
}

type workerObs struct {
	id         string
	used, free int
}

// observe reads the leader's state for a scrape.
func (c *Coordinator) observe(ctx context.Context) (*observations, error) {
	c.mu.Lock()
	st := c.mu.lead
	c.mu.Unlock()
	if st == nil {
		return nil, errNotLeader
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return call(ctx, st, func() (*observations, error) {
		obs := &observations{}
		for _, j := range st.sortedJobs() {
			obs.jobs = append(obs.jobs, jobObs{j.rec.Id, shortState(j.rec.State), j.rec.Restarts})
			for _, v := range j.rec.Spec.GetGraph().GetVertices() {
				in, out := j.records(v.Id)
				obs.records = append(obs.records, recordObs{job: j.rec.Id, operator: v.Name, in: in, out: out})
			}
		}
		for _, f := range st.freeSlots() {
			w := st.workers[f.ID]
			obs.workers = append(obs.workers, workerObs{f.ID, w.slots - f.Free, f.Free})
		}
		return obs, nil
	})
}

// checkpointTrace is the span of a pending checkpoint.
type checkpointTrace struct {
	ctx  context.Context
	span trace.Span
}

// checkpointTriggered opens the checkpoint's span.
func (s *leaderState) checkpointTriggered(j *jobDriver, a checkpoint.Trigger) {
	ctx, span := s.inst().tracer.Start(context.Background(), "checkpoint", trace.WithTimestamp(a.Timestamp),
		trace.WithAttributes(attribute.String("job", j.rec.Id), attribute.Int64("checkpoint", a.ID), attribute.Bool("savepoint", a.Savepoint)))
	j.checkpointTraces[a.ID] = &checkpointTrace{ctx: ctx, span: span}
}

// checkpointAcked adds a task's span under its checkpoint's: the ack carries how
// long the task aligned, snapshotted and uploaded, which ended now.
func (s *leaderState) checkpointAcked(j *jobDriver, a *weirv1.CheckpointAck, now time.Time) {
	op := j.vertices[a.Snapshot.VertexId]
	attrs := []attribute.KeyValue{attribute.String("job", j.rec.Id), attribute.String("operator", op)}
	align := time.Duration(a.AlignmentMs) * time.Millisecond
	sync := time.Duration(a.SyncMicros) * time.Microsecond
	upload := time.Duration(a.AsyncMs) * time.Millisecond
	s.inst().checkpointTaskDuration.Record(context.Background(), (align + sync + upload).Seconds(), metric.WithAttributes(attrs...))
	t := j.checkpointTraces[a.CheckpointId]
	if t == nil || !t.span.IsRecording() {
		// Without a tracer (or unsampled) the four spans below are
		// dropped, but building them was a third of a checkpoint's cost
		// on the loop at 20,000 tasks.
		return
	}
	start := now.Add(-(align + sync + upload))
	tctx, task := s.inst().tracer.Start(t.ctx, "checkpoint task", trace.WithTimestamp(start),
		trace.WithAttributes(append(attrs, attribute.Int("subtask", int(a.Snapshot.Subtask)),
			attribute.Int64("uploaded_bytes", a.UploadedBytes), attribute.Int64("state_bytes", a.StateBytes))...))
	at := start
	for _, part := range []struct {
		name string
		d    time.Duration
	}{{"align", align}, {"sync", sync}, {"upload", upload}} {
		_, sp := s.inst().tracer.Start(tctx, part.name, trace.WithTimestamp(at))
		at = at.Add(part.d)
		sp.End(trace.WithTimestamp(at))
	}
	task.End(trace.WithTimestamp(now))
}

// checkpointFinished closes a checkpoint's span and records its metrics; failure
// is empty for a completed checkpoint.
func (s *leaderState) checkpointFinished(j *jobDriver, id int64, failure string) {
	ctx := context.Background()
	job := metric.WithAttributes(attribute.String("job", j.rec.Id))
	if failure != "" {
		s.inst().checkpointFailures.Add(ctx, 1, job)
	} else {
		for _, h := range j.checkpoints.History() {
			if h.Id == id {
				s.inst().checkpointDuration.Record(ctx, float64(h.DurationMs)/1000, job)
				s.inst().checkpointSize.Record(ctx, h.SizeBytes, job)
				s.inst().checkpointIncrement.Record(ctx, h.IncrementalBytes, job)
			}
		}
	}
	t := j.checkpointTraces[id]
	if t == nil {
		return
	}
	delete(j.checkpointTraces, id)
	if failure != "" {
		t.span.SetStatus(codes.Error, failure)
	}
	t.span.End()
}

// deploySpan traces an attempt's deployment, ended once all tasks run.
func (s *leaderState) deploySpan(j *jobDriver, attempt int64) {
	s.endDeploySpan(j, "superseded by another attempt")
	_, j.deploySpan = s.inst().tracer.Start(context.Background(), "deploy", trace.WithAttributes(
		attribute.String("job", j.rec.Id), attribute.Int64("attempt", attempt)))
}

// endDeploySpan ends the deployment's span; failure is empty when every
// task is running.
func (s *leaderState) endDeploySpan(j *jobDriver, failure string) {
	if j.deploySpan == nil {
		return
	}
	if failure != "" {
		j.deploySpan.SetStatus(codes.Error, failure)
	}
	j.deploySpan.End()
	j.deploySpan = nil
}
