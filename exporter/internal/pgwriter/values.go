package pgwriter

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/auditrow"
)

// columnNames are the audit table's columns a row fills, in the order of
// appendValues.
var columnNames = []string{
	"request_id", "timestamp", "client_subject", "client_role", "tool_name",
	"backend_name", "request_args", "response_status", "error_message",
	"latency_ms", "trace_id", "span_id", "service_name", "attributes",
}

// appendValues appends the column values of r for the COPY. Each value is a
// one-pointer struct that implements the pgtype valuer of its column type:
// it fits in an interface without an allocation and pgx encodes it without
// reflection. (Plain strings would be boxed, pointers dereferenced by
// reflection: either costs an allocation per column.) r must stay unchanged
// until the values are encoded.
func appendValues(dst []any, r *auditrow.Row) []any {
	return append(dst,
		uuidRef{(*[16]byte)(&r.RequestID)}, timeRef{&r.Timestamp},
		textRef{&r.ClientSubject}, textRef{&r.ClientRole}, textRef{&r.ToolName}, textRef{&r.BackendName},
		jsonValue(r.RequestArgs), textRef{&r.ResponseStatus}, nullTextRef{&r.ErrorMessage},
		int64Ref{&r.LatencyMS}, nullTextRef{&r.TraceID}, nullTextRef{&r.SpanID}, nullTextRef{&r.ServiceName},
		jsonValue(r.Attributes),
	)
}

func jsonValue(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

type uuidRef struct{ p *[16]byte }

func (r uuidRef) UUIDValue() (pgtype.UUID, error) { return pgtype.UUID{Bytes: *r.p, Valid: true}, nil }

type timeRef struct{ p *time.Time }

func (r timeRef) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: *r.p, Valid: true}, nil
}

// textRef is a NOT NULL text column.
type textRef struct{ p *string }

func (r textRef) TextValue() (pgtype.Text, error) { return pgtype.Text{String: *r.p, Valid: true}, nil }

// nullTextRef is a nullable text column: "" is NULL.
type nullTextRef struct{ p *string }

func (r nullTextRef) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: *r.p, Valid: *r.p != ""}, nil
}

type int64Ref struct{ p *int64 }

func (r int64Ref) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: *r.p, Valid: true}, nil
}
