package worker

import (
	"context"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/weir-run/weir/internal/procstat"
)

// registerMetrics observes, at scrape time, the worker's memory and the
// latest counters its job processes reported. The worker does not know
// the job graph, so tasks are labelled by vertex id and subtask; the
// coordinator's /metrics has them by operator name.
func (w *Worker) registerMetrics(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/weir-run/weir/worker")
	recIn, e1 := m.Int64ObservableCounter("weir.task.records.in", metric.WithDescription("Records received by a subtask's chain head."))
	recOut, e2 := m.Int64ObservableCounter("weir.task.records.out", metric.WithDescription("Records sent downstream by a subtask's chain tail."))
	mem, e3 := m.Int64ObservableGauge("weir.process.memory", metric.WithUnit("By"), metric.WithDescription("Resident memory of the worker and of its job processes."))
	gcs, e4 := m.Int64ObservableCounter("weir.process.gc", metric.WithDescription("Garbage collections of the worker and of its job processes."))
	for _, err := range []error{e1, e2, e3, e4} {
		if err != nil {
			return fmt.Errorf("worker: metrics: %w", err)
		}
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		self := procstat.Memory()
		worker := attribute.String("worker", w.cfg.ID)
		wa := metric.WithAttributes(worker, attribute.String("process", "worker"))
		o.ObserveInt64(mem, self.RssBytes, wa)
		o.ObserveInt64(gcs, int64(self.NumGc), wa)
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, jp := range w.mu.procs {
			pm := jp.metrics
			if pm == nil {
				continue
			}
			job := attribute.String("job", jp.key.job)
			if pm.Memory != nil {
				pa := metric.WithAttributes(worker, attribute.String("process", "job"), job)
				o.ObserveInt64(mem, pm.Memory.RssBytes, pa)
				o.ObserveInt64(gcs, int64(pm.Memory.NumGc), pa)
			}
			for _, t := range pm.Tasks {
				ta := metric.WithAttributes(worker, job, attribute.String("vertex", strconv.Itoa(int(t.VertexId))), attribute.String("subtask", strconv.Itoa(int(t.Subtask))))
				o.ObserveInt64(recIn, t.RecordsIn, ta)
				o.ObserveInt64(recOut, t.RecordsOut, ta)
			}
		}
		return nil
	}, recIn, recOut, mem, gcs)
	return err
}
