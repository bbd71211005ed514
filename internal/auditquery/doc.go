// Package auditquery turns an operator's filter into SQL over the audit
// table and reads the rows back: the one query layer that otelaudit query,
// tail, export, stats and serve share.
//
// Every filter value travels as a bind parameter, never as SQL text; the
// table name is quoted as an identifier. Paging is by keyset on
// ("timestamp", id) — the partition key first, then the identity — never by
// OFFSET, so page N costs what page 1 costs. A [Cursor] names a position in
// that order; it is printable, so a command can tell the operator where to
// resume.
//
// The session filter uses exactly the expression (attributes->>'mcp.session.id'),
// which the schema indexes.
package auditquery
