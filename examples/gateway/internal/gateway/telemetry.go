package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/log"
	lognoop "go.opentelemetry.io/otel/log/noop"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// Telemetry is the gateway's TracerProvider and LoggerProvider.
//
// By default audit records go straight to PostgreSQL through the otelaudit
// exporter, and spans are created (each audit row carries the trace id of
// its execute_tool span) but not exported. When OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) is set, logs and traces go over
// OTLP/HTTP instead, to a Collector whose pgaudit exporter writes the rows:
// the exporters read their settings from the standard OTEL_EXPORTER_OTLP_*
// variables, so the switch needs no code change.
type Telemetry struct {
	TracerProvider *sdktrace.TracerProvider
	// LoggerProvider is a no-op provider when audit is disabled.
	LoggerProvider log.LoggerProvider
	// Mode says where audit records go: "postgres", "otlp" or "off".
	Mode string
	// Health reports whether audit records can be stored durably; set
	// only in postgres mode (the exporter implements it).
	Health instrumentation.HealthChecker

	shutdownLogs func(context.Context) error
}

// OTLPEnabled reports whether the OTLP environment
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) sends
// audit records to a Collector instead of PostgreSQL.
func OTLPEnabled() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") != ""
}

// NewTelemetry sets up the providers for cfg.
func NewTelemetry(ctx context.Context, cfg *Config) (*Telemetry, error) {
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", Version),
	)
	t := &Telemetry{}
	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if OTLPEnabled() {
		te, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(te))
	}
	t.TracerProvider = sdktrace.NewTracerProvider(traceOpts...)

	var proc sdklog.Processor
	switch {
	case !cfg.Audit.IsEnabled():
		t.Mode = "off"
		t.LoggerProvider = lognoop.NewLoggerProvider()
		return t, nil
	case OTLPEnabled():
		t.Mode = "otlp"
		if cfg.Audit.FailClosed || cfg.Audit.SpoolDir != "" {
			_ = t.TracerProvider.Shutdown(ctx)
			return nil, errors.New("telemetry: audit.fail_closed and audit.spool_dir need the PostgreSQL exporter, but OTEL_EXPORTER_OTLP_ENDPOINT sends audit records to a Collector (whose persistent queue does the spooling)")
		}
		le, err := otlploghttp.New(ctx)
		if err != nil {
			_ = t.TracerProvider.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: OTLP log exporter: %w", err)
		}
		proc = sdklog.NewBatchProcessor(le, batchOptions(cfg.Audit)...)
	case cfg.AuditExporter != nil:
		t.Mode = "custom"
		proc = exporter.NewProcessor(cfg.AuditExporter, batchOptions(cfg.Audit)...)
	default:
		t.Mode = "postgres"
		// New applies the audit_log migrations.
		opts := []exporter.Option{exporter.WithDatabaseURL(cfg.DatabaseURL)}
		if cfg.Audit.SpoolDir != "" {
			opts = append(opts, exporter.WithSpool(cfg.Audit.SpoolDir, cfg.Audit.SpoolMaxBytes))
		}
		exp, err := exporter.New(ctx, opts...)
		if err != nil {
			_ = t.TracerProvider.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: audit exporter: %w", err)
		}
		t.Health = exp
		proc = exporter.NewProcessor(exp, batchOptions(cfg.Audit)...)
	}
	// This provider carries only audit records, whose keys the Auditor never
	// repeats: skipping the SDK's per-record key de-duplication halves Emit.
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(proc), sdklog.WithAllowKeyDuplication())
	t.LoggerProvider, t.shutdownLogs = lp, lp.Shutdown
	return t, nil
}

// batchOptions turns the audit settings into batch processor options.
func batchOptions(a AuditConfig) []sdklog.BatchProcessorOption {
	var opts []sdklog.BatchProcessorOption
	if a.MaxQueueSize > 0 {
		opts = append(opts, exporter.WithQueueSize(a.MaxQueueSize)) // exporter.NewProcessor must know the size it guards
	}
	if a.MaxBatchSize > 0 {
		opts = append(opts, sdklog.WithExportMaxBatchSize(a.MaxBatchSize))
	}
	if a.ExportInterval > 0 {
		opts = append(opts, sdklog.WithExportInterval(a.ExportInterval))
	}
	return opts
}

// Shutdown flushes and stops both providers: once it returns, every audit
// record emitted before is in PostgreSQL (or handed to the Collector).
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if err := t.TracerProvider.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down tracer provider: %w", err))
	}
	if t.shutdownLogs != nil {
		if err := t.shutdownLogs(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down logger provider (audit flush): %w", err))
		}
	}
	return errors.Join(errs...)
}
