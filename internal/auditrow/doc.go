// Package auditrow maps an audit log record to a row of the audit_log table.
//
// It is the one place that knows how attributes become columns. Both the
// OpenTelemetry SDK exporter (package exporter) and the pgaudit Collector
// exporter convert their records to a [Record] and call [Mapper.Map]; neither
// holds a copy of the schema logic.
//
// Mapping never fails: a value that cannot be stored as it is gets sanitised
// (NUL bytes and invalid UTF-8 replaced, bad JSON kept as a JSON string,
// missing values replaced by [Unknown]) and the row's attributes say what was
// changed, keeping the raw value, so nothing the record carried is lost.
//
// [Columns] is the one table of the audit columns: name, PostgreSQL type and
// how each is read from a [Row] and encoded. The writer, the reject payload
// and the spool codec ([AppendRows], [DecodeRows]) all follow it, and a test
// compares it with the table the migrations create.
package auditrow
