// Package exporter writes otelaudit audit events to PostgreSQL from the
// OpenTelemetry Logs SDK, in process.
//
// [Exporter] is an [go.opentelemetry.io/otel/sdk/log.Exporter]: it keeps
// the audit events of each batch (records whose EventName is
// otelaudit.EventName), maps every one to one audit_log row with the mapping
// the Collector component shares, and hands the rows to its delivery, which
// writes them in one round trip, retries transient failures, keeps them in
// a local spool while PostgreSQL is away ([WithSpool]) and replays the spool
// when it is back. Writes are idempotent: a batch retried or replayed any
// number of times leaves each row once.
//
// Register the exporter with [NewProcessor], a batch processor that admits
// only audit events and counts every record it cannot queue
// ([WithQueueSize] sets its queue). [Exporter.Health] says whether audit
// events can be stored durably right now; pass the exporter to
// instrumentation.WithFailClosed to refuse tool calls that could not be
// audited.
//
// The exporter reports its own figures as metrics (scope [ScopeName]):
// rows written, duplicate, rejected, spooled and replayed, records skipped
// and dropped (otelaudit.records.dropped, by reason: see the Drop
// constants), failures, export duration and spool size; [Exporter.Stats]
// returns the same figures. Every dropped record is also reported through
// otel.Handle.
//
// Configuration is by functional options ([Option]): [WithDatabaseURL] or
// [WithPool], [WithTable], [WithMigrate], [WithRetry], [WithSpool],
// [WithWriteConcurrency], [WithMeterProvider], ...; without a URL the
// exporter reads [EnvDatabaseURL], then the libpq environment.
package exporter
