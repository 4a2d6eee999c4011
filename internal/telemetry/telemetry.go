package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// OTLPEndpointEnv turns on trace export when set (the OTel convention).
const OTLPEndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// Providers are one daemon's telemetry.
type Providers struct {
	Meter  metric.MeterProvider
	Tracer trace.TracerProvider
	// Handler serves the Prometheus text format of Meter's metrics.
	Handler  http.Handler
	shutdown []func(context.Context) error
}

// New builds the providers for service (a resource attribute). getenv
// reads the environment, so tests choose whether traces are exported.
func New(ctx context.Context, service string, getenv func(string) string) (*Providers, error) {
	reg := prometheus.NewRegistry()
	// The daemon's own memory, GC and file descriptors, as every Go
	// service exposes them (go_*, process_*).
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	p := &Providers{Meter: mp, Tracer: noop.NewTracerProvider(),
		Handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		shutdown: []func(context.Context) error{mp.Shutdown}}
	if getenv(OTLPEndpointEnv) != "" {
		// The exporter reads the endpoint, headers and TLS settings from
		// the standard OTEL_EXPORTER_OTLP_* variables itself.
		te, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(te), sdktrace.WithResource(res))
		p.Tracer = tp
		p.shutdown = append(p.shutdown, tp.Shutdown)
	}
	return p, nil
}

// FromEnv is New with the process environment.
func FromEnv(ctx context.Context, service string) (*Providers, error) {
	return New(ctx, service, os.Getenv)
}

// Shutdown flushes pending spans and stops the providers.
func (p *Providers) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range p.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
