package pgwriter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// Isolating the rows PostgreSQL refuses.
//
// When a batch's COPY fails on some row's data, the writer stages the batch
// in a temporary table whose JSON columns are plain text (every sanitised
// row fits there), and one server-side block (DO) inserts the staged rows
// one by one, each in its own subtransaction, catching the data errors of
// classes 22, 23 and 54. The whole isolation is a fixed handful of
// statements whatever the number of refused rows: create the stage, COPY,
// DO, read the outcome, store all refused rows with one INSERT, commit.
// Only when staging itself fails (no TEMP privilege, a row the stage
// refuses) does the writer fall back to splitting the batch in halves,
// which costs O(refused × log batch) statements.

// stageTable is the temporary table of a batch being isolated (the sealing
// writer's has more columns and a name of its own): made once per
// connection, emptied at the end of each transaction that used it.
const stageTable = "otelaudit_stage"

// stageResultSetting carries the outcome of the DO block to the client.
const stageResultSetting = "otelaudit.isolate"

// stageColumn is one column of the stage: the target column it fills, the
// stage's type for it and the cast that turns it into the target's type.
type stageColumn struct {
	name     string // target column
	typ      string // type in the stage
	castType string // "" if the stage type is the target type
}

// stagePlan is the SQL of one kind of staged insert (audit columns only, or
// with the seal's columns).
type stagePlan struct {
	table     string   // the stage's name
	returning bool     // the outcome lists the inserted rows (ins)
	create    string   // CREATE TEMP TABLE
	cols      []string // COPY columns of the stage: p, c0, c1, ...
	do        string   // the DO block
}

// newStagePlan builds the staging SQL for inserting cols into table
// (quoted). The stage's first column p is the row's index in the batch.
//
// The DO block works in up to three passes, all inside the server: (1) it
// inserts the rows the client marked suspect (q, see suspectRow: JSON with
// a number PostgreSQL's numeric may not hold, a text value that may exceed
// an index row) one by one, each in a subtransaction that catches the data
// errors; (2) it inserts all other rows with one set-based INSERT; (3) only
// if that still fails (a refusal the client did not foresee) does it
// insert those rows one by one too.
//
// returning, when not "", is a target column that holds the row's index in
// the batch (the seal position): the outcome then lists the rows inserted.
func newStagePlan(table, stage string, cols []stageColumn, returning string) *stagePlan {
	p := &stagePlan{table: stage, returning: returning != "", cols: []string{"p", "q"}}
	stageTable := stage
	var create, names, values, selects strings.Builder
	create.WriteString("CREATE TEMP TABLE IF NOT EXISTS " + stageTable + " (p integer, q boolean")
	for i, c := range cols {
		ci := "c" + strconv.Itoa(i)
		p.cols = append(p.cols, ci)
		create.WriteString(", " + ci + " " + c.typ)
		if i > 0 {
			names.WriteString(", ")
			values.WriteString(", ")
			selects.WriteString(", ")
		}
		names.WriteString(quote(c.name))
		values.WriteString("r." + ci)
		selects.WriteString("s." + ci)
		if c.castType != "" {
			values.WriteString("::" + c.castType)
			selects.WriteString("::" + c.castType)
		}
	}
	create.WriteString(") ON COMMIT DELETE ROWS")
	p.create = create.String()
	ret, retInto := "", ""
	if returning != "" {
		ret = "\n\t\t\tRETURNING " + quote(returning)
		retInto = ret + " INTO x"
	}
	insertRow := `
			BEGIN
				x := NULL;
				INSERT INTO ` + table + ` (` + names.String() + `)
				VALUES (` + values.String() + `)
				ON CONFLICT DO NOTHING` + retInto + `;
				GET DIAGNOSTICS n = ROW_COUNT;
				IF n = 0 THEN
					ndup := ndup + 1;
				ELSIF x IS NOT NULL THEN
					ins := ins || x;
				END IF;
			EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded THEN
				rej := rej || r.p;
				codes := codes || SQLSTATE::text;
				msgs := msgs || SQLERRM;
			END;`
	insertSet := func(conflict string) string {
		q := `INSERT INTO ` + table + ` (` + names.String() + `)
			SELECT ` + selects.String() + `
			FROM pg_temp.` + stageTable + ` s WHERE NOT s.q` + conflict
		if returning == "" {
			return q + ";\n\t\t\tGET DIAGNOSTICS n = ROW_COUNT;"
		}
		return `WITH i AS (` + q + ret + `)
			SELECT count(*), coalesce(array_agg(i.` + quote(returning) + `), '{}') INTO n, arr FROM i;`
	}
	p.do = `DO $otelaudit$
DECLARE
	r record;
	n bigint;
	x integer;
	arr integer[];
	ins integer[] := '{}';
	ndup bigint := 0;
	rej integer[] := '{}';
	codes text[] := '{}';
	msgs text[] := '{}';
BEGIN
	-- 1: the suspect rows, one by one.
	FOR r IN SELECT * FROM pg_temp.` + stageTable + ` WHERE q ORDER BY p LOOP` + insertRow + `
	END LOOP;
	-- 2: the others at once: a plain INSERT first, cheaper than ON
	-- CONFLICT's speculative insertion; a replayed row makes it take that.
	BEGIN
		BEGIN
			` + insertSet("") + `
		EXCEPTION WHEN unique_violation THEN
			` + insertSet("\n\t\t\tON CONFLICT DO NOTHING") + `
		END;
		ins := ins || arr;
		ndup := ndup + (SELECT count(*) FROM pg_temp.` + stageTable + ` WHERE NOT q) - n;
	EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded THEN
		-- 3: a refusal the client did not foresee: those rows one by one.
		FOR r IN SELECT * FROM pg_temp.` + stageTable + ` WHERE NOT q ORDER BY p LOOP` + insertRow + `
		END LOOP;
	END;
	PERFORM set_config('` + stageResultSetting + `',
		json_build_object('dup', ndup, 'ins', ins, 'rej', rej, 'codes', codes, 'msgs', msgs)::text, true);
END
$otelaudit$`
	return p
}

// auditStageColumns are the audit columns, JSON staged as text.
func auditStageColumns() []stageColumn {
	cols := make([]stageColumn, len(auditrow.Columns))
	for i, c := range auditrow.Columns {
		cols[i] = stageColumn{name: c.Name, typ: c.Type}
		if c.Kind == auditrow.KindJSON {
			cols[i].typ, cols[i].castType = "text", c.Type
		}
	}
	return cols
}

// stageOutcome is what the DO block did with the staged rows: the number
// of rows already stored, and the indexes in the batch of the rows refused,
// with the error of each.
type stageOutcome struct {
	Dup   int      `json:"dup"`
	Ins   []int    `json:"ins"` // with a returning plan: the rows inserted
	Rej   []int    `json:"rej"`
	Codes []string `json:"codes"`
	Msgs  []string `json:"msgs"`
}

// errStaging wraps a failure of the staging itself (not of a row's data):
// the caller falls back to splitting the batch.
type errStaging struct{ err error }

func (e errStaging) Error() string { return "pgwriter: stage rows: " + e.err.Error() }
func (e errStaging) Unwrap() error { return e.err }

// stagedInsert inserts rows into the audit table on conn, each row on its
// own, and returns which were duplicates and which PostgreSQL refused; the
// caller stores the refused rows and commits. It costs three round trips
// and a COPY: BEGIN (or, inTx, a savepoint of the caller's transaction)
// with the stage, the COPY, the DO block with its outcome. On an errStaging
// the transaction (or the savepoint) is rolled back. extra, when not nil,
// appends the values of row i's columns beyond the audit columns.
func stagedInsert(ctx context.Context, conn *pgx.Conn, plan *stagePlan, rows []auditrow.Row, inTx bool, extra func(i int, vals []any) []any) (stageOutcome, error) {
	var out stageOutcome
	begin, rollback, release := "BEGIN", "ROLLBACK", ""
	if inTx {
		begin, rollback, release = "SAVEPOINT otelaudit_stage", "ROLLBACK TO SAVEPOINT otelaudit_stage", ";\nRELEASE SAVEPOINT otelaudit_stage"
	}
	fail := func(err error) (stageOutcome, error) {
		_, _ = conn.Exec(context.WithoutCancel(ctx), rollback)
		return out, errStaging{err}
	}
	// Without arguments, statements go in one simple-protocol message.
	if err := conn.PgConn().Exec(ctx, begin+"; "+plan.create).Close(); err != nil {
		return fail(err)
	}
	var vals []any
	pos := int32(0)
	suspect := false
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"pg_temp", plan.table}, plan.cols, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		pos = int32(i)
		suspect = suspectRow(&rows[i])
		vals = append(vals[:0], int32Ref{&pos}, boolRef{&suspect})
		vals = appendValues(vals, &rows[i])
		if extra != nil {
			vals = extra(i, vals)
		}
		return vals, nil
	}))
	if err != nil {
		return fail(err)
	}
	results, err := conn.PgConn().Exec(ctx, plan.do+";\nSELECT current_setting('"+stageResultSetting+"')"+release).ReadAll()
	if err != nil {
		return fail(err)
	}
	if len(results) < 2 || len(results[1].Rows) != 1 || len(results[1].Rows[0]) != 1 {
		return fail(fmt.Errorf("no outcome (%d results)", len(results)))
	}
	text := results[1].Rows[0][0]
	if err := json.Unmarshal(text, &out); err != nil || len(out.Codes) != len(out.Rej) || len(out.Msgs) != len(out.Rej) {
		return fail(fmt.Errorf("outcome %.200q: %v", text, err))
	}
	if out.Dup < 0 || out.Dup+len(out.Rej) > len(rows) {
		return fail(fmt.Errorf("outcome counts %d duplicates and %d refused rows of %d", out.Dup, len(out.Rej), len(rows)))
	}
	for _, i := range append(out.Rej, out.Ins...) {
		if i < 0 || i >= len(rows) {
			return fail(fmt.Errorf("outcome names row %d of %d", i, len(rows)))
		}
	}
	if plan.returning && len(out.Ins)+out.Dup+len(out.Rej) != len(rows) {
		return fail(fmt.Errorf("outcome: %d inserted, %d duplicates, %d refused of %d rows", len(out.Ins), out.Dup, len(out.Rej), len(rows)))
	}
	return out, nil
}

// suspectRow reports whether PostgreSQL may refuse r for its data: JSON
// with a number its numeric may not hold (see suspectJSON), or a text value
// long enough to exceed a btree index row (about 2.7 KB; the caps keep
// every indexed field far below unless raised).
func suspectRow(r *auditrow.Row) bool {
	for i := range auditrow.Columns {
		c := &auditrow.Columns[i]
		switch c.Kind {
		case auditrow.KindJSON:
			if suspectJSON(*c.Bytes(r)) {
				return true
			}
		case auditrow.KindText, auditrow.KindNullText:
			if len(*c.Text(r)) > suspectTextBytes {
				return true
			}
		}
	}
	return false
}

// suspectTextBytes is the text length from which a row is inserted on its
// own when its batch is isolated.
const suspectTextBytes = 2000

// suspectJSON reports whether JSON text b has a number PostgreSQL's numeric
// may not hold: an exponent of four digits or more, or a thousand digits.
// It only decides which rows the staged insert checks one by one; a miss
// costs speed (the row-by-row pass), never a row.
func suspectJSON(b []byte) bool {
	inString := false
	digits, expDigits, inExp := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			digits, expDigits, inExp = 0, 0, false
		case c >= '0' && c <= '9':
			if inExp {
				expDigits++
				if expDigits >= 4 {
					return true
				}
			} else if digits++; digits >= 1000 {
				return true
			}
		case c == 'e' || c == 'E':
			inExp, expDigits = true, 0
		case c == '.' || c == '-' || c == '+':
		default:
			digits, expDigits, inExp = 0, 0, false
		}
	}
	return false
}

type boolRef struct{ p *bool }

func (r boolRef) BoolValue() (pgtype.Bool, error) { return pgtype.Bool{Bool: *r.p, Valid: true}, nil }

// rejectMany returns the statement and arguments that store the refused
// rows of out, with their errors, in the reject table; "" when there are
// none.
func (w *Writer) rejectMany(rows []auditrow.Row, out stageOutcome) (string, []any, error) {
	if len(out.Rej) == 0 {
		return "", nil, nil
	}
	ids := make([]string, len(out.Rej))
	msgs := make([]string, len(out.Rej))
	payloads := make([][]byte, len(out.Rej))
	for k, i := range out.Rej {
		p, err := rejectPayload(&rows[i])
		if err != nil {
			return "", nil, fmt.Errorf("pgwriter: encode rejected row %s: %w", rows[i].RequestID, err)
		}
		ids[k], msgs[k], payloads[k] = rows[i].RequestID.String(), out.Codes[k]+": "+out.Msgs[k], p
	}
	return w.rejectManySQL, []any{ids, msgs, payloads}, nil
}

// isolate writes rows of a batch whose COPY PostgreSQL refused: the staged
// insert and the refused rows in one transaction, or, when staging fails,
// splitting the batch.
func (w *Writer) isolate(ctx context.Context, rows []auditrow.Row) (Result, error) {
	c, err := w.pool.Acquire(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("pgwriter: acquire: %w", err)
	}
	defer c.Release() // a connection left in a transaction is closed by the pool
	conn := c.Conn()
	out, err := stagedInsert(ctx, conn, w.stage, rows, false, nil)
	var staging errStaging
	if errors.As(err, &staging) && !Retryable(staging.err) && !conn.IsClosed() {
		// The stage is unusable here: split the batch instead.
		var res Result
		if err := w.insertIsolating(ctx, rows, &res); err != nil {
			return res, err
		}
		return res, nil
	}
	if err != nil {
		return Result{}, err
	}
	// The refused rows and the commit in one round trip.
	b := &pgx.Batch{}
	if q, args, err := w.rejectMany(rows, out); err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return Result{}, err
	} else if q != "" {
		b.Queue(q, args...)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return Result{}, fmt.Errorf("pgwriter: store %d rejected rows and commit %d rows: %w", len(out.Rej), len(rows), err)
	}
	return Result{Inserted: len(rows) - out.Dup - len(out.Rej), Duplicates: out.Dup, Rejected: len(out.Rej)}, nil
}
