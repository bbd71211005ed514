package exporter

import (
	"context"

	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit"
)

// NewProcessor returns the processor to register the exporter with: an
// [sdklog.BatchProcessor] (configured by opts) behind a filter that admits
// only audit events, records whose EventName is [otelaudit.EventName].
// Application logs that share the LoggerProvider neither reach PostgreSQL
// nor take slots in the audit queue.
func NewProcessor(exp sdklog.Exporter, opts ...sdklog.BatchProcessorOption) sdklog.Processor {
	return &auditFilter{next: sdklog.NewBatchProcessor(exp, opts...)}
}

type auditFilter struct {
	next *sdklog.BatchProcessor
}

func (f *auditFilter) Enabled(ctx context.Context, p sdklog.EnabledParameters) bool {
	return p.EventName == otelaudit.EventName && f.next.Enabled(ctx, p)
}

func (f *auditFilter) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if r.EventName() != otelaudit.EventName {
		return nil
	}
	return f.next.OnEmit(ctx, r)
}

func (f *auditFilter) Shutdown(ctx context.Context) error   { return f.next.Shutdown(ctx) }
func (f *auditFilter) ForceFlush(ctx context.Context) error { return f.next.ForceFlush(ctx) }
