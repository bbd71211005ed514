package exporter

import "github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"

// ScopeName is the instrumentation scope of the exporter's own metrics.
const ScopeName = "github.com/sentinel-gateway/otelaudit/exporter"

// Reasons a record is dropped, the values of the reason attribute of
// otelaudit.records.dropped (the pgaudit Collector component uses the same).
const (
	// DropQueueFull: the processor's in-memory queue was full.
	DropQueueFull = telemetry.ReasonQueueFull
	// DropSpoolFull: PostgreSQL was unreachable and the spool had no room.
	DropSpoolFull = telemetry.ReasonSpoolFull
	// DropSpoolError: PostgreSQL was unreachable and appending to the spool
	// kept failing (ENOSPC, EFBIG, ...) until the Export context ended.
	DropSpoolError = telemetry.ReasonSpoolError
	// DropExportFailed: the write failed and no spool is configured.
	DropExportFailed = telemetry.ReasonExportFailed
	// DropShutdown: the records arrived after Shutdown (emitted to a shut
	// down processor, or exported to a shut down exporter), or were still
	// queued when the shutdown deadline passed.
	DropShutdown = telemetry.ReasonShutdown
	// DropCorrupt: a spooled record was damaged and could not be read back.
	DropCorrupt = telemetry.ReasonSpoolCorrupt
)
