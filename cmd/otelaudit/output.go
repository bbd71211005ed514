package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

// rowWriter writes rows in one output format.
type rowWriter interface {
	Write(r *auditquery.Row) error
	// Flush writes what is buffered.
	Flush() error
	// Close flushes and writes the format's end (a JSON array's bracket).
	Close() error
}

func newRowWriter(format string, w io.Writer) rowWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch format {
	case "table":
		return newTableWriter(w)
	case "json":
		return &jsonWriter{w: bw, array: true}
	case "ocsf":
		return &jsonWriter{w: bw, ocsf: true, table: tableName(), version: productVersion()}
	case "csv":
		cw := csv.NewWriter(bw)
		return &csvWriter{bw: bw, w: cw}
	default: // jsonl
		return &jsonWriter{w: bw}
	}
}

// jsonWriter writes JSON Lines, a JSON array, or OCSF events as JSON Lines.
type jsonWriter struct {
	w       *bufio.Writer
	array   bool
	ocsf    bool
	table   string
	version string
	n       int
	buf     []byte
}

func (j *jsonWriter) Write(r *auditquery.Row) error {
	b := j.buf[:0]
	if j.array {
		if j.n == 0 {
			b = append(b, "[\n  "...)
		} else {
			b = append(b, ",\n  "...)
		}
	}
	j.n++
	if j.ocsf {
		b = r.AppendOCSF(b, j.version, j.table)
	} else {
		b = r.AppendJSON(b)
	}
	if !j.array {
		b = append(b, '\n')
	}
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

func (j *jsonWriter) Flush() error { return j.w.Flush() }

func (j *jsonWriter) Close() error {
	if j.array {
		s := "\n]\n"
		if j.n == 0 {
			s = "[]\n"
		}
		if _, err := j.w.WriteString(s); err != nil {
			return err
		}
	}
	return j.w.Flush()
}

type csvWriter struct {
	bw *bufio.Writer
	w  *csv.Writer
	// header is true once the header line is written (or when it must not
	// be: an export resumed into the same file).
	header bool
	rec    []string
}

func (c *csvWriter) Write(r *auditquery.Row) error {
	if !c.header {
		c.header = true
		if err := c.w.Write(auditquery.CSVHeader); err != nil {
			return err
		}
	}
	c.rec = r.CSVRecord(c.rec)
	return c.w.Write(c.rec)
}

func (c *csvWriter) Flush() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return err
	}
	return c.bw.Flush()
}

func (c *csvWriter) Close() error {
	if !c.header {
		c.header = true
		if err := c.w.Write(auditquery.CSVHeader); err != nil {
			return err
		}
	}
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// tableWriter is the human format: aligned columns, every value made safe
// for a terminal (control characters, escape sequences included, are shown
// quoted instead of interpreted).
type tableWriter struct {
	tw *tabwriter.Writer
	n  int
}

func newTableWriter(w io.Writer) *tableWriter {
	return &tableWriter{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

func (t *tableWriter) Write(r *auditquery.Row) error {
	if t.n == 0 {
		fmt.Fprintln(t.tw, "TIME\tSUBJECT\tROLE\tTOOL\tBACKEND\tSTATUS\tLATENCY\tREQUEST ID\tERROR")
	}
	t.n++
	_, err := fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%dms\t%s\t%s\n",
		r.Timestamp.UTC().Format("2006-01-02 15:04:05.000"), safe(r.Subject, 24), safe(r.Role, 20),
		safe(r.Tool, 32), safe(r.Backend, 20), safe(r.Status, 10), r.LatencyMS, r.RequestID,
		safe(derefStr(r.ErrorMessage), 60))
	return err
}

func (t *tableWriter) Flush() error { return t.tw.Flush() }

func (t *tableWriter) Close() error { return t.tw.Flush() }

func derefStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// safe makes s printable on a terminal in at most max runes: control and
// other non-printable characters (ESC, tabs, newlines, bidi overrides) are
// replaced by their Go escapes, and a longer value ends in "…".
func safe(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= max {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) && r != '\t' {
			b.WriteRune(r)
		} else {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		n++
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}
