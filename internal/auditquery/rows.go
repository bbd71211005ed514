package auditquery

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Row is one audited tool call as the audit table stores it. Its JSON form
// (the jsonl and json output formats) uses the column names.
type Row struct {
	ID           int64           `json:"id"`
	RequestID    string          `json:"request_id"`
	Timestamp    time.Time       `json:"timestamp"`
	Subject      string          `json:"client_subject"`
	Role         string          `json:"client_role"`
	Tool         string          `json:"tool_name"`
	Backend      string          `json:"backend_name"`
	Args         json.RawMessage `json:"request_args"`
	Status       string          `json:"response_status"`
	ErrorMessage *string         `json:"error_message"`
	LatencyMS    int64           `json:"latency_ms"`
	TraceID      *string         `json:"trace_id"`
	SpanID       *string         `json:"span_id"`
	ServiceName  *string         `json:"service_name"`
	Attributes   json.RawMessage `json:"attributes"`
	CreatedAt    time.Time       `json:"created_at"`

	// Attributes the OCSF mapping needs, extracted by PostgreSQL (parsing
	// every row's attributes in Go would cost more than the query).
	SessionID     *string `json:"-"`
	ErrorType     *string `json:"-"`
	ClientAddress *string `json:"-"`
	ClientPort    *string `json:"-"`
}

// Cursor returns the row's position in the keyset order.
func (r *Row) Cursor() Cursor { return Cursor{Time: r.Timestamp, ID: r.ID} }

// CSVHeader is the header line of the csv format, the column names.
var CSVHeader = []string{"id", "request_id", "timestamp", "client_subject", "client_role", "tool_name",
	"backend_name", "request_args", "response_status", "error_message", "latency_ms", "trace_id",
	"span_id", "service_name", "attributes", "created_at"}

// CSVRecord returns the row's fields in [CSVHeader] order, appended to dst.
// NULL is the empty string; JSON columns are their JSON text; times are
// RFC 3339 with microseconds in UTC.
func (r *Row) CSVRecord(dst []string) []string {
	return append(dst[:0],
		strconv.FormatInt(r.ID, 10), r.RequestID, formatTime(r.Timestamp), r.Subject, r.Role, r.Tool,
		r.Backend, string(r.Args), r.Status, deref(r.ErrorMessage), strconv.FormatInt(r.LatencyMS, 10),
		deref(r.TraceID), deref(r.SpanID), deref(r.ServiceName), string(r.Attributes), formatTime(r.CreatedAt))
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// DB is what the query layer needs of a connection or pool.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func scanRow(rows pgx.Rows, r *Row) error {
	*r = Row{}
	// JSON columns are scanned as []byte: PostgreSQL's jsonb text is valid
	// JSON already, and json.RawMessage would make pgx run it through
	// encoding/json again.
	var args, attrs []byte
	err := rows.Scan(&r.ID, &r.RequestID, &r.Timestamp, &r.Subject, &r.Role, &r.Tool, &r.Backend,
		&args, &r.Status, &r.ErrorMessage, &r.LatencyMS, &r.TraceID, &r.SpanID, &r.ServiceName,
		&attrs, &r.CreatedAt, &r.SessionID, &r.ErrorType, &r.ClientAddress, &r.ClientPort)
	r.Args, r.Attributes = args, attrs
	r.Timestamp, r.CreatedAt = r.Timestamp.UTC(), r.CreatedAt.UTC()
	return err
}

// Each runs q over table and calls fn for each row, in order, streaming:
// memory does not grow with the number of rows. The *Row is reused; fn must
// copy what it keeps. It returns how many rows fn accepted and the cursor of
// the last one (zero when there was none).
//
// Unless a filter names a single call or a few (trace, request or session
// id, which have indexes of their own), the scan runs in time windows (see
// window.go), so that its cost follows the rows it returns, not the table.
func Each(ctx context.Context, db DB, table string, q Query, fn func(*Row) error) (n int, last Cursor, err error) {
	if err := q.Filter.Validate(); err != nil {
		return 0, Cursor{}, err
	}
	if q.windowed() {
		return eachWindowed(ctx, db, table, q, fn)
	}
	return eachOne(ctx, db, table, q, fn)
}

// eachOne runs q as one statement.
func eachOne(ctx context.Context, db DB, table string, q Query, fn func(*Row) error) (n int, last Cursor, err error) {
	sql, args := q.SQL(table)
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return 0, Cursor{}, fmt.Errorf("auditquery: query: %w", err)
	}
	defer rows.Close()
	var r Row
	for rows.Next() {
		if err := scanRow(rows, &r); err != nil {
			return n, last, fmt.Errorf("auditquery: scan: %w", err)
		}
		if err := fn(&r); err != nil {
			return n, last, err
		}
		n++
		last = r.Cursor()
	}
	if err := rows.Err(); err != nil {
		return n, last, fmt.Errorf("auditquery: query: %w", err)
	}
	return n, last, nil
}

// Page reads one keyset page of q (q.Limit rows, at most) and returns the
// rows and the cursor to pass as After for the next page, zero when this
// was the last one.
func Page(ctx context.Context, db DB, table string, q Query) ([]Row, Cursor, error) {
	if q.Limit <= 0 {
		return nil, Cursor{}, fmt.Errorf("auditquery: page needs a limit")
	}
	want := q.Limit
	q.Limit++ // one more tells whether another page follows
	out := make([]Row, 0, min(want, 1000))
	_, _, err := Each(ctx, db, table, q, func(r *Row) error {
		out = append(out, *r)
		return nil
	})
	if err != nil {
		return nil, Cursor{}, err
	}
	var next Cursor
	if len(out) > want {
		out = out[:want]
		next = out[want-1].Cursor()
	}
	return out, next, nil
}
