package integrity

import (
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// HashSize is the size of every hash of the trail (SHA-256).
const HashSize = sha256.Size

// Hash is a SHA-256 hash of a row, a batch or a seal.
type Hash = [HashSize]byte

// RowVersion is the version of the canonical row form, the "v" member of
// the hashed document. A change of the form needs a new version, and
// verification keeps computing the old ones.
const RowVersion = 1

// TimeLayout is how timestamps appear in canonical documents: UTC with
// microseconds, the precision PostgreSQL stores.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// CanonicalTime returns t as PostgreSQL stores it: truncated to the
// microsecond (as pgx encodes a time.Time), in UTC.
func CanonicalTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// AppendCanonicalRow appends the canonical document of r to dst: an RFC
// 8785 object of every audit column of the row (see [auditrow.Columns]),
// named by column, with "v" set to [RowVersion]. Nullable columns that hold
// their NULL value ("" or nil) are null; JSON columns are in the form of
// [AppendCanonicalJSON]; the timestamp is [CanonicalTime] in [TimeLayout];
// integers are exact decimals. The document is the same for the row the
// mapping produced and for the row as PostgreSQL returns it.
func AppendCanonicalRow(dst []byte, r *auditrow.Row) []byte {
	var p parser
	return appendCanonicalRow(dst, r, &p)
}

func appendCanonicalRow(dst []byte, r *auditrow.Row, p *parser) []byte {
	dst = append(dst, '{')
	for i, c := range canonicalColumns {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, c.Name)
		dst = append(dst, ':')
		switch c.Kind {
		case auditrow.KindUUID:
			dst = append(dst, '"')
			var u [36]byte
			encodeUUID(u[:], *c.UUID(r))
			dst = append(dst, u[:]...)
			dst = append(dst, '"')
		case auditrow.KindTime:
			dst = append(dst, '"')
			dst = CanonicalTime(*c.Time(r)).AppendFormat(dst, TimeLayout)
			dst = append(dst, '"')
		case auditrow.KindText:
			dst = appendString(dst, *c.Text(r))
		case auditrow.KindNullText:
			if s := *c.Text(r); s != "" {
				dst = appendString(dst, s)
			} else {
				dst = append(dst, "null"...)
			}
		case auditrow.KindInt64:
			dst = strconv.AppendInt(dst, *c.Int64(r), 10)
		case auditrow.KindJSON:
			if b := *c.Bytes(r); len(b) > 0 {
				dst, _ = p.appendCanonical(dst, b)
			} else {
				dst = append(dst, "null"...)
			}
		default:
			dst = append(dst, "null"...)
		}
	}
	dst = append(dst, `,"v":`...)
	dst = strconv.AppendInt(dst, RowVersion, 10)
	return append(dst, '}')
}

// RowHasher computes row hashes, reusing its buffer. It is not safe for
// concurrent use; its zero value is ready.
type RowHasher struct {
	buf []byte
	p   parser
}

// Hash returns the SHA-256 hash of r's canonical document.
func (h *RowHasher) Hash(r *auditrow.Row) Hash {
	h.buf = appendCanonicalRow(h.buf[:0], r, &h.p)
	return sha256.Sum256(h.buf)
}

// RowHash returns the SHA-256 hash of r's canonical document (see
// [AppendCanonicalRow]).
func RowHash(r *auditrow.Row) Hash {
	var h RowHasher
	return h.Hash(r)
}

// HashedColumns names the audit columns in the canonical row document of
// [RowVersion] 1, in document (name) order. A column added to the audit
// table later is not hashed by this version: adding one to the hash means a
// new RowVersion (a test fails when auditrow.Columns holds a column that is
// neither here nor in [SealColumns]).
var HashedColumns = []string{
	"attributes", "backend_name", "client_role", "client_subject", "error_message",
	"latency_ms", "request_args", "request_id", "response_status", "service_name",
	"span_id", "timestamp", "tool_name", "trace_id",
}

// canonicalColumns are the auditrow.Columns named by HashedColumns, in that
// order (names are ASCII, and "v" sorts after all of them).
var canonicalColumns = func() []auditrow.Column {
	cols := make([]auditrow.Column, 0, len(HashedColumns))
	for _, name := range HashedColumns {
		i := auditrow.ColumnIndex(name)
		if i < 0 {
			continue // TestHashedColumns fails
		}
		cols = append(cols, auditrow.Columns[i])
	}
	return cols
}()

func encodeUUID(dst []byte, u [16]byte) {
	const hexd = "0123456789abcdef"
	j := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hexd[b>>4], hexd[b&15]
		j += 2
	}
}
