package auditrow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The versions of the encoding, its first byte. Version 1 (up to the
// column table) wrote a fixed field order, [v1Columns]; version 2 names its
// columns in a header, so that a batch spooled before a column was added
// still decodes after (the new column is left zero).
const (
	codecV1      = 1
	codecV2      = 2
	codecVersion = codecV2
)

// v1Columns is the field order of a version 1 batch, by column name. It is
// frozen: files of that version exist on disk.
var v1Columns = []string{
	"request_id", "timestamp", "client_subject", "client_role", "tool_name", "backend_name",
	"response_status", "error_message", "trace_id", "span_id", "service_name",
	"latency_ms", "request_args", "attributes",
}

// ErrCorrupt is returned by DecodeRows for bytes that are not an encoded
// batch.
var ErrCorrupt = errors.New("auditrow: corrupt encoded batch")

// AppendRows appends a compact binary encoding of rows to dst, for the
// spool: a header naming the columns of [Columns] with their kinds, then
// each row's values in that order. DecodeRows reverses it exactly.
func AppendRows(dst []byte, rows []Row) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(len(Columns)))
	for i := range Columns {
		dst = binary.AppendUvarint(dst, uint64(len(Columns[i].Name)))
		dst = append(dst, Columns[i].Name...)
		dst = append(dst, byte(Columns[i].Kind))
	}
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	for i := range rows {
		r := &rows[i]
		for j := range Columns {
			dst = appendColumn(dst, &Columns[j], r)
		}
	}
	return dst
}

func appendColumn(dst []byte, c *Column, r *Row) []byte {
	switch c.Kind {
	case KindUUID:
		id := c.UUID(r)
		return append(dst, id[:]...)
	case KindTime:
		t := c.Time(r)
		dst = binary.AppendVarint(dst, t.Unix())
		return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
	case KindText, KindNullText:
		s := *c.Text(r)
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		return append(dst, s...)
	case KindInt64:
		return binary.AppendVarint(dst, *c.Int64(r))
	case KindJSON:
		return appendBytes(dst, *c.Bytes(r))
	}
	panic("auditrow: column " + c.Name + " has no kind") // a bug in Columns, caught by its tests
}

// appendBytes keeps nil apart from empty: length+1, 0 for nil.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// DecodeRows decodes a batch made by AppendRows, of this version or an
// earlier one. The rows' byte slices share b's memory.
func DecodeRows(b []byte) ([]Row, error) {
	d := decoder{b: b}
	var cols []*Column
	switch v := d.byte(); v {
	case codecV1:
		cols = make([]*Column, len(v1Columns))
		for i, name := range v1Columns {
			cols[i] = &Columns[ColumnIndex(name)]
		}
	case codecV2:
		n := d.uvarint()
		if d.err != nil || n > uint64(len(d.b)) {
			return nil, fmt.Errorf("%w: column count", ErrCorrupt)
		}
		cols = make([]*Column, n)
		for i := range cols {
			name := d.take(int(d.uvarint()))
			kind := Kind(d.byte())
			if d.err != nil {
				return nil, fmt.Errorf("%w: column header: %v", ErrCorrupt, d.err)
			}
			j := ColumnIndex(string(name))
			if j < 0 {
				return nil, fmt.Errorf("%w: unknown column %q (written by a newer version?)", ErrCorrupt, name)
			}
			if Columns[j].Kind != kind {
				return nil, fmt.Errorf("%w: column %q has kind %d, want %d", ErrCorrupt, name, kind, Columns[j].Kind)
			}
			cols[i] = &Columns[j]
		}
	default:
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, v)
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: row count", ErrCorrupt)
	}
	rows := make([]Row, n)
	for i := range rows {
		r := &rows[i]
		for _, c := range cols {
			d.column(c, r)
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: row %d: %v", ErrCorrupt, i, d.err)
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return rows, nil
}

func (d *decoder) column(c *Column, r *Row) {
	switch c.Kind {
	case KindUUID:
		copy(c.UUID(r)[:], d.take(16))
	case KindTime:
		sec := d.varint()
		*c.Time(r) = time.Unix(sec, int64(d.uvarint())).UTC()
	case KindText, KindNullText:
		*c.Text(r) = string(d.take(int(d.uvarint())))
	case KindInt64:
		*c.Int64(r) = d.varint()
	case KindJSON:
		*c.Bytes(r) = d.bytes()
	}
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
