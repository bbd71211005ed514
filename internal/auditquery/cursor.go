package auditquery

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cursor is a position in the keyset order ("timestamp", id). Its printed
// form, "<microseconds since 1970>-<id>" (for example
// 1764590400123456-81723), is what commands print and accept to resume.
type Cursor struct {
	Time time.Time
	ID   int64
}

// IsZero reports whether c is the zero Cursor (no position).
func (c Cursor) IsZero() bool { return c.Time.IsZero() && c.ID == 0 }

// String returns the printable form of c.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return strconv.FormatInt(c.Time.UnixMicro(), 10) + "-" + strconv.FormatInt(c.ID, 10)
}

// ParseCursor reads a cursor printed by [Cursor.String].
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return Cursor{}, fmt.Errorf("auditquery: cursor %q: want <microseconds>-<id>", s)
	}
	us, err1 := strconv.ParseInt(s[:i], 10, 64)
	id, err2 := strconv.ParseInt(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return Cursor{}, fmt.Errorf("auditquery: cursor %q: want <microseconds>-<id>", s)
	}
	return Cursor{Time: time.UnixMicro(us).UTC(), ID: id}, nil
}
