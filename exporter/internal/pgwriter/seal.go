package pgwriter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
)

// Option configures a Writer.
type Option func(*Writer)

// WithSealing makes the Writer seal every batch it commits in the chain of
// stream (see package integrity): each Write runs in one transaction that
// takes the stream's advisory lock, inserts the rows with their row hash
// and seal reference, and appends a seal over the rows it inserted. A Write
// that inserts nothing (a replay of stored rows) writes no seal. Choose a
// new stream id for each writer instance (uuid.New at start).
func WithSealing(stream uuid.UUID) Option {
	return func(w *Writer) { w.seal = newSealer(w, stream) }
}

// sealer is the Writer's sealing state.
type sealer struct {
	stream  uuid.UUID
	tables  integrity.Tables
	columns []string   // COPY columns: the audit columns, then the seal columns
	insert  string     // conflict-ignoring INSERT with the seal columns, RETURNING seal_pos
	stage   *stagePlan // isolating refused rows with the seal columns (isolate.go)
	hashers sync.Pool

	mu   sync.Mutex
	gaps []gap // counted losses not yet in the chain
}

type gap struct {
	n      int64
	reason string
}

func newSealer(w *Writer, stream uuid.UUID) *sealer {
	table := w.table[0]
	s := &sealer{stream: stream, tables: integrity.TablesFor(table)}
	s.columns = append(auditrow.ColumnNames(), "row_hash", "seal_stream", "seal_seq", "seal_pos")
	s.hashers.New = func() any { return new(integrity.RowHasher) }

	var b strings.Builder
	b.WriteString("INSERT INTO " + s.tables.Audit + " (")
	for i, c := range s.columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(c))
	}
	n := len(auditrow.Columns)
	b.WriteString(")\nSELECT ")
	for i := range n {
		b.WriteString("u.c" + strconv.Itoa(i) + ", ")
	}
	b.WriteString("u.h, $" + strconv.Itoa(n+3) + "::uuid, $" + strconv.Itoa(n+4) + "::bigint, u.p\nFROM unnest(")
	for i, c := range auditrow.Columns {
		b.WriteString("$" + strconv.Itoa(i+1) + "::" + c.Type + "[], ")
	}
	b.WriteString("$" + strconv.Itoa(n+1) + "::bytea[], $" + strconv.Itoa(n+2) + "::integer[]) AS u(")
	for i := range n {
		b.WriteString("c" + strconv.Itoa(i) + ", ")
	}
	b.WriteString("h, p)\nON CONFLICT DO NOTHING\nRETURNING seal_pos")
	s.insert = b.String()
	s.stage = newStagePlan(s.tables.Audit, stageTable+"_sealed", append(auditStageColumns(),
		stageColumn{name: "row_hash", typ: "bytea"}, stageColumn{name: "seal_stream", typ: "uuid"},
		stageColumn{name: "seal_seq", typ: "bigint"}, stageColumn{name: "seal_pos", typ: "integer"}), "seal_pos")
	return s
}

// Stream returns the id of the Writer's seal stream, or the zero UUID when
// it does not seal.
func (w *Writer) Stream() uuid.UUID {
	if w.seal == nil {
		return uuid.UUID{}
	}
	return w.seal.stream
}

// RecordGap records that n records of the Writer's stream were lost after
// they were accepted (reason says why: "spool_full", "shutdown", ...). The
// next Write (or [Writer.CloseStream]) appends a gap seal for them, so the
// chain shows counted loss apart from deletion. It never blocks on the
// database. It does nothing when the Writer does not seal.
func (w *Writer) RecordGap(n int, reason string) {
	if w.seal == nil || n <= 0 {
		return
	}
	w.seal.mu.Lock()
	defer w.seal.mu.Unlock()
	if k := len(w.seal.gaps); k > 0 && w.seal.gaps[k-1].reason == reason {
		w.seal.gaps[k-1].n += int64(n)
		return
	}
	w.seal.gaps = append(w.seal.gaps, gap{n: int64(n), reason: reason})
}

func (s *sealer) takeGaps() []gap {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gaps
	s.gaps = nil
	return g
}

// restoreGaps puts back gaps a failed transaction did not record.
func (s *sealer) restoreGaps(g []gap) {
	if len(g) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gaps = append(g, s.gaps...)
}

// CloseStream appends the stream's close seal (after any pending gap) and
// returns it. A stream that never sealed anything gets no close seal (ok is
// false). Write after CloseStream starts sealing again after the close.
func (w *Writer) CloseStream(ctx context.Context) (seal integrity.Seal, ok bool, err error) {
	s := w.seal
	if s == nil {
		return integrity.Seal{}, false, nil
	}
	gaps := s.takeGaps()
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		s.restoreGaps(gaps)
		return integrity.Seal{}, false, fmt.Errorf("pgwriter: close stream %s: %w", s.stream, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	head, err := integrity.LockHead(ctx, tx, s.tables, s.stream)
	if err == nil {
		head, err = s.insertGaps(ctx, tx, head, gaps)
	}
	if err != nil {
		s.restoreGaps(gaps)
		return integrity.Seal{}, false, fmt.Errorf("pgwriter: close stream: %w", err)
	}
	if head.Seq == 0 {
		return integrity.Seal{}, false, nil
	}
	seal = integrity.Seal{StreamID: s.stream, Kind: integrity.KindClose}
	head.Next(&seal)
	if err := integrity.InsertSeal(ctx, tx, s.tables, &seal); err != nil {
		s.restoreGaps(gaps)
		return integrity.Seal{}, false, fmt.Errorf("pgwriter: close stream: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		s.restoreGaps(gaps)
		return integrity.Seal{}, false, fmt.Errorf("pgwriter: close stream %s: commit: %w", s.stream, err)
	}
	return seal, true, nil
}

func (s *sealer) insertGaps(ctx context.Context, tx integrity.DB, head integrity.Head, gaps []gap) (integrity.Head, error) {
	for _, g := range gaps {
		seal := integrity.Seal{StreamID: s.stream, Kind: integrity.KindGap, RowCount: g.n, Reason: g.reason}
		head.Next(&seal)
		if err := integrity.InsertSeal(ctx, tx, s.tables, &seal); err != nil {
			return head, err
		}
		head.Seq, head.Hash = seal.Seq, seal.Hash
	}
	return head, nil
}

// writeSealed is Write for a sealing Writer: everything in one transaction.
func (w *Writer) writeSealed(ctx context.Context, rows []auditrow.Row) (Result, error) {
	s := w.seal
	n := len(rows)
	hashes := make([]integrity.Hash, n) // filled by sealFast as the COPY streams, or by sealIsolating
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(i)
	}

	gaps := s.takeGaps()
	res, err := w.sealTx(ctx, rows, hashes, pos, gaps)
	if err != nil {
		s.restoreGaps(gaps)
		return Result{}, err
	}
	return res, nil
}

// sealTx writes one batch and its seal. The common case is four round
// trips on one connection: BEGIN with the stream's lock and head, the COPY,
// and the seal with COMMIT. When the COPY meets a stored row (a replay) or
// a row PostgreSQL refuses, that transaction is rolled back and the batch
// is written again in savepoints, sealing only what it inserted.
func (w *Writer) sealTx(ctx context.Context, rows []auditrow.Row, hashes []integrity.Hash, pos []int32, gaps []gap) (Result, error) {
	res, done, err := w.sealFast(ctx, rows, hashes, pos, gaps)
	if done || err != nil {
		return res, err
	}
	return w.sealIsolating(ctx, rows, hashes, pos, gaps)
}

// sealFast is the COPY path; done is false when the batch must take the
// isolating path instead (nothing was committed).
func (w *Writer) sealFast(ctx context.Context, rows []auditrow.Row, hashes []integrity.Hash, pos []int32, gaps []gap) (Result, bool, error) {
	s := w.seal
	n := len(rows)
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return Result{}, false, fmt.Errorf("pgwriter: connect: %w", err)
	}
	defer conn.Release()
	open := true
	defer func() {
		if open {
			// A connection left inside a transaction is destroyed by Release.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = conn.Exec(rctx, "ROLLBACK")
		}
	}()
	head, err := integrity.BeginLockHead(ctx, conn, s.tables, s.stream)
	if err != nil {
		return Result{}, false, fmt.Errorf("pgwriter: %w", err)
	}
	if head, err = s.insertGaps(ctx, conn, head, gaps); err != nil {
		return Result{}, false, fmt.Errorf("pgwriter: %w", err)
	}
	seq := head.Seq + 1
	streamID := s.stream
	var vals []any
	// Each row is hashed as the COPY asks for it: pgx encodes rows while the
	// chunk before them is on its way, so hashing overlaps with PostgreSQL
	// ingesting.
	h := s.hashers.Get().(*integrity.RowHasher)
	defer s.hashers.Put(h)
	_, err = conn.CopyFrom(ctx, w.table, s.columns, pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		hashes[i] = h.Hash(&rows[i])
		vals = appendValues(vals[:0], &rows[i])
		vals = append(vals, hashRef{&hashes[i]}, uuidRef{&streamID}, int64Ref{&seq}, int32Ref{&pos[i]})
		return vals, nil
	}))
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "23505" || isDataError(pgErr.Code)) {
			return Result{}, false, nil
		}
		return Result{}, false, fmt.Errorf("pgwriter: copy %d rows: %w", n, err)
	}
	inserted := make([]bool, n)
	for i := range inserted {
		inserted[i] = true
	}
	seal := s.batchSeal(rows, hashes, inserted)
	head.Next(&seal)
	b := &pgx.Batch{}
	integrity.QueueSeal(b, s.tables, &seal)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("pgwriter: seal and commit %d rows: %w", n, err)
	}
	open = false
	return Result{Inserted: n}, true, nil
}

// batchSeal returns the batch seal over the inserted rows (chain fields
// unset).
func (s *sealer) batchSeal(rows []auditrow.Row, hashes []integrity.Hash, inserted []bool) integrity.Seal {
	seal := integrity.Seal{StreamID: s.stream, Kind: integrity.KindBatch}
	bh := integrity.NewBatchHasher()
	for i := range rows {
		if !inserted[i] {
			continue
		}
		bh.Add(hashes[i][:])
		ts := integrity.CanonicalTime(rows[i].Timestamp)
		if seal.FirstTS.IsZero() || ts.Before(seal.FirstTS) {
			seal.FirstTS = ts
		}
		if ts.After(seal.LastTS) {
			seal.LastTS = ts
		}
	}
	seal.RowCount = bh.Count()
	seal.BatchHash = bh.Sum()
	return seal
}

// sealIsolating writes the batch with conflict-ignoring INSERTs in
// savepoints, isolating refused rows, and seals what it inserted.
func (w *Writer) sealIsolating(ctx context.Context, rows []auditrow.Row, hashes []integrity.Hash, pos []int32, gaps []gap) (Result, error) {
	s := w.seal
	n := len(rows)
	h := s.hashers.Get().(*integrity.RowHasher)
	for i := range rows {
		hashes[i] = h.Hash(&rows[i])
	}
	s.hashers.Put(h)
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("pgwriter: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	head, err := integrity.LockHead(ctx, tx, s.tables, s.stream)
	if err != nil {
		return Result{}, fmt.Errorf("pgwriter: %w", err)
	}
	if head, err = s.insertGaps(ctx, tx, head, gaps); err != nil {
		return Result{}, fmt.Errorf("pgwriter: %w", err)
	}
	seq := head.Seq + 1
	inserted := make([]bool, n)
	res, err := w.stageSealed(ctx, tx, rows, hashes, pos, seq, inserted)
	var staging errStaging
	if errors.As(err, &staging) && !Retryable(staging.err) && !tx.Conn().IsClosed() {
		// The stage is unusable here: split the batch instead.
		res = Result{}
		err = w.insertIsolatingSealed(ctx, tx, rows, hashes, pos, seq, inserted, &res)
	}
	if err != nil {
		return Result{}, err
	}
	if res.Inserted > 0 {
		seal := s.batchSeal(rows, hashes, inserted)
		head.Next(&seal)
		if seal.Seq != seq {
			return Result{}, fmt.Errorf("pgwriter: seal %d of stream %s is not the rows' seal %d", seal.Seq, s.stream, seq)
		}
		if err := integrity.InsertSeal(ctx, tx, s.tables, &seal); err != nil {
			return Result{}, fmt.Errorf("pgwriter: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{}, fmt.Errorf("pgwriter: commit %d rows: %w", n, err)
	}
	return res, nil
}

// stageSealed writes rows with their seal columns through the stage (see
// isolate.go) in a savepoint of tx, and stores the refused rows: a fixed
// number of round trips whatever the number of refused rows. inserted[i]
// is set for each row i it inserted.
func (w *Writer) stageSealed(ctx context.Context, tx pgx.Tx, rows []auditrow.Row, hashes []integrity.Hash, pos []int32, seq int64, inserted []bool) (Result, error) {
	streamID := w.seal.stream
	out, err := stagedInsert(ctx, tx.Conn(), w.seal.stage, rows, true, func(i int, vals []any) []any {
		return append(vals, hashRef{&hashes[i]}, uuidRef{&streamID}, int64Ref{&seq}, int32Ref{&pos[i]})
	})
	if err != nil {
		return Result{}, err
	}
	for _, i := range out.Ins {
		inserted[i] = true
	}
	if q, args, err := w.rejectMany(rows, out); err != nil {
		return Result{}, err
	} else if q != "" {
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return Result{}, fmt.Errorf("pgwriter: store %d rejected rows: %w", len(out.Rej), err)
		}
	}
	return Result{Inserted: len(out.Ins), Duplicates: out.Dup, Rejected: len(out.Rej)}, nil
}

// insertIsolatingSealed writes rows idempotently in savepoints of tx; a data
// error splits them. inserted[i] is set for each row i it inserted. It is
// the fallback of stageSealed when the rows cannot be staged.
func (w *Writer) insertIsolatingSealed(ctx context.Context, tx pgx.Tx, rows []auditrow.Row, hashes []integrity.Hash, pos []int32, seq int64, inserted []bool, res *Result) error {
	got, err := w.insertIgnoreSealed(ctx, tx, rows, hashes, pos, seq)
	if err == nil {
		for _, p := range got {
			inserted[p] = true
		}
		res.Inserted += len(got)
		res.Duplicates += len(rows) - len(got)
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !isDataError(pgErr.Code) {
		return err
	}
	if len(rows) == 1 {
		if err := w.rejectRowTx(ctx, tx, &rows[0], pgErr); err != nil {
			return err
		}
		res.Rejected++
		return nil
	}
	mid := len(rows) / 2
	if err := w.insertIsolatingSealed(ctx, tx, rows[:mid], hashes[:mid], pos[:mid], seq, inserted, res); err != nil {
		return err
	}
	return w.insertIsolatingSealed(ctx, tx, rows[mid:], hashes[mid:], pos[mid:], seq, inserted, res)
}

// insertIgnoreSealed inserts rows in a savepoint and returns the seal
// positions of those it inserted.
func (w *Writer) insertIgnoreSealed(ctx context.Context, tx pgx.Tx, rows []auditrow.Row, hashes []integrity.Hash, pos []int32, seq int64) ([]int32, error) {
	var a columnArrays
	a.fill(rows)
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = hashes[i][:]
	}
	args := append(a.args, hs, pos, w.seal.stream, seq)
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgwriter: savepoint: %w", err)
	}
	got, err := func() ([]int32, error) {
		r, err := sp.Query(ctx, w.seal.insert, args...)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(r, pgx.RowTo[int32])
	}()
	if err != nil {
		_ = sp.Rollback(ctx)
		return nil, fmt.Errorf("pgwriter: insert %d rows: %w", len(rows), err)
	}
	if err := sp.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pgwriter: release savepoint: %w", err)
	}
	return got, nil
}

// rejectRowTx is rejectRow inside the sealing transaction.
func (w *Writer) rejectRowTx(ctx context.Context, tx pgx.Tx, r *auditrow.Row, cause *pgconn.PgError) error {
	payload, err := rejectPayload(r)
	if err != nil {
		return fmt.Errorf("pgwriter: encode rejected row %s: %w", r.RequestID, err)
	}
	msg := cause.Code + ": " + cause.Message
	if _, err := tx.Exec(ctx, w.reject, r.RequestID.String(), msg, payload); err != nil {
		return fmt.Errorf("pgwriter: store rejected row %s (%s): %w", r.RequestID, msg, err)
	}
	return nil
}

type hashRef struct{ p *integrity.Hash }

// BytesValue implements pgtype.BytesValuer.
func (r hashRef) BytesValue() ([]byte, error) { return r.p[:], nil }

type int32Ref struct{ p *int32 }

func (r int32Ref) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*r.p), Valid: true}, nil
}
