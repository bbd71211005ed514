// Package telemetry defines the self-observability instruments that both
// front ends of otelaudit share: the SDK exporter (package exporter) and the
// pgaudit Collector component. A figure both of them report, such as
// otelaudit.records.dropped, is named, described and made here once, so that
// the two never disagree about what it means.
package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrument names the metric of one figure.
type Instrument struct {
	// Name is the metric name.
	Name string
	// Description says what is counted.
	Description string
	// Unit is the UCUM unit.
	Unit string
}

// RecordsDropped counts audit records that were lost anyway, by reason (the
// [ReasonKey] attribute). Every drop is also reported through otel.Handle.
var RecordsDropped = Instrument{
	Name:        "otelaudit.records.dropped",
	Description: "Audit records lost, by reason. Each drop is also reported through otel.Handle.",
	Unit:        "{record}",
}

// ReasonKey is the attribute of [RecordsDropped] that says why records were
// lost; its values are the Reason constants.
const ReasonKey = attribute.Key("reason")

// Reasons a record is dropped: the values of [ReasonKey].
const (
	// ReasonQueueFull: the in-memory queue was full.
	ReasonQueueFull = "queue_full"
	// ReasonSpoolFull: PostgreSQL was unreachable and the spool had no room.
	ReasonSpoolFull = "spool_full"
	// ReasonSpoolError: PostgreSQL was unreachable and appending to the
	// spool failed (for example ENOSPC or EFBIG).
	ReasonSpoolError = "spool_error"
	// ReasonExportFailed: the write failed and no spool was there to keep
	// the records.
	ReasonExportFailed = "export_failed"
	// ReasonShutdown: the records arrived after shutdown, or were still
	// queued when the shutdown deadline passed.
	ReasonShutdown = "shutdown"
	// ReasonSpoolCorrupt: a spooled record was damaged and could not be
	// read back.
	ReasonSpoolCorrupt = "spool_corrupt"
)

// Int64Counter makes the counter of in from m.
func (in Instrument) Int64Counter(m metric.Meter) (metric.Int64Counter, error) {
	return m.Int64Counter(in.Name, metric.WithDescription(in.Description), metric.WithUnit(in.Unit))
}

// Dropped returns the measurement option of a drop for reason.
func Dropped(reason string) metric.AddOption {
	return metric.WithAttributeSet(attribute.NewSet(ReasonKey.String(reason)))
}
