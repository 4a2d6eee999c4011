// Package telemetry builds a daemon's OpenTelemetry providers: metrics
// exported in the Prometheus text format on the daemon's /metrics, and
// traces exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set. The
// providers are handed to the coordinator and workers explicitly; nothing
// here touches otel's globals.
package telemetry
