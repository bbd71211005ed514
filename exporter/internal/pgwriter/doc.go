// Package pgwriter writes audit rows to PostgreSQL: one COPY per batch in the
// common case, idempotent on replays, and isolating rows PostgreSQL refuses
// so that the rest of their batch still lands.
//
// Both the SDK exporter and the pgaudit Collector exporter write through it.
//
// The columns it writes, in COPY, in the conflict-ignoring INSERT and in
// the reject payload, are those of auditrow.Columns, the one column table.
package pgwriter
