package auditrow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// codecVersion is the first byte of an encoded batch.
const codecVersion = 1

// ErrCorrupt is returned by DecodeRows for bytes that are not an encoded
// batch.
var ErrCorrupt = errors.New("auditrow: corrupt encoded batch")

// AppendRows appends a compact binary encoding of rows to dst, for the
// spool. DecodeRows reverses it exactly.
func AppendRows(dst []byte, rows []Row) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	for i := range rows {
		r := &rows[i]
		dst = append(dst, r.RequestID[:]...)
		dst = binary.AppendVarint(dst, r.Timestamp.Unix())
		dst = binary.AppendUvarint(dst, uint64(r.Timestamp.Nanosecond()))
		for _, s := range [...]string{r.ClientSubject, r.ClientRole, r.ToolName, r.BackendName,
			r.ResponseStatus, r.ErrorMessage, r.TraceID, r.SpanID, r.ServiceName} {
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
		dst = binary.AppendVarint(dst, r.LatencyMS)
		dst = appendBytes(dst, r.RequestArgs)
		dst = appendBytes(dst, r.Attributes)
	}
	return dst
}

// appendBytes keeps nil apart from empty: length+1, 0 for nil.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// DecodeRows decodes a batch made by AppendRows. The rows' byte slices
// share b's memory.
func DecodeRows(b []byte) ([]Row, error) {
	d := decoder{b: b}
	if d.byte() != codecVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: row count", ErrCorrupt)
	}
	rows := make([]Row, n)
	for i := range rows {
		r := &rows[i]
		copy(r.RequestID[:], d.take(16))
		sec := d.varint()
		r.Timestamp = time.Unix(sec, int64(d.uvarint())).UTC()
		for _, s := range [...]*string{&r.ClientSubject, &r.ClientRole, &r.ToolName, &r.BackendName,
			&r.ResponseStatus, &r.ErrorMessage, &r.TraceID, &r.SpanID, &r.ServiceName} {
			*s = string(d.take(int(d.uvarint())))
		}
		r.LatencyMS = d.varint()
		r.RequestArgs = d.bytes()
		r.Attributes = d.bytes()
		if d.err != nil {
			return nil, fmt.Errorf("%w: row %d: %v", ErrCorrupt, i, d.err)
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return rows, nil
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("short input")

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errShort
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	if n-1 > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	return d.take(int(n - 1))
}
