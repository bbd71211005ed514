package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// SealVersion is the version of the canonical seal document.
const SealVersion = 1

// Kind says what a seal records.
type Kind string

// The kinds of seals.
const (
	// KindBatch seals the rows one committed batch inserted.
	KindBatch Kind = "batch"
	// KindGap records records the stream lost after they were accepted (a
	// full spool, a shutdown deadline): RowCount of them, for Reason. It
	// covers no rows; the chain shows counted loss apart from deletion.
	KindGap Kind = "gap"
	// KindClose ends a stream that shut down cleanly.
	KindClose Kind = "close"
	// KindRetention records that partitions covering [FirstTS, LastTS)
	// were dropped (Reason names them): the stream's rows in that range are
	// gone on purpose. It is appended to every stream with seals there.
	KindRetention Kind = "retention"
)

// Seal is one link of a stream's chain: a row of the audit_log_seals table.
type Seal struct {
	// StreamID names the writer stream (chosen when the writer starts).
	StreamID uuid.UUID
	// Seq is the seal's position in its stream, from 1, without gaps.
	Seq int64
	// Kind says what the seal records.
	Kind Kind
	// PrevHash is the previous seal's Hash; zero for Seq 1.
	PrevHash Hash
	// BatchHash is the [BatchHasher] sum over the row hashes of the rows
	// the seal covers, in seal position order (KindBatch only).
	BatchHash Hash
	// RowCount is the number of rows sealed (KindBatch) or records lost
	// (KindGap).
	RowCount int64
	// FirstTS and LastTS are the earliest and latest row timestamp
	// (KindBatch), or the range dropped (KindRetention); zero otherwise.
	FirstTS, LastTS time.Time
	// Reason says why records were lost (KindGap) or what was dropped
	// (KindRetention).
	Reason string
	// SealedAt is when the writer made the seal.
	SealedAt time.Time
	// Hash is the seal's own hash, [Seal.ComputeHash].
	Hash Hash
}

// AppendCanonical appends the seal's canonical RFC 8785 document: every
// field but Hash, hashes in lower-case hex, times in [TimeLayout], empty
// values null.
func (s *Seal) AppendCanonical(dst []byte) []byte {
	dst = append(dst, `{"batch_hash":`...)
	if s.Kind == KindBatch {
		dst = appendHex(dst, s.BatchHash[:])
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"first_ts":`...)
	dst = appendTime(dst, s.FirstTS)
	dst = append(dst, `,"kind":`...)
	dst = appendString(dst, string(s.Kind))
	dst = append(dst, `,"last_ts":`...)
	dst = appendTime(dst, s.LastTS)
	dst = append(dst, `,"prev_hash":`...)
	dst = appendHex(dst, s.PrevHash[:])
	dst = append(dst, `,"reason":`...)
	if s.Reason != "" {
		dst = appendString(dst, s.Reason)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"row_count":`...)
	dst = strconv.AppendInt(dst, s.RowCount, 10)
	dst = append(dst, `,"sealed_at":`...)
	dst = appendTime(dst, s.SealedAt)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, s.Seq, 10)
	dst = append(dst, `,"stream_id":"`...)
	dst = append(dst, s.StreamID.String()...)
	dst = append(dst, `","v":`...)
	dst = strconv.AppendInt(dst, SealVersion, 10)
	return append(dst, '}')
}

// ComputeHash returns the SHA-256 hash of the seal's canonical document.
func (s *Seal) ComputeHash() Hash { return sha256.Sum256(s.AppendCanonical(nil)) }

// Normalize truncates the seal's times to what PostgreSQL stores, so that
// the hash computed before the insert is the one recomputed from the row.
func (s *Seal) Normalize() {
	s.FirstTS, s.LastTS, s.SealedAt = canonicalOrZero(s.FirstTS), canonicalOrZero(s.LastTS), canonicalOrZero(s.SealedAt)
}

func canonicalOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return CanonicalTime(t)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = CanonicalTime(t).AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

func appendHex(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, b)
	return append(dst, '"')
}

// batchDomain starts every batch hash, so that it can never equal a row or
// seal hash.
const batchDomain = "otelaudit.batch.v1\n"

// BatchHasher computes a seal's BatchHash: SHA-256 over "otelaudit.batch.v1\n"
// followed by the 32-byte row hashes in seal position order.
type BatchHasher struct {
	h hash.Hash
	n int64
}

// NewBatchHasher returns an empty BatchHasher.
func NewBatchHasher() *BatchHasher {
	b := &BatchHasher{h: sha256.New()}
	b.h.Write([]byte(batchDomain))
	return b
}

// Add adds the next row hash.
func (b *BatchHasher) Add(rowHash []byte) {
	b.h.Write(rowHash)
	b.n++
}

// Count returns how many row hashes were added.
func (b *BatchHasher) Count() int64 { return b.n }

// Sum returns the batch hash.
func (b *BatchHasher) Sum() Hash {
	var out Hash
	b.h.Sum(out[:0])
	return out
}

// Reset empties the hasher.
func (b *BatchHasher) Reset() {
	b.h.Reset()
	b.h.Write([]byte(batchDomain))
	b.n = 0
}
