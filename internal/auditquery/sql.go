package auditquery

import (
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Order is the direction of the keyset order ("timestamp", id).
type Order int

const (
	// NewestFirst reads ("timestamp", id) descending: what a person looks
	// at first.
	NewestFirst Order = iota
	// OldestFirst reads ascending: what an export or a resumable stream
	// wants.
	OldestFirst
)

// SessionExpr is the expression the session filter uses; the schema has an
// index on exactly this expression.
const SessionExpr = `(attributes->>'mcp.session.id')`

// columns are the audit table's columns the query layer reads, in the order
// [scanRow] expects.
const columns = `id, request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
 request_args, response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes, created_at, `

// extracted are the attributes Row carries apart (the OCSF mapping's
// fields), and noExtracted their placeholders when the caller needs none
// (four jsonb lookups per row saved).
const (
	extracted   = SessionExpr + `, attributes->>'error.type', attributes->>'client.address', attributes->>'client.port'`
	noExtracted = `NULL::text, NULL::text, NULL::text, NULL::text`
)

// builder accumulates a WHERE clause with its bind parameters.
type builder struct {
	where []string
	args  []any
}

// arg adds a bind parameter and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *builder) add(cond string) { b.where = append(b.where, cond) }

func (b *builder) clause() string {
	if len(b.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(b.where, " AND ")
}

// filter adds f's conditions. f must have been validated.
func (b *builder) filter(f *Filter) {
	if !f.Since.IsZero() {
		b.add(`"timestamp" >= ` + b.arg(f.Since))
	}
	if !f.Until.IsZero() {
		b.add(`"timestamp" < ` + b.arg(f.Until))
	}
	if f.Subject != "" {
		b.add(`client_subject = ` + b.arg(f.Subject))
	}
	if f.Role != "" {
		p := b.arg(f.Role)
		b.add(`(client_role = ` + p + ` OR ` + p + ` = ANY(string_to_array(client_role, ',')))`)
	}
	if f.Tool != "" {
		pattern, literal, exact := globToLike(f.Tool)
		if exact {
			b.add(`tool_name = ` + b.arg(literal))
		} else {
			b.add(`tool_name LIKE ` + b.arg(pattern) + ` ESCAPE '\'`)
		}
	}
	if f.Backend != "" {
		b.add(`backend_name = ` + b.arg(f.Backend))
	}
	switch len(f.Statuses) {
	case 0:
	case 1:
		b.add(`response_status = ` + b.arg(f.Statuses[0]))
	default:
		b.add(`response_status = ANY(` + b.arg(f.Statuses) + `::text[])`)
	}
	if f.TraceID != "" {
		b.add(`trace_id = ` + b.arg(strings.ToLower(f.TraceID)))
	}
	if f.Session != "" {
		b.add(SessionExpr + ` = ` + b.arg(f.Session))
	}
	if f.RequestID != "" {
		b.add(`request_id = ` + b.arg(f.RequestID) + `::uuid`)
	}
	if f.Error != "" {
		b.add(`error_message ILIKE ` + b.arg(likeContains(f.Error)) + ` ESCAPE '\'`)
	}
	if len(f.Args) > 0 {
		b.add(`request_args @> ` + b.arg(string(f.Args)) + `::jsonb`)
	}
}

// Query is one keyset page (or stream) of rows.
type Query struct {
	Filter Filter
	Order  Order
	// After continues after this position in Order (exclusive); zero
	// starts at the beginning.
	After Cursor
	// Limit caps the rows; 0 means no cap (a stream).
	Limit int
	// SkipExtracted leaves Row's SessionID, ErrorType, ClientAddress and
	// ClientPort nil (what the OCSF mapping needs; a jsonl or csv export
	// does not).
	SkipExtracted bool

	// winLo and winHi bound one time window of a windowed scan (see
	// window.go); zero means unbounded. unordered leaves out ORDER BY (the
	// window's rows are sorted by the client).
	winLo, winHi time.Time
	unordered    bool
}

// SQL returns the statement and bind parameters of q over table. The table
// name is quoted; every filter value is a parameter.
func (q *Query) SQL(table string) (string, []any) {
	var b builder
	b.filter(&q.Filter)
	dir := "DESC"
	cmp := "<"
	if q.Order == OldestFirst {
		dir, cmp = "ASC", ">"
	}
	if !q.winLo.IsZero() {
		b.add(`"timestamp" >= ` + b.arg(q.winLo))
	}
	if !q.winHi.IsZero() {
		b.add(`"timestamp" < ` + b.arg(q.winHi))
	}
	if !q.After.IsZero() {
		b.add(`("timestamp", id) ` + cmp + ` (` + b.arg(q.After.Time) + `, ` + b.arg(q.After.ID) + `)`)
	}
	ex := extracted
	if q.SkipExtracted {
		ex = noExtracted
	}
	sql := "SELECT " + columns + ex + " FROM " + ident(table) + b.clause()
	if !q.unordered {
		sql += ` ORDER BY "timestamp" ` + dir + `, id ` + dir
	}
	if q.Limit > 0 {
		sql += " LIMIT " + b.arg(q.Limit)
	}
	return sql, b.args
}

func ident(table string) string { return pgx.Identifier{table}.Sanitize() }
