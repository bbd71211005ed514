package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
)

// DB is what Run needs of a connection or pool (*pgx.Conn, *pgxpool.Pool,
// pgx.Tx). Run only reads: the reader role (otelaudit_reader) suffices.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

type config struct {
	table       string
	publicKey   ed25519.PublicKey
	anchor      []integrity.AnchorEntry
	anchorSet   bool
	anchorErr   error
	since       time.Time
	stream      uuid.UUID
	progress    func(rows int64)
	maxFindings int
	noRows      bool
}

// Option configures Run.
type Option func(*config)

// WithTable verifies the audit table named table (default "audit_log"; the
// name given to migrations.WithTable).
func WithTable(table string) Option { return func(c *config) { c.table = table } }

// WithPublicKey checks every checkpoint's signature with key. Without it,
// signatures are not checked (Report.SignaturesUnchecked counts them).
func WithPublicKey(key ed25519.PublicKey) Option { return func(c *config) { c.publicKey = key } }

// WithAnchor compares the chain with checkpoints kept outside the database
// (see integrity.ReadAnchor); this is what catches tail truncation and a
// restore from an older copy. Several anchors add up.
func WithAnchor(entries []integrity.AnchorEntry) Option {
	return func(c *config) { c.anchor, c.anchorSet = append(c.anchor, entries...), true }
}

// WithAnchorFile is [WithAnchor] with the checkpoints of a JSON Lines file
// (the exporter's WithAnchorFile writes one).
func WithAnchorFile(path string) Option {
	return func(c *config) {
		c.anchorSet = true
		f, err := os.Open(path)
		if err != nil {
			c.anchorErr = errors.Join(c.anchorErr, fmt.Errorf("verify: open anchor: %w", err))
			return
		}
		defer f.Close()
		entries, err := integrity.ReadAnchor(f)
		if err != nil {
			c.anchorErr = errors.Join(c.anchorErr, fmt.Errorf("verify: anchor %s: %w", path, err))
		}
		c.anchor = append(c.anchor, entries...)
	}
}

// WithSince checks only the rows written (and batch seals made) at or after
// t; chains and checkpoints are still checked whole.
func WithSince(t time.Time) Option { return func(c *config) { c.since = t } }

// WithStream checks only one stream.
func WithStream(id uuid.UUID) Option { return func(c *config) { c.stream = id } }

// WithProgress has Run call f with the number of rows checked so far, every
// few thousand rows and at the end, on Run's goroutine.
func WithProgress(f func(rows int64)) Option { return func(c *config) { c.progress = f } }

// WithoutRows checks only the chains, checkpoints, anchors and retention
// marks, not the rows: seconds instead of minutes at millions of rows, for
// a health check or a viewer's badge that runs often. It catches edited,
// deleted or forged seals and checkpoints, truncation and rollback (with
// an anchor), not edited, deleted or inserted rows; Report.Rows is 0.
func WithoutRows() Option { return func(c *config) { c.noRows = true } }

// WithMaxFindings stops recording findings after n (default 100); Run still
// counts them in Report.MoreFindings.
func WithMaxFindings(n int) Option { return func(c *config) { c.maxFindings = n } }

// State is a stream's verification state.
type State string

// The states of a stream.
const (
	// StateIntact: every seal, row and checkpoint of the stream checks out,
	// and the stream was closed cleanly.
	StateIntact State = "intact"
	// StateUnclosed: intact so far, but the stream has no close seal: its
	// writer is still running, or was killed before it shut down. A
	// warning, not tampering; its last rows are protected by the chain and
	// the last checkpoint only.
	StateUnclosed State = "unclosed"
	// StateBroken: tampering was found; Stream.BrokenAt names the first bad
	// seal.
	StateBroken State = "broken"
)

// Stream is one writer stream's result.
type Stream struct {
	ID    uuid.UUID `json:"stream_id"`
	State State     `json:"state"`
	// BrokenAt is the sequence number of the first seal found bad (or of
	// the seal a bad row belongs to); 0 when not broken.
	BrokenAt int64 `json:"broken_at,omitempty"`
	// Seals is the stream's number of seals, LastSeq its last sequence
	// number, Closed whether one of them is a close seal.
	Seals   int64 `json:"seals"`
	LastSeq int64 `json:"last_seq"`
	Closed  bool  `json:"closed"`
	// Rows is the number of rows checked; Lost the records the stream's gap
	// seals say were lost (counted, not tampering).
	Rows int64 `json:"rows"`
	Lost int64 `json:"lost,omitempty"`
	// Checkpointed is the last sequence number covered by a valid
	// checkpoint (database or anchor); 0 for none.
	Checkpointed int64 `json:"checkpointed,omitempty"`
	// FirstSealedAt and LastSealedAt bound the stream's seals in time.
	FirstSealedAt time.Time `json:"first_sealed_at"`
	LastSealedAt  time.Time `json:"last_sealed_at"`
}

// Finding is one piece of evidence of tampering (or, among warnings, of
// something that needs a look).
type Finding struct {
	// Kind is a stable name: row_hash, row_unsealed, row_orphan,
	// row_position, batch_hash, row_count, rows_missing, seal_hash,
	// chain_link, seal_missing, seal_after_close, checkpoint_signature,
	// checkpoint_mismatch, anchor_missing, anchor_mismatch, anchor_other_key;
	// warnings: stream_unclosed, signature_unchecked.
	Kind string `json:"kind"`
	// Stream and Seq name the seal concerned (Seq 0: none).
	Stream uuid.UUID `json:"stream_id,omitzero"`
	Seq    int64     `json:"seq,omitempty"`
	// RowID and RequestID name the row concerned (0 and "": none).
	RowID     int64  `json:"row_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Message says what is wrong, in words.
	Message string `json:"message"`
}

// String formats the finding on one line: kind, stream, seal, row, message.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Kind)
	if f.Stream != (uuid.UUID{}) {
		fmt.Fprintf(&b, " stream %s", f.Stream)
	}
	if f.Seq != 0 {
		fmt.Fprintf(&b, " seal %d", f.Seq)
	}
	if f.RowID != 0 {
		fmt.Fprintf(&b, " row id %d", f.RowID)
	}
	if f.RequestID != "" {
		fmt.Fprintf(&b, " (request_id %s)", f.RequestID)
	}
	b.WriteString(": ")
	b.WriteString(f.Message)
	return b.String()
}

// Report is what Run found.
type Report struct {
	Table string `json:"table"`
	// Rows, Seals, Checkpoints and AnchorEntries count what was checked.
	Rows          int64 `json:"rows"`
	Seals         int64 `json:"seals"`
	Checkpoints   int64 `json:"checkpoints"`
	AnchorEntries int64 `json:"anchor_entries"`
	// UnsealedRows predate sealing (written before migration 000003 or by a
	// writer without sealing, before the first sealed row): they carry no
	// hash and cannot be verified.
	UnsealedRows int64 `json:"unsealed_rows"`
	// RetainedSeals are batch seals whose rows were dropped, wholly or in
	// part, by retention (a retention seal covers them).
	RetainedSeals int64 `json:"retained_seals"`
	// SignaturesUnchecked counts checkpoints whose signature was not
	// checked (no public key given).
	SignaturesUnchecked int64 `json:"signatures_unchecked"`
	// Streams has one entry per writer stream, by id.
	Streams []Stream `json:"streams"`
	// Findings is the evidence of tampering, in the order found (rows and
	// seals in chain order first); empty when the trail is intact.
	Findings []Finding `json:"findings"`
	// MoreFindings counts findings beyond the recorded maximum.
	MoreFindings int `json:"more_findings,omitempty"`
	// Warnings need a look but are not tampering (unclosed streams, rows
	// after the last checkpoint).
	Warnings []Finding `json:"warnings"`
	// Elapsed is how long Run took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Intact reports whether no tampering was found.
func (r *Report) Intact() bool { return len(r.Findings) == 0 }

// First returns the first finding, or nil when intact.
func (r *Report) First() *Finding {
	if len(r.Findings) == 0 {
		return nil
	}
	return &r.Findings[0]
}

// Sealed reports whether the table has any seal at all ("not sealed" when
// false and rows exist).
func (r *Report) Sealed() bool { return r.Seals > 0 }

// ErrNotMigrated is returned (wrapped) when the table has no integrity
// tables: the migrations up to 000003 were not applied.
var ErrNotMigrated = errors.New("verify: the integrity tables do not exist (run otelaudit migrate)")

type sealKey struct {
	stream uuid.UUID
	seq    int64
}

type sealInfo struct {
	kind      integrity.Kind
	batchHash integrity.Hash
	count     int64
	firstTS   time.Time
	lastTS    time.Time
	sealedAt  time.Time
	hash      integrity.Hash
	seen      bool // rows were checked against it
	excused   bool // retention dropped (some of) its rows
}

type run struct {
	cfg     config
	t       integrity.Tables
	rep     *Report
	seals   map[sealKey]*sealInfo
	streams map[uuid.UUID]*Stream
	order   []uuid.UUID
}

// Run verifies the audit trail in db. It returns an error only when it
// could not verify (no connection, no integrity tables, an unreadable
// anchor); tampering is reported in the Report, not as an error.
func Run(ctx context.Context, db DB, opts ...Option) (*Report, error) {
	start := time.Now()
	cfg := config{table: "audit_log", maxFindings: 100}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.anchorErr != nil {
		return nil, cfg.anchorErr
	}
	r := &run{
		cfg: cfg, t: integrity.TablesFor(cfg.table), rep: &Report{Table: cfg.table},
		seals: map[sealKey]*sealInfo{}, streams: map[uuid.UUID]*Stream{},
	}
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, r.t.Seals).Scan(&exists); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if !exists {
		return nil, fmt.Errorf("%w: %s", ErrNotMigrated, r.t.Seals)
	}
	if err := r.readSeals(ctx, db); err != nil {
		return nil, err
	}
	if err := r.readRetention(ctx, db); err != nil {
		return nil, err
	}
	if !cfg.noRows {
		if err := r.readRows(ctx, db); err != nil {
			return nil, err
		}
		r.missingRows()
	}
	if err := r.readCheckpoints(ctx, db); err != nil {
		return nil, err
	}
	r.checkAnchor()
	r.finish()
	r.rep.Elapsed = time.Since(start)
	return r.rep, nil
}

func (r *run) finding(f Finding) {
	if len(r.rep.Findings) >= r.cfg.maxFindings {
		r.rep.MoreFindings++
	} else {
		r.rep.Findings = append(r.rep.Findings, f)
	}
	if st := r.streams[f.Stream]; st != nil && f.Seq > 0 && (st.BrokenAt == 0 || f.Seq < st.BrokenAt) {
		st.BrokenAt = f.Seq
	} else if st != nil && st.BrokenAt == 0 {
		st.BrokenAt = max(st.LastSeq, 1)
	}
}

func (r *run) stream(id uuid.UUID) *Stream {
	st := r.streams[id]
	if st == nil {
		st = &Stream{ID: id}
		r.streams[id] = st
		r.order = append(r.order, id)
	}
	return st
}

// readSeals checks every chain: each seal's hash, its link to the seal
// before it, sequence numbers without gaps, nothing after a close but
// retention.
func (r *run) readSeals(ctx context.Context, db DB) error {
	q := `SELECT stream_id, seq, kind, prev_hash, batch_hash, row_count, first_ts, last_ts, reason, sealed_at, seal_hash
		FROM ` + r.t.Seals
	var args []any
	if r.cfg.stream != (uuid.UUID{}) {
		q += ` WHERE stream_id = $1`
		args = append(args, r.cfg.stream)
	}
	q += ` ORDER BY stream_id, seq`
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("verify: read seals: %w", err)
	}
	defer rows.Close()
	var (
		prev     *Stream
		prevHash []byte
		retained []retention // of the current stream
		batches  []*sealInfo // of the current stream, for retention
	)
	flush := func() {
		// A batch seal with rows in a range that a later retention seal of
		// its stream dropped may be missing rows on purpose.
		for _, ret := range retained {
			for _, b := range batches {
				if b.kind == integrity.KindBatch && ret.covers(b) {
					b.excused = true
				}
			}
		}
		retained, batches = retained[:0], batches[:0]
	}
	for rows.Next() {
		var (
			s                    integrity.Seal
			kind                 string
			prevH, batchH, sealH []byte
			firstTS, lastTS      pgtype.Timestamptz
			reason               pgtype.Text
		)
		if err := rows.Scan(&s.StreamID, &s.Seq, &kind, &prevH, &batchH, &s.RowCount, &firstTS, &lastTS, &reason, &s.SealedAt, &sealH); err != nil {
			return fmt.Errorf("verify: read seals: %w", err)
		}
		r.rep.Seals++
		s.Kind = integrity.Kind(kind)
		copy(s.PrevHash[:], prevH)
		copy(s.BatchHash[:], batchH)
		s.FirstTS, s.LastTS, s.Reason = firstTS.Time, lastTS.Time, reason.String
		s.Normalize()
		st := r.stream(s.StreamID)
		if st != prev {
			flush()
			prev, prevHash = st, make([]byte, integrity.HashSize)
		}
		st.Seals++
		if st.FirstSealedAt.IsZero() {
			st.FirstSealedAt = s.SealedAt
		}
		st.LastSealedAt = s.SealedAt
		if want := st.LastSeq + 1; s.Seq != want {
			r.finding(Finding{Kind: "seal_missing", Stream: s.StreamID, Seq: want,
				Message: fmt.Sprintf("seals %d to %d of the chain are missing (the next seal is %d): seals were deleted", want, s.Seq-1, s.Seq)})
		}
		if st.Closed && s.Kind != integrity.KindRetention {
			r.finding(Finding{Kind: "seal_after_close", Stream: s.StreamID, Seq: s.Seq,
				Message: fmt.Sprintf("a %s seal follows the stream's close seal: the chain was extended after its writer shut down", s.Kind)})
		}
		got := s.ComputeHash()
		switch {
		case !bytes.Equal(sealH, got[:]):
			r.finding(Finding{Kind: "seal_hash", Stream: s.StreamID, Seq: s.Seq,
				Message: "the seal's content does not match its hash: the seal was edited"})
		case s.Seq == st.LastSeq+1 && !bytes.Equal(prevH, prevHash):
			r.finding(Finding{Kind: "chain_link", Stream: s.StreamID, Seq: s.Seq,
				Message: fmt.Sprintf("prev_hash does not match seal %d's hash: the chain was rewritten or a seal replaced", s.Seq-1)})
		}
		prevHash = sealH
		st.LastSeq = s.Seq
		info := &sealInfo{kind: s.Kind, batchHash: s.BatchHash, count: s.RowCount, firstTS: s.FirstTS, lastTS: s.LastTS, sealedAt: s.SealedAt}
		copy(info.hash[:], sealH)
		r.seals[sealKey{s.StreamID, s.Seq}] = info
		switch s.Kind {
		case integrity.KindClose:
			st.Closed = true
		case integrity.KindGap:
			st.Lost += s.RowCount
		case integrity.KindRetention:
			retained = append(retained, retention{seq: s.Seq, lo: s.FirstTS, hi: s.LastTS})
		case integrity.KindBatch:
			batches = append(batches, info)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("verify: read seals: %w", err)
	}
	flush()
	return nil
}

// readRetention applies the retention marks: each names a stream's last
// batch seal in a dropped range, and the rows of that stream's seals up to
// it in the range are gone on purpose.
func (r *run) readRetention(ctx context.Context, db DB) error {
	rows, err := db.Query(ctx, `SELECT id, partition_name, range_from, range_to, stream_id, last_seq, last_seal_hash FROM `+
		pgx.Identifier{r.cfg.table + "_retention"}.Sanitize()+` ORDER BY id`)
	if err != nil {
		return fmt.Errorf("verify: read retention marks: %w", err)
	}
	defer rows.Close()
	type mark struct {
		id      int64
		part    string
		ret     retention
		stream  uuid.UUID
		lastSeq int64
		hash    []byte
	}
	var marks []mark
	for rows.Next() {
		var m mark
		var from pgtype.Timestamptz
		if err := rows.Scan(&m.id, &m.part, &from, &m.ret.hi, &m.stream, &m.lastSeq, &m.hash); err != nil {
			return fmt.Errorf("verify: read retention marks: %w", err)
		}
		m.ret.lo = from.Time
		marks = append(marks, m)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("verify: read retention marks: %w", err)
	}
	rows.Close()
	for _, m := range marks {
		if r.cfg.stream != (uuid.UUID{}) && m.stream != r.cfg.stream {
			continue
		}
		info := r.seals[sealKey{m.stream, m.lastSeq}]
		if info == nil || !bytes.Equal(info.hash[:], m.hash) {
			r.stream(m.stream)
			r.finding(Finding{Kind: "retention_mark", Stream: m.stream, Seq: m.lastSeq,
				Message: fmt.Sprintf("retention mark %d (partition %s) names seal %d, which does not exist or has another hash: a forged mark", m.id, m.part, m.lastSeq)})
			continue
		}
		for seq := m.lastSeq; seq > 0; seq-- {
			b := r.seals[sealKey{m.stream, seq}]
			if b == nil {
				break
			}
			if b.kind == integrity.KindBatch && m.ret.covers(b) {
				b.excused = true
			}
		}
	}
	return nil
}

type retention struct {
	seq    int64
	lo, hi time.Time // [lo, hi); zero lo: from the beginning
}

func (t retention) covers(b *sealInfo) bool {
	return (t.lo.IsZero() || !b.lastTS.Before(t.lo)) && b.firstTS.Before(t.hi)
}

// pending collects the rows of the seal being read, per stream.
type pending struct {
	key  sealKey
	rows []leaf
}

type leaf struct {
	pos  int32
	hash integrity.Hash
	id   int64
	req  uuid.UUID
}

// readRows recomputes every row's hash and, seal by seal, every batch hash.
func (r *run) readRows(ctx context.Context, db DB) error {
	var (
		id      int64
		rowHash []byte
		stream  pgtype.UUID
		seq     pgtype.Int8
		pos     pgtype.Int4
	)
	sc := integrity.NewRowScanner(&id, &rowHash, &stream, &seq, &pos)
	cols := make([]string, 0, len(auditrow.Columns)+5)
	for _, c := range auditrow.Columns {
		cols = append(cols, pgx.Identifier{c.Name}.Sanitize())
	}
	cols = append(cols, "id", "row_hash", "seal_stream", "seal_seq", "seal_pos")
	q := `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + r.t.Audit
	var where []string
	var args []any
	if !r.cfg.since.IsZero() {
		args = append(args, r.cfg.since)
		where = append(where, fmt.Sprintf("created_at >= $%d", len(args)))
	}
	if r.cfg.stream != (uuid.UUID{}) {
		args = append(args, r.cfg.stream)
		where = append(where, fmt.Sprintf("seal_stream = $%d", len(args)))
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	// In id order the rows of one stream come seal by seal: a stream's next
	// batch starts inserting (taking ids) only after the previous one
	// committed, under the stream's lock, and the identity sequence hands out
	// increasing ids (CACHE 1, the default). Within a seal, rows are put back
	// in seal position order before hashing.
	q += " ORDER BY id"
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("verify: read rows: %w", err)
	}
	defer rows.Close()

	// Two stages: this goroutine's reader decodes rows (pgx) into chunks,
	// the loop below hashes and checks them, so that on a machine with two
	// cores decoding and hashing overlap.
	type scanned struct {
		row     auditrow.Row
		id      int64
		rowHash []byte
		stream  pgtype.UUID
		seq     pgtype.Int8
		pos     pgtype.Int4
	}
	const chunk = 512
	chunks := make(chan []scanned, 4)
	readErr := make(chan error, 1)
	stop, readerDone := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-readerDone }() // before rows.Close
	go func() {
		defer close(readerDone)
		defer close(chunks)
		buf := make([]scanned, 0, chunk)
		for rows.Next() {
			if err := sc.Scan(rows); err != nil {
				readErr <- fmt.Errorf("verify: read rows: %w", err)
				return
			}
			buf = append(buf, scanned{row: sc.Row, id: id, rowHash: append([]byte(nil), rowHash...), stream: stream, seq: seq, pos: pos})
			if len(buf) == chunk {
				select {
				case chunks <- buf:
				case <-stop:
					return
				}
				buf = make([]scanned, 0, chunk)
			}
		}
		if len(buf) > 0 {
			select {
			case chunks <- buf:
			case <-stop:
				return
			}
		}
		if err := rows.Err(); err != nil {
			readErr <- fmt.Errorf("verify: read rows: %w", err)
		}
	}()

	var h integrity.RowHasher
	open := map[uuid.UUID]*pending{}
	sealedSeen := false
	for c := range chunks {
		for i := range c {
			if err := r.checkRow(&h, &c[i].row, c[i].id, c[i].rowHash, c[i].stream, c[i].seq, c[i].pos, open, &sealedSeen); err != nil {
				return err
			}
		}
	}
	select {
	case err := <-readErr:
		return err
	default:
	}
	for _, sid := range slices.SortedFunc(mapsKeys(open), func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }) {
		r.checkBatch(open[sid])
	}
	if r.cfg.progress != nil {
		r.cfg.progress(r.rep.Rows)
	}
	return nil
}

// checkRow recomputes one row's hash and adds it to its seal's pending
// rows.
func (r *run) checkRow(h *integrity.RowHasher, row *auditrow.Row, id int64, rowHash []byte, stream pgtype.UUID, seq pgtype.Int8, pos pgtype.Int4,
	open map[uuid.UUID]*pending, sealedSeen *bool) error {
	{
		r.rep.Rows++
		if r.cfg.progress != nil && r.rep.Rows%4096 == 0 {
			r.cfg.progress(r.rep.Rows)
		}
		got := h.Hash(row)
		if !stream.Valid {
			if *sealedSeen {
				r.finding(Finding{Kind: "row_unsealed", RowID: id, RequestID: row.RequestID.String(),
					Message: "the row is covered by no seal but was written after sealing began: a forged row"})
			} else {
				r.rep.UnsealedRows++
			}
			return nil
		}
		*sealedSeen = true
		sid := uuid.UUID(stream.Bytes)
		key := sealKey{sid, seq.Int64}
		if !seq.Valid || !pos.Valid {
			r.finding(Finding{Kind: "row_orphan", Stream: sid, RowID: id, RequestID: row.RequestID.String(),
				Message: "the row names a stream but no seal sequence or position"})
			return nil
		}
		if !bytes.Equal(rowHash, got[:]) {
			r.finding(Finding{Kind: "row_hash", Stream: sid, Seq: seq.Int64, RowID: id, RequestID: row.RequestID.String(),
				Message: "the row's content does not match its row_hash: the row was edited"})
		}
		p := open[sid]
		if p == nil {
			p = &pending{key: key}
			open[sid] = p
		} else if p.key != key {
			r.checkBatch(p)
			p.key, p.rows = key, p.rows[:0]
		}
		p.rows = append(p.rows, leaf{pos: pos.Int32, hash: got, id: id, req: row.RequestID})
	}
	return nil
}

func mapsKeys(m map[uuid.UUID]*pending) func(func(uuid.UUID) bool) {
	return func(yield func(uuid.UUID) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkBatch compares the rows read for one seal with the seal.
func (r *run) checkBatch(p *pending) {
	if len(p.rows) == 0 {
		return
	}
	first := p.rows[0]
	st := r.stream(p.key.stream)
	st.Rows += int64(len(p.rows))
	info := r.seals[p.key]
	if info == nil || info.kind != integrity.KindBatch {
		what := "does not exist"
		if info != nil {
			what = "is a " + string(info.kind) + " seal, which covers no rows"
		}
		r.finding(Finding{Kind: "row_orphan", Stream: p.key.stream, Seq: p.key.seq, RowID: first.id, RequestID: first.req.String(),
			Message: fmt.Sprintf("the row's seal %d %s: a forged row, or its seal was deleted", p.key.seq, what)})
		return
	}
	if info.seen {
		r.finding(Finding{Kind: "row_position", Stream: p.key.stream, Seq: p.key.seq, RowID: first.id, RequestID: first.req.String(),
			Message: "rows of this seal appear apart from its other rows in id order: rows were moved or re-inserted"})
		return
	}
	info.seen = true
	slices.SortFunc(p.rows, func(a, b leaf) int { return int(a.pos) - int(b.pos) })
	bh := integrity.NewBatchHasher()
	for i, l := range p.rows {
		if i > 0 && l.pos == p.rows[i-1].pos {
			r.finding(Finding{Kind: "row_position", Stream: p.key.stream, Seq: p.key.seq, RowID: l.id, RequestID: l.req.String(),
				Message: fmt.Sprintf("two rows claim position %d of the seal: a forged or copied row", l.pos)})
			return
		}
		bh.Add(l.hash[:])
	}
	n := int64(len(p.rows))
	switch {
	case info.excused && n <= info.count:
		r.rep.RetainedSeals++ // retention dropped some of its rows: cannot be recomputed
	case n != info.count:
		what := "rows were deleted"
		if n > info.count {
			what = "rows were inserted"
		}
		r.finding(Finding{Kind: "row_count", Stream: p.key.stream, Seq: p.key.seq, RowID: first.id, RequestID: first.req.String(),
			Message: fmt.Sprintf("the seal covers %d rows, the table holds %d of them: %s", info.count, n, what)})
	case bh.Sum() != info.batchHash:
		r.finding(Finding{Kind: "batch_hash", Stream: p.key.stream, Seq: p.key.seq, RowID: first.id, RequestID: first.req.String(),
			Message: "the seal's rows do not hash to its batch hash: rows were edited (with their row_hash), swapped or replaced"})
	}
}

// missingRows reports batch seals none of whose rows were found.
func (r *run) missingRows() {
	keys := make([]sealKey, 0)
	for k, info := range r.seals {
		if info.kind != integrity.KindBatch || info.seen {
			continue
		}
		if !r.cfg.since.IsZero() && info.sealedAt.Before(r.cfg.since) {
			continue
		}
		if info.excused {
			r.rep.RetainedSeals++
			continue
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b sealKey) int {
		if c := bytes.Compare(a.stream[:], b.stream[:]); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	for _, k := range keys {
		r.finding(Finding{Kind: "rows_missing", Stream: k.stream, Seq: k.seq,
			Message: fmt.Sprintf("none of the seal's %d rows is in the table: they were deleted", r.seals[k].count)})
	}
}

func (r *run) checkCheckpoint(c *integrity.Checkpoint, where string, anchor bool) {
	if r.cfg.stream != (uuid.UUID{}) && c.StreamID != r.cfg.stream {
		return
	}
	st := r.stream(c.StreamID)
	if r.cfg.publicKey != nil {
		if !c.Verify(r.cfg.publicKey) {
			kind := "checkpoint_signature"
			msg := "the checkpoint's signature is not valid for the public key: a forged or edited checkpoint"
			if c.KeyID != integrity.KeyID(r.cfg.publicKey) {
				kind = "anchor_other_key"
				msg = fmt.Sprintf("the checkpoint is signed by key %s, not by the given key %s", c.KeyID, integrity.KeyID(r.cfg.publicKey))
				if !anchor {
					kind = "checkpoint_signature"
				}
			}
			r.finding(Finding{Kind: kind, Stream: c.StreamID, Seq: c.Seq, Message: where + ": " + msg})
			return
		}
	} else {
		r.rep.SignaturesUnchecked++
	}
	info := r.seals[sealKey{c.StreamID, c.Seq}]
	switch {
	case info == nil && anchor:
		r.finding(Finding{Kind: "anchor_missing", Stream: c.StreamID, Seq: c.Seq,
			Message: fmt.Sprintf("%s: the anchor says the stream reached seal %d (signed %s), the database has only up to seal %d: rows and seals were removed from the end, or the database was restored from an older copy",
				where, c.Seq, c.SignedAt.Format(time.RFC3339), st.LastSeq)})
		return
	case info == nil:
		r.finding(Finding{Kind: "checkpoint_mismatch", Stream: c.StreamID, Seq: c.Seq,
			Message: fmt.Sprintf("%s: the checkpoint names seal %d, which does not exist: seals were deleted", where, c.Seq)})
		return
	case info.hash != c.SealHash:
		kind := "checkpoint_mismatch"
		if anchor {
			kind = "anchor_mismatch"
		}
		r.finding(Finding{Kind: kind, Stream: c.StreamID, Seq: c.Seq,
			Message: fmt.Sprintf("%s: seal %d's hash differs from the checkpointed one: the chain was rewritten", where, c.Seq)})
		return
	}
	if c.Seq > st.Checkpointed {
		st.Checkpointed = c.Seq
	}
}

func (r *run) readCheckpoints(ctx context.Context, db DB) error {
	rows, err := db.Query(ctx, `SELECT id, stream_id, seq, seal_hash, closed, signed_at, key_id, signature FROM `+r.t.Checkpoints+` ORDER BY id`)
	if err != nil {
		return fmt.Errorf("verify: read checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c integrity.Checkpoint
		var id int64
		var h []byte
		if err := rows.Scan(&id, &c.StreamID, &c.Seq, &h, &c.Closed, &c.SignedAt, &c.KeyID, &c.Signature); err != nil {
			return fmt.Errorf("verify: read checkpoints: %w", err)
		}
		copy(c.SealHash[:], h)
		c.SignedAt = integrity.CanonicalTime(c.SignedAt)
		r.rep.Checkpoints++
		r.checkCheckpoint(&c, fmt.Sprintf("checkpoint id %d", id), false)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("verify: read checkpoints: %w", err)
	}
	return nil
}

func (r *run) checkAnchor() {
	for i := range r.cfg.anchor {
		e := &r.cfg.anchor[i]
		if e.Table != "" && e.Table != r.cfg.table {
			continue
		}
		r.rep.AnchorEntries++
		r.checkCheckpoint(&e.Checkpoint, fmt.Sprintf("anchor line %d", e.Line), true)
	}
}

func (r *run) finish() {
	ids := slices.Clone(r.order)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range ids {
		st := r.streams[id]
		switch {
		case st.BrokenAt != 0:
			st.State = StateBroken
		case !st.Closed:
			st.State = StateUnclosed
			r.rep.Warnings = append(r.rep.Warnings, Finding{Kind: "stream_unclosed", Stream: id, Seq: st.LastSeq,
				Message: fmt.Sprintf("the stream has no close seal (last seal %d at %s): its writer is running or was killed; seals after checkpoint %d are protected by the chain only",
					st.LastSeq, st.LastSealedAt.Format(time.RFC3339), st.Checkpointed)})
		default:
			st.State = StateIntact
		}
		r.rep.Streams = append(r.rep.Streams, *st)
	}
	if r.rep.SignaturesUnchecked > 0 {
		r.rep.Warnings = append(r.rep.Warnings, Finding{Kind: "signature_unchecked",
			Message: fmt.Sprintf("%d checkpoint signatures were not checked: no public key given", r.rep.SignaturesUnchecked)})
	}
}
