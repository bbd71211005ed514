package integrity

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// DB is what the store functions need of a connection, pool or
// transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tables names the integrity tables of one audit table.
type Tables struct {
	// Audit is the audit table, quoted.
	Audit string
	// Seals is the seal table, quoted.
	Seals string
	// Checkpoints is the checkpoint table, quoted.
	Checkpoints string
	name        string
}

// TablesFor returns the names of the integrity tables of the audit table
// named table (unquoted, as migrations.WithTable takes it).
func TablesFor(table string) Tables {
	return Tables{
		Audit:       pgx.Identifier{table}.Sanitize(),
		Seals:       pgx.Identifier{table + "_seals"}.Sanitize(),
		Checkpoints: pgx.Identifier{table + "_checkpoints"}.Sanitize(),
		name:        table,
	}
}

// Name returns the audit table's unquoted name.
func (t Tables) Name() string { return t.name }

// LockKey returns the transaction-level advisory lock key that serialises
// the seals of one stream of one table.
func LockKey(table string, stream uuid.UUID) int64 {
	h := sha256.New()
	h.Write([]byte("otelaudit.seal\x00"))
	h.Write([]byte(table))
	h.Write(stream[:])
	var sum [HashSize]byte
	h.Sum(sum[:0])
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// Head is the last seal of a stream as a new seal needs it.
type Head struct {
	// Seq is the last seal's sequence number, 0 for a new stream.
	Seq int64
	// Hash is the last seal's hash, zero for a new stream.
	Hash Hash
	// Now is the transaction's start time (PostgreSQL's now()), which is
	// also the created_at of every row the transaction inserts.
	Now time.Time
}

// TxDB is a transaction (pgx.Tx) as LockHead needs it.
type TxDB interface {
	DB
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// LockHead takes the stream's advisory lock for the rest of the
// transaction tx and returns the stream's head. Concurrent writers of one
// stream wait for each other here; other streams do not. The lock and the
// read of the head go in one round trip but are two statements: the read
// must take its snapshot after the lock is granted.
func LockHead(ctx context.Context, tx TxDB, t Tables, stream uuid.UUID) (Head, error) {
	return lockHead(ctx, tx, t, stream, false)
}

// BeginLockHead is [LockHead] on a connection outside a transaction: it
// sends BEGIN with the lock and the read, in the same round trip. The
// caller ends the transaction (COMMIT or ROLLBACK), also after an error.
func BeginLockHead(ctx context.Context, conn TxDB, t Tables, stream uuid.UUID) (Head, error) {
	return lockHead(ctx, conn, t, stream, true)
}

func lockHead(ctx context.Context, tx TxDB, t Tables, stream uuid.UUID, begin bool) (Head, error) {
	var h Head
	var seq pgtype.Int8
	var hash []byte
	b := &pgx.Batch{}
	if begin {
		b.Queue(`BEGIN`)
	}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, LockKey(t.name, stream))
	b.Queue(`SELECT now(), (SELECT seq FROM `+t.Seals+` WHERE stream_id = $1 ORDER BY seq DESC LIMIT 1),
		(SELECT seal_hash FROM `+t.Seals+` WHERE stream_id = $1 ORDER BY seq DESC LIMIT 1)`, stream)
	br := tx.SendBatch(ctx, b)
	var err error
	if begin {
		_, err = br.Exec()
	}
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		err = br.QueryRow().Scan(&h.Now, &seq, &hash)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Head{}, fmt.Errorf("integrity: lock stream %s: %w", stream, err)
	}
	if seq.Valid {
		h.Seq = seq.Int64
		if len(hash) != HashSize {
			return Head{}, fmt.Errorf("integrity: stream %s seal %d: stored hash has %d bytes", stream, seq.Int64, len(hash))
		}
		copy(h.Hash[:], hash)
	}
	return h, nil
}

// Next fills the chain fields of s as the seal after h: Seq, PrevHash,
// SealedAt (h.Now), and Hash, after normalising its times.
func (h Head) Next(s *Seal) {
	s.Seq = h.Seq + 1
	s.PrevHash = h.Hash
	s.SealedAt = h.Now
	s.Normalize()
	s.Hash = s.ComputeHash()
}

func nullTime(t time.Time) pgtype.Timestamptz { return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()} }

func nullText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

// InsertSeal stores s (its Hash already computed, see [Head.Next]).
func InsertSeal(ctx context.Context, tx DB, t Tables, s *Seal) error {
	if _, err := tx.Exec(ctx, insertSealSQL(t), sealArgs(s)...); err != nil {
		return fmt.Errorf("integrity: insert seal %s/%d: %w", s.StreamID, s.Seq, err)
	}
	return nil
}

// QueueSeal queues the insert of s on b, for a caller that sends it with
// its COMMIT in one round trip.
func QueueSeal(b *pgx.Batch, t Tables, s *Seal) { b.Queue(insertSealSQL(t), sealArgs(s)...) }

func insertSealSQL(t Tables) string {
	return `INSERT INTO ` + t.Seals + ` (stream_id, seq, kind, prev_hash, batch_hash, row_count,
		first_ts, last_ts, reason, sealed_at, seal_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
}

func sealArgs(s *Seal) []any {
	var batch []byte
	if s.Kind == KindBatch {
		batch = s.BatchHash[:]
	}
	return []any{s.StreamID, s.Seq, string(s.Kind), s.PrevHash[:], batch, s.RowCount,
		nullTime(s.FirstTS), nullTime(s.LastTS), nullText(s.Reason), s.SealedAt, s.Hash[:]}
}

// AppendSeal locks the stream, chains s after its head and stores it, in
// the transaction tx. It is how seals that cover no rows (gaps, closes,
// retention) are written.
func AppendSeal(ctx context.Context, tx TxDB, t Tables, s *Seal) error {
	h, err := LockHead(ctx, tx, t, s.StreamID)
	if err != nil {
		return err
	}
	h.Next(s)
	return InsertSeal(ctx, tx, t, s)
}

// InsertCheckpoint stores a signed checkpoint.
func InsertCheckpoint(ctx context.Context, db DB, t Tables, c *Checkpoint) error {
	_, err := db.Exec(ctx, `INSERT INTO `+t.Checkpoints+` (stream_id, seq, seal_hash, closed, signed_at, key_id, signature)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, c.StreamID, c.Seq, c.SealHash[:], c.Closed, c.SignedAt, c.KeyID, c.Signature)
	if err != nil {
		return fmt.Errorf("integrity: insert checkpoint %s/%d: %w", c.StreamID, c.Seq, err)
	}
	return nil
}

// ReadHead returns the last seal of a stream without locking: its Seq,
// Hash and Kind; ok is false when the stream has no seal.
func ReadHead(ctx context.Context, db DB, t Tables, stream uuid.UUID) (seq int64, hash Hash, kind Kind, ok bool, err error) {
	var h []byte
	var k string
	err = db.QueryRow(ctx, `SELECT seq, seal_hash, kind FROM `+t.Seals+` WHERE stream_id = $1 ORDER BY seq DESC LIMIT 1`, stream).Scan(&seq, &h, &k)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, Hash{}, "", false, nil
	}
	if err != nil {
		return 0, Hash{}, "", false, fmt.Errorf("integrity: read head of stream %s: %w", stream, err)
	}
	copy(hash[:], h)
	return seq, hash, Kind(k), true, nil
}

// RecordRetention records, in tx, that the rows of the audit table with
// "timestamp" in [from, to) (from zero: everything before to) in partition
// are about to be dropped: for each stream with batch seals in that range,
// its last such seal and that seal's hash go to the retention table. It
// returns how many streams it recorded. Call it in the dropping transaction,
// after the partition is locked.
func RecordRetention(ctx context.Context, tx DB, t Tables, partition string, from, to time.Time) (int64, error) {
	retention := pgx.Identifier{t.name + "_retention"}.Sanitize()
	tag, err := tx.Exec(ctx, `INSERT INTO `+retention+` (partition_name, range_from, range_to, stream_id, last_seq, last_seal_hash)
		SELECT $1, $2, $3, s.stream_id, s.seq, s.seal_hash FROM (
			SELECT DISTINCT ON (stream_id) stream_id, seq, seal_hash FROM `+t.Seals+`
			WHERE kind = 'batch' AND first_ts < $3 AND ($2::timestamptz IS NULL OR last_ts >= $2)
			ORDER BY stream_id, seq DESC) s`, partition, nullTime(from), to)
	if err != nil {
		return 0, fmt.Errorf("integrity: record retention of %s: %w", partition, err)
	}
	return tag.RowsAffected(), nil
}
