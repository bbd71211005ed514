package pgwriter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// insertStatement is the conflict-ignoring INSERT of every column of
// [auditrow.Columns], one array parameter per column, unnested into rows.
// ON CONFLICT names no target, so that it ignores a duplicate of whichever
// unique key makes rows idempotent (request_id, or request_id with the
// partition key).
func insertStatement(table string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	for i, c := range auditrow.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(c.Name))
	}
	b.WriteString(")\nSELECT * FROM unnest(")
	for i, c := range auditrow.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1) + "::" + c.Type + "[]")
	}
	b.WriteString(")\nON CONFLICT DO NOTHING")
	return b.String()
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// appendValues appends the column values of r for the COPY, in the order
// of [auditrow.Columns]. Each value is a one-pointer struct that implements
// the pgtype valuer of its column type: it fits in an interface without an
// allocation and pgx encodes it without reflection. (Plain strings would be
// boxed, pointers dereferenced by reflection: either costs an allocation
// per column.) r must stay unchanged until the values are encoded.
func appendValues(dst []any, r *auditrow.Row) []any {
	for i := range auditrow.Columns {
		c := &auditrow.Columns[i]
		switch c.Kind {
		case auditrow.KindUUID:
			dst = append(dst, uuidRef{c.UUID(r)})
		case auditrow.KindTime:
			dst = append(dst, timeRef{c.Time(r)})
		case auditrow.KindText:
			dst = append(dst, textRef{c.Text(r)})
		case auditrow.KindNullText:
			dst = append(dst, nullTextRef{c.Text(r)})
		case auditrow.KindInt64:
			dst = append(dst, int64Ref{c.Int64(r)})
		case auditrow.KindJSON:
			dst = append(dst, jsonValue(*c.Bytes(r)))
		}
	}
	return dst
}

func jsonValue(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

type uuidRef struct{ p *uuid.UUID }

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

// columnArrays holds rows column by column, one array per column of
// [auditrow.Columns], for the unnest INSERT.
type columnArrays struct {
	args []any
}

// fill sets the arrays to rows.
func (a *columnArrays) fill(rows []auditrow.Row) {
	n := len(rows)
	a.args = a.args[:0]
	for ci := range auditrow.Columns {
		c := &auditrow.Columns[ci]
		switch c.Kind {
		case auditrow.KindUUID:
			v := make([][16]byte, n)
			for i := range v {
				v[i] = *c.UUID(&rows[i])
			}
			a.args = append(a.args, v)
		case auditrow.KindTime:
			v := make([]time.Time, n)
			for i := range v {
				v[i] = *c.Time(&rows[i])
			}
			a.args = append(a.args, v)
		case auditrow.KindText:
			v := make([]string, n)
			for i := range v {
				v[i] = *c.Text(&rows[i])
			}
			a.args = append(a.args, v)
		case auditrow.KindNullText:
			v := make([]pgtype.Text, n)
			for i := range v {
				s := *c.Text(&rows[i])
				v[i] = pgtype.Text{String: s, Valid: s != ""}
			}
			a.args = append(a.args, v)
		case auditrow.KindInt64:
			v := make([]int64, n)
			for i := range v {
				v[i] = *c.Int64(&rows[i])
			}
			a.args = append(a.args, v)
		case auditrow.KindJSON:
			v := make([][]byte, n)
			for i := range v {
				v[i] = *c.Bytes(&rows[i])
			}
			a.args = append(a.args, v)
		}
	}
}

// rejectPayload encodes a row PostgreSQL refused as one JSON object keyed
// by column name, in the order of [auditrow.Columns]: uuid and timestamp as
// strings, JSON columns as the string of their text, NULL columns left out.
func rejectPayload(r *auditrow.Row) ([]byte, error) {
	b := []byte{'{'}
	first := true
	for i := range auditrow.Columns {
		c := &auditrow.Columns[i]
		var v any
		switch c.Kind {
		case auditrow.KindUUID:
			v = c.UUID(r).String()
		case auditrow.KindTime:
			v = c.Time(r).UTC().Format("2006-01-02T15:04:05.999999999Z")
		case auditrow.KindText:
			v = *c.Text(r)
		case auditrow.KindNullText:
			if *c.Text(r) == "" {
				continue
			}
			v = *c.Text(r)
		case auditrow.KindInt64:
			v = *c.Int64(r)
		case auditrow.KindJSON:
			if len(*c.Bytes(r)) == 0 {
				continue
			}
			v = string(*c.Bytes(r))
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, c.Name)
		b = append(b, ':')
		b = append(b, enc...)
	}
	return append(b, '}'), nil
}
