package integrity_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestRowHashSurvivesPostgreSQL writes random rows, reads them back as
// PostgreSQL returns them (jsonb reorders keys, drops whitespace and
// duplicates, rewrites numbers and escapes; timestamps lose nanoseconds;
// empty nullable text becomes NULL) and recomputes every hash.
func TestRowHashSurvivesPostgreSQL(t *testing.T) {
	ctx := context.Background()
	_, pool := pgtest.NewMigratedPool(t)

	r := rand.New(rand.NewPCG(7, 11))
	const n = 2000
	rows := make([]auditrow.Row, n)
	want := make(map[uuid.UUID]integrity.Hash, n)
	for i := range rows {
		rows[i] = randomRow(r)
		want[rows[i].RequestID] = integrity.RowHash(&rows[i])
	}
	// Written as the writer writes them: pgx binary COPY of the same Go values.
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"audit_log"}, auditrow.ColumnNames(), pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		var vals []any
		for _, c := range auditrow.Columns {
			switch c.Kind {
			case auditrow.KindUUID:
				vals = append(vals, *c.UUID(&rows[i]))
			case auditrow.KindTime:
				vals = append(vals, *c.Time(&rows[i]))
			case auditrow.KindText:
				vals = append(vals, *c.Text(&rows[i]))
			case auditrow.KindNullText:
				s := *c.Text(&rows[i])
				vals = append(vals, pgtype.Text{String: s, Valid: s != ""})
			case auditrow.KindInt64:
				vals = append(vals, *c.Int64(&rows[i]))
			case auditrow.KindJSON:
				if b := *c.Bytes(&rows[i]); b != nil {
					vals = append(vals, b)
				} else {
					vals = append(vals, nil)
				}
			}
		}
		return vals, nil
	}))
	if err != nil {
		t.Fatal(err)
	}

	got, err := pool.Query(ctx, `SELECT `+strings.Join(quoted(auditrow.ColumnNames()), ", ")+` FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	count, changedJSON := 0, 0
	for got.Next() {
		var row auditrow.Row
		if err := integrity.ScanRow(got, &row); err != nil {
			t.Fatal(err)
		}
		count++
		orig := rows[indexOf(rows, row.RequestID)]
		if !bytes.Equal(orig.RequestArgs, row.RequestArgs) || !bytes.Equal(orig.Attributes, row.Attributes) {
			changedJSON++
		}
		if h := integrity.RowHash(&row); h != want[row.RequestID] {
			a, b := integrity.AppendCanonicalRow(nil, &orig), integrity.AppendCanonicalRow(nil, &row)
			t.Fatalf("row %s: hash differs after the round trip\nwritten: %s\nread:    %s", row.RequestID, a, b)
		}
	}
	if err := got.Err(); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("read %d rows, want %d", count, n)
	}
	// The test must be able to fail: PostgreSQL did rewrite most JSON.
	if changedJSON < n/2 {
		t.Fatalf("only %d of %d rows came back with different JSON bytes: the generator is too tame", changedJSON, n)
	}
	t.Logf("%d rows, %d with JSON rewritten by jsonb, every hash recomputed", n, changedJSON)
}

var rowIndex map[uuid.UUID]int

func indexOf(rows []auditrow.Row, id uuid.UUID) int {
	if rowIndex == nil {
		rowIndex = make(map[uuid.UUID]int, len(rows))
		for i := range rows {
			rowIndex[rows[i].RequestID] = i
		}
	}
	return rowIndex[id]
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

var textRunes = []rune("aZ09 _-\"\\/'%é€\u2028😀中\t\n\r\x01\x7f\ufffd")

func randomText(r *rand.Rand, max int) string {
	n := r.IntN(max + 1)
	var b strings.Builder
	for range n {
		b.WriteRune(textRunes[r.IntN(len(textRunes))])
	}
	return b.String()
}

func randomRow(r *rand.Rand) auditrow.Row {
	ts := time.Unix(r.Int64N(4e9), r.Int64N(1e9)) // nanoseconds: PostgreSQL keeps microseconds
	if r.IntN(10) == 0 {
		ts = time.Date(1970+r.IntN(200), 1, 1, 0, 0, 0, r.IntN(1e9), time.FixedZone("x", 3600*(r.IntN(24)-12)))
	}
	row := auditrow.Row{
		RequestID: uuid.New(), Timestamp: ts,
		ClientSubject: randomText(r, 12), ClientRole: randomText(r, 5), ToolName: randomText(r, 10),
		BackendName: randomText(r, 6), ResponseStatus: randomText(r, 4), ErrorMessage: randomText(r, 20),
		LatencyMS: r.Int64() - r.Int64(), TraceID: randomText(r, 2), SpanID: randomText(r, 1), ServiceName: randomText(r, 3),
	}
	if r.IntN(5) > 0 {
		row.RequestArgs = randomJSONText(r, 0, r.IntN(3) == 0)
	}
	if r.IntN(5) > 0 {
		var b bytes.Buffer
		b.WriteString(ws(r) + "{")
		n := r.IntN(5)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(ws(r) + jsonString(r, randomText(r, 6)) + ws(r) + ":" + ws(r))
			b.Write(randomJSONText(r, 1, false))
		}
		b.WriteString(ws(r) + "}")
		row.Attributes = b.Bytes()
	}
	return row
}

func ws(r *rand.Rand) string { return []string{"", "", " ", "\n\t ", "\r\n"}[r.IntN(5)] }

// jsonString writes s as a JSON string with arbitrary (valid) escaping.
func jsonString(r *rand.Rand, s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteString(`\` + string(c))
		case c < 0x20:
			b.WriteString(`\u00` + strconv.FormatInt(int64(c>>4), 16) + strconv.FormatInt(int64(c&15), 16))
		case c == '/' && r.IntN(2) == 0:
			b.WriteString(`\/`)
		case c > 0xffff && r.IntN(2) == 0:
			c -= 0x10000
			b.WriteString(`\u` + strconv.FormatInt(int64(0xd800+(c>>10)), 16) + `\u` + strconv.FormatInt(int64(0xdc00+(c&0x3ff)), 16))
		case c > 0x7f && c <= 0xffff && r.IntN(2) == 0:
			b.WriteString(`\u` + strings.ToUpper(strconv.FormatInt(int64(c+0x10000), 16)[1:]))
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func randomNumberText(r *rand.Rand) string {
	switch r.IntN(9) {
	case 0:
		return strconv.FormatInt(r.Int64N(1000)-500, 10)
	case 1:
		return strconv.FormatFloat(r.NormFloat64()*1e6, 'f', -1, 64)
	case 2:
		return strconv.FormatFloat(r.NormFloat64(), 'e', -1, 64)
	case 3:
		return "1.50" + strings.Repeat("0", r.IntN(3))
	case 4:
		return strconv.FormatUint(r.Uint64(), 10) + strconv.FormatUint(r.Uint64(), 10) // beyond a double
	case 5:
		return "-0" + []string{"", ".0", ".000", "e5"}[r.IntN(4)]
	case 6:
		return "1E" + strconv.Itoa(r.IntN(600)-300)
	case 7:
		return "123.456e-" + strconv.Itoa(r.IntN(20))
	default:
		return "9007199254740993"
	}
}

func randomJSONText(r *rand.Rand, depth int, deep bool) []byte {
	var b bytes.Buffer
	writeJSON(r, &b, depth, deep)
	return b.Bytes()
}

func writeJSON(r *rand.Rand, b *bytes.Buffer, depth int, deep bool) {
	k := r.IntN(10)
	if deep && depth < 30 {
		k = 6 + r.IntN(4)
	} else if depth > 5 {
		k = r.IntN(6)
	}
	b.WriteString(ws(r))
	switch k {
	case 0:
		b.WriteString("null")
	case 1:
		b.WriteString([]string{"true", "false"}[r.IntN(2)])
	case 2, 3:
		b.WriteString(jsonString(r, randomText(r, 8)))
	case 4, 5:
		b.WriteString(randomNumberText(r))
	case 6, 7:
		b.WriteString("[")
		n := r.IntN(4)
		if deep {
			n = 1
		}
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			writeJSON(r, b, depth+1, deep)
		}
		b.WriteString(ws(r) + "]")
	default:
		b.WriteString("{")
		n := r.IntN(5)
		if deep {
			n = 1 + r.IntN(2)
		}
		keys := []string{}
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			key := randomText(r, 5)
			if len(keys) > 0 && r.IntN(4) == 0 {
				key = keys[r.IntN(len(keys))] // a duplicate: jsonb keeps the last
			}
			keys = append(keys, key)
			b.WriteString(ws(r) + jsonString(r, key) + ws(r) + ":")
			writeJSON(r, b, depth+1, deep)
		}
		b.WriteString(ws(r) + "}")
	}
	b.WriteString(ws(r))
}
