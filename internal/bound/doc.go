// Package bound cuts and cleans the string fields of audit records: the one
// implementation of the limits defined in the root otelaudit package, shared
// by the instrumentation (where a record is made) and by the exporters'
// mapping (where a record becomes a row).
//
// A field is stored as valid UTF-8 without NUL bytes (PostgreSQL text refuses
// both) and within its byte limit; a cut never splits a UTF-8 sequence. A
// value that had to be changed is described by [Markers]: the byte length and
// SHA-256 of the original, under the keys of otelaudit.TruncatedSizeKey and
// otelaudit.TruncatedSHA256Key.
//
// The package depends only on the standard library, the root otelaudit
// package and go.opentelemetry.io/otel/attribute, so anything in the module
// can import it without cycles.
package bound
