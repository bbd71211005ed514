package pgwriter

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

//go:embed reject.sql
var rejectSQL string

// Result counts what one Write did with its rows.
type Result struct {
	// Inserted rows are new in the audit table.
	Inserted int
	// Duplicates were already there (a replay): nothing was written for them.
	Duplicates int
	// Rejected rows were refused by PostgreSQL even after sanitising; each
	// was stored in the reject table with the error.
	Rejected int
}

// Add adds the counts of o to r.
func (r *Result) Add(o Result) {
	r.Inserted += o.Inserted
	r.Duplicates += o.Duplicates
	r.Rejected += o.Rejected
}

// Writer writes rows to one audit table. It is safe for concurrent use.
type Writer struct {
	pool    *pgxpool.Pool
	table   pgx.Identifier
	insert  string
	reject  string
	columns []string
	seal    *sealer // nil: no sealing (seal.go)

	stage         *stagePlan // isolating refused rows (isolate.go)
	rejectManySQL string     // INSERT of many rejected rows
}

// New returns a Writer for table (and table_rejects) over pool. The table
// name must already be valid (see migrations.ValidateTable).
func New(pool *pgxpool.Pool, table string, opts ...Option) *Writer {
	quoted := pgx.Identifier{table}.Sanitize()
	rejects := pgx.Identifier{table + "_rejects"}.Sanitize()
	w := &Writer{
		pool:    pool,
		table:   pgx.Identifier{table},
		insert:  insertStatement(quoted),
		reject:  strings.ReplaceAll(rejectSQL, "audit_log_rejects", rejects),
		columns: auditrow.ColumnNames(),
		stage:   newStagePlan(quoted, stageTable, auditStageColumns(), ""),
		rejectManySQL: "INSERT INTO " + rejects + " (request_id, error, payload)\n" +
			"SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
	}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Write stores rows. It tries one COPY (pgx.CopyFromSlice), the fastest
// path into an indexed table. When the COPY hits a row that is already
// stored (a retried or replayed batch), it writes the batch again with
// INSERT ... ON CONFLICT DO NOTHING. When PostgreSQL refuses some row's data,
// it isolates the refused rows in a fixed number of statements (see
// isolate.go), writes the others, and moves each refused row to the reject
// table, all in one transaction.
//
// rows must stay unchanged until Write returns. A returned error means
// nothing more can be known about the batch: the connection failed (see
// [Retryable]) or the table is unusable. Writing the same rows again is
// always safe.
func (w *Writer) Write(ctx context.Context, rows []auditrow.Row) (Result, error) {
	n := len(rows)
	if n == 0 {
		return Result{}, nil
	}
	if w.seal != nil {
		return w.writeSealed(ctx, rows)
	}
	var vals []any
	copied, err := w.pool.CopyFrom(ctx, w.table, w.columns, pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		vals = appendValues(vals[:0], &rows[i])
		return vals, nil
	}))
	if err == nil {
		return Result{Inserted: int(copied)}, nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !(pgErr.Code == "23505" || isDataError(pgErr.Code)) {
		return Result{}, fmt.Errorf("pgwriter: copy %d rows: %w", n, err)
	}
	if pgErr.Code == "23505" {
		// A replay: the conflict-ignoring INSERT skips the stored rows.
		inserted, err := w.insertIgnore(ctx, rows)
		if err == nil {
			return Result{Inserted: inserted, Duplicates: n - inserted}, nil
		}
		if !errors.As(err, &pgErr) || !isDataError(pgErr.Code) {
			return Result{}, err
		}
	}
	return w.isolate(ctx, rows)
}

// insertIsolating writes rows idempotently; a data error splits them. It is
// the fallback of isolate when the rows cannot be staged.
func (w *Writer) insertIsolating(ctx context.Context, rows []auditrow.Row, res *Result) error {
	inserted, err := w.insertIgnore(ctx, rows)
	if err == nil {
		res.Inserted += inserted
		res.Duplicates += len(rows) - inserted
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !isDataError(pgErr.Code) {
		return err
	}
	if len(rows) == 1 {
		if err := w.rejectRow(ctx, &rows[0], pgErr); err != nil {
			return err
		}
		res.Rejected++
		return nil
	}
	mid := len(rows) / 2
	if err := w.insertIsolating(ctx, rows[:mid], res); err != nil {
		return err
	}
	return w.insertIsolating(ctx, rows[mid:], res)
}

func (w *Writer) insertIgnore(ctx context.Context, rows []auditrow.Row) (int, error) {
	var a columnArrays
	a.fill(rows)
	tag, err := w.pool.Exec(ctx, w.insert, a.args...)
	if err != nil {
		return 0, fmt.Errorf("pgwriter: insert %d rows: %w", len(rows), err)
	}
	return int(tag.RowsAffected()), nil
}

// rejectRow stores a row PostgreSQL refused, with the error, as JSON bytes.
func (w *Writer) rejectRow(ctx context.Context, r *auditrow.Row, cause *pgconn.PgError) error {
	payload, err := rejectPayload(r)
	if err != nil {
		return fmt.Errorf("pgwriter: encode rejected row %s: %w", r.RequestID, err)
	}
	msg := cause.Code + ": " + cause.Message
	if _, err := w.pool.Exec(ctx, w.reject, r.RequestID.String(), msg, payload); err != nil {
		return fmt.Errorf("pgwriter: store rejected row %s (%s): %w", r.RequestID, msg, err)
	}
	return nil
}
