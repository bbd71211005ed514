package integrity

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// ScanRow reads the columns of [auditrow.Columns], in their order, from the
// current row of rows into r, as the mapping would have filled it (NULL text
// is "", NULL JSON is nil, JSON as PostgreSQL returns it).
func ScanRow(rows pgx.Rows, r *auditrow.Row) error {
	s := NewRowScanner()
	if err := s.Scan(rows); err != nil {
		return err
	}
	*r = s.Row
	return nil
}

// RowScanner scans audit rows (and extra columns) without allocating its
// targets per row. It is not safe for concurrent use.
type RowScanner struct {
	Row   auditrow.Row
	dst   []any
	nulls []*pgtype.Text
	texts []pgtype.Text
}

// NewRowScanner returns a scanner whose targets are the audit columns in
// [auditrow.Columns] order followed by extra.
func NewRowScanner(extra ...any) *RowScanner {
	s := &RowScanner{}
	s.texts = make([]pgtype.Text, len(auditrow.Columns))
	for i := range auditrow.Columns {
		c := &auditrow.Columns[i]
		if c.Kind == auditrow.KindNullText {
			s.dst = append(s.dst, &s.texts[i])
			s.nulls = append(s.nulls, &s.texts[i])
			continue
		}
		s.dst = appendScanTarget(s.dst, c, &s.Row)
	}
	s.dst = append(s.dst, extra...)
	return s
}

// Scan reads the current row of rows into s.Row and the extra targets.
func (s *RowScanner) Scan(rows pgx.Rows) error {
	s.Row.RequestArgs, s.Row.Attributes = nil, nil
	if err := rows.Scan(s.dst...); err != nil {
		return fmt.Errorf("integrity: scan row: %w", err)
	}
	for i := range auditrow.Columns {
		c := &auditrow.Columns[i]
		if c.Kind == auditrow.KindNullText {
			*c.Text(&s.Row) = s.texts[i].String // "" when NULL
		}
	}
	return nil
}

// appendScanTarget appends the scan target of column c of r (not of a
// KindNullText column: RowScanner scans those through pgtype.Text).
func appendScanTarget(dst []any, c *auditrow.Column, r *auditrow.Row) []any {
	switch c.Kind {
	case auditrow.KindUUID:
		return append(dst, c.UUID(r))
	case auditrow.KindTime:
		return append(dst, c.Time(r))
	case auditrow.KindText:
		return append(dst, c.Text(r))
	case auditrow.KindInt64:
		return append(dst, c.Int64(r))
	case auditrow.KindJSON:
		return append(dst, (*jsonBytes)(c.Bytes(r)))
	}
	return append(dst, new(any))
}

// jsonBytes scans a jsonb column as its text, nil for NULL.
type jsonBytes []byte

// ScanText implements pgtype.TextScanner.
func (j *jsonBytes) ScanText(v pgtype.Text) error {
	if !v.Valid {
		*j = nil
		return nil
	}
	*j = append((*j)[:0], v.String...)
	return nil
}
