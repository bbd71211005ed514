package exporter

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the exporter's own metrics.
const ScopeName = "github.com/sentinel-gateway/otelaudit/exporter"

// Reasons a record is dropped, the value of the reason attribute of
// otelaudit.records.dropped.
const (
	// DropQueueFull: the processor's in-memory queue was full.
	DropQueueFull = "queue_full"
	// DropSpoolFull: PostgreSQL was unreachable and the spool had no room.
	DropSpoolFull = "spool_full"
	// DropExportFailed: the write failed and no spool is configured.
	DropExportFailed = "export_failed"
	// DropShutdown: the records were still queued when the shutdown
	// deadline passed.
	DropShutdown = "shutdown"
	// DropCorrupt: a spooled batch could not be decoded.
	DropCorrupt = "spool_corrupt"
)

var reasonKey = attribute.Key("reason")

// telemetry holds the exporter's self-observability instruments.
type telemetry struct {
	written, duplicate, spooled, replayed, rejected, skipped, dropped metric.Int64Counter
	duration                                                          metric.Float64Histogram
	reg                                                               metric.Registration
}

func newTelemetry(mp metric.MeterProvider, spoolBytes func() int64) (*telemetry, error) {
	m := mp.Meter(ScopeName)
	t := &telemetry{}
	var err, e error
	counter := func(name, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{record}"))
		err = errors.Join(err, e)
		return c
	}
	t.written = counter("otelaudit.exporter.rows.written", "Rows inserted into the audit table.")
	t.duplicate = counter("otelaudit.exporter.rows.duplicate", "Rows already stored (replays); nothing was written for them.")
	t.spooled = counter("otelaudit.exporter.rows.spooled", "Rows written to the local spool while PostgreSQL was unreachable.")
	t.replayed = counter("otelaudit.exporter.rows.replayed", "Spooled rows written to PostgreSQL.")
	t.rejected = counter("otelaudit.exporter.rows.rejected", "Rows PostgreSQL refused, isolated and stored in the reject table.")
	t.skipped = counter("otelaudit.exporter.records.skipped", "Records that were not audit events.")
	t.dropped = counter("otelaudit.records.dropped", "Audit records lost, by reason. Each drop is also reported through otel.Handle.")
	t.duration, e = m.Float64Histogram("otelaudit.exporter.export.duration",
		metric.WithDescription("Duration of Export calls."), metric.WithUnit("s"))
	err = errors.Join(err, e)
	if spoolBytes != nil {
		g, e := m.Int64ObservableGauge("otelaudit.exporter.spool.bytes",
			metric.WithDescription("Bytes held in the local spool."), metric.WithUnit("By"))
		err = errors.Join(err, e)
		if e == nil {
			t.reg, e = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
				o.ObserveInt64(g, spoolBytes())
				return nil
			}, g)
			err = errors.Join(err, e)
		}
	}
	return t, err
}

func (t *telemetry) drop(ctx context.Context, n int, reason string) {
	t.dropped.Add(ctx, int64(n), metric.WithAttributes(reasonKey.String(reason)))
}
