package telemetry

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestMetricsServeInPrometheusFormat(t *testing.T) {
	p, err := New(context.Background(), "test", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	c, _ := p.Meter.Meter("t").Int64Counter("weir.things")
	c.Add(context.Background(), 3, metric.WithAttributes())
	rec := httptest.NewRecorder()
	p.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "weir_things_total 3") || !strings.Contains(string(body), "go_gc_duration_seconds") {
		t.Fatalf("/metrics lacks the counter:\n%s", body)
	}
	if _, ok := p.Tracer.(noop.TracerProvider); !ok {
		t.Fatalf("without %s traces go nowhere, got %T", OTLPEndpointEnv, p.Tracer)
	}
}

func TestTracesExportedWhenAnEndpointIsSet(t *testing.T) {
	p, err := New(context.Background(), "test", env(map[string]string{OTLPEndpointEnv: "http://127.0.0.1:1"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Tracer.(*sdktrace.TracerProvider); !ok {
		t.Fatalf("with %s set the tracer is %T, want the SDK's", OTLPEndpointEnv, p.Tracer)
	}
	// No span was recorded, so shutting down has nothing to send.
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
