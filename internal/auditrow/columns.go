package auditrow

import (
	"time"

	"github.com/google/uuid"
)

// Kind is how a column's value is held in a [Row] and encoded: it decides
// which accessor of a [Column] is set and how the writer, the reject payload
// and the spool codec encode the value.
type Kind uint8

// The kinds of audit columns.
const (
	// KindUUID is a uuid column read through Column.UUID.
	KindUUID Kind = iota + 1
	// KindTime is a timestamptz column read through Column.Time.
	KindTime
	// KindText is a NOT NULL text column read through Column.Text.
	KindText
	// KindNullText is a nullable text column read through Column.Text; ""
	// is stored as NULL.
	KindNullText
	// KindInt64 is a bigint column read through Column.Int64.
	KindInt64
	// KindJSON is a nullable jsonb column read through Column.Bytes; nil is
	// stored as NULL.
	KindJSON
)

// Column describes one column of the audit table that a [Row] fills. The
// pointer accessors return the field of the row, so that the same table
// reads a row (writer, reject payload, codec) and fills one (codec).
// Exactly the accessor that matches Kind is set.
type Column struct {
	// Name is the column's name in the audit table (unquoted).
	Name string
	// Type is the PostgreSQL type as information_schema.columns.data_type
	// names it ("uuid", "timestamp with time zone", "text", "bigint",
	// "jsonb"); it is also valid in a cast.
	Type string
	// Nullable reports whether the column accepts NULL.
	Nullable bool
	// Kind says which accessor is set and how the value is encoded.
	Kind Kind

	UUID  func(*Row) *uuid.UUID
	Time  func(*Row) *time.Time
	Text  func(*Row) *string
	Int64 func(*Row) *int64
	Bytes func(*Row) *[]byte
}

// Columns is THE table of the audit columns a row fills, in table order.
// It drives the writer's COPY column list and its conflict-ignoring INSERT,
// the reject table's payload and the spool codec, and a test compares it
// with the table the migrations create. Add a column here, to [Row] and to
// a migration, and nowhere else. Do not modify the slice.
var Columns = []Column{
	{Name: "request_id", Type: "uuid", Kind: KindUUID, UUID: func(r *Row) *uuid.UUID { return &r.RequestID }},
	{Name: "timestamp", Type: "timestamp with time zone", Kind: KindTime, Time: func(r *Row) *time.Time { return &r.Timestamp }},
	{Name: "client_subject", Type: "text", Kind: KindText, Text: func(r *Row) *string { return &r.ClientSubject }},
	{Name: "client_role", Type: "text", Kind: KindText, Text: func(r *Row) *string { return &r.ClientRole }},
	{Name: "tool_name", Type: "text", Kind: KindText, Text: func(r *Row) *string { return &r.ToolName }},
	{Name: "backend_name", Type: "text", Kind: KindText, Text: func(r *Row) *string { return &r.BackendName }},
	{Name: "request_args", Type: "jsonb", Nullable: true, Kind: KindJSON, Bytes: func(r *Row) *[]byte { return &r.RequestArgs }},
	{Name: "response_status", Type: "text", Kind: KindText, Text: func(r *Row) *string { return &r.ResponseStatus }},
	{Name: "error_message", Type: "text", Nullable: true, Kind: KindNullText, Text: func(r *Row) *string { return &r.ErrorMessage }},
	{Name: "latency_ms", Type: "bigint", Kind: KindInt64, Int64: func(r *Row) *int64 { return &r.LatencyMS }},
	{Name: "trace_id", Type: "text", Nullable: true, Kind: KindNullText, Text: func(r *Row) *string { return &r.TraceID }},
	{Name: "span_id", Type: "text", Nullable: true, Kind: KindNullText, Text: func(r *Row) *string { return &r.SpanID }},
	{Name: "service_name", Type: "text", Nullable: true, Kind: KindNullText, Text: func(r *Row) *string { return &r.ServiceName }},
	{Name: "attributes", Type: "jsonb", Nullable: true, Kind: KindJSON, Bytes: func(r *Row) *[]byte { return &r.Attributes }},
}

// ServerColumn is a column of the audit table that the database fills
// (identity, defaults); rows never carry it.
type ServerColumn struct {
	// Name is the column's name in the audit table.
	Name string
	// Type is the PostgreSQL type as information_schema.columns.data_type
	// names it.
	Type string
	// Nullable reports whether the column accepts NULL.
	Nullable bool
}

// ServerColumns are the audit table's columns the database fills. Together
// with [Columns] they are every column of the table.
var ServerColumns = []ServerColumn{
	{Name: "id", Type: "bigint"},
	{Name: "created_at", Type: "timestamp with time zone"},
}

// ColumnNames returns the names of [Columns], in order, in a new slice.
func ColumnNames() []string {
	names := make([]string, len(Columns))
	for i, c := range Columns {
		names[i] = c.Name
	}
	return names
}

// ColumnIndex returns the index in [Columns] of the column called name, or
// -1.
func ColumnIndex(name string) int {
	for i := range Columns {
		if Columns[i].Name == name {
			return i
		}
	}
	return -1
}

// SealColumns are the audit table's integrity columns (migration 000003):
// the writer's sealing step fills them in the transaction that inserts the
// row, from the row's hash and the seal that covers it (see
// internal/integrity); rows never carry them, and a replayed row gets them
// anew. Together with [Columns] and [ServerColumns] they are every column of
// the table.
var SealColumns = []ServerColumn{
	{Name: "row_hash", Type: "bytea", Nullable: true},
	{Name: "seal_stream", Type: "uuid", Nullable: true},
	{Name: "seal_seq", Type: "bigint", Nullable: true},
	{Name: "seal_pos", Type: "integer", Nullable: true},
}
