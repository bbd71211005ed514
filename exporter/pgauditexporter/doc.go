// Package pgauditexporter is the pgaudit OpenTelemetry Collector exporter: it
// writes otelaudit audit events (log records whose EventName is
// "otelaudit.tool_call") to the PostgreSQL audit_log table, one row per tool
// call, through the same record→row mapping and the same idempotent COPY
// writer as the in-process otelaudit exporter. Other log records are skipped
// and counted.
//
// [NewFactory] is the component's entry point, [Config] its settings. The
// component's type, stability and own metrics are declared in metadata.yaml;
// internal/metadata is generated from it by mdatagen (make generate).
package pgauditexporter // import "github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter"

//go:generate mdatagen metadata.yaml
