package pgwriter_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// gen makes hostile values: oversized, with NUL bytes, invalid UTF-8 and
// multi-byte characters at every position.
type gen struct{ r *rand.Rand }

var pieces = []string{"a", "é", "€", "😀", "\x00", "\xff", "\xe2\x82", "\xc3", "\\u0000", `"`, "\\", "\n", " ", "[", "{"}

func (g gen) size() int {
	switch k := g.r.IntN(40); {
	case k < 5:
		return 0
	case k < 10:
		return g.r.IntN(16)
	case k < 15:
		return 250 + g.r.IntN(10) // around the field limit
	case k < 20:
		return 2600 + g.r.IntN(400) // around PostgreSQL's index row limit
	case k < 24:
		return 4090 + g.r.IntN(10) // around the error limit
	case k < 26:
		return 20000 + g.r.IntN(50000)
	case k == 26:
		return 600000 // the Mcp-Session-Id of the issue
	case k == 27:
		return 1<<20 + g.r.IntN(1<<19) // beyond the stored-arguments limit
	}
	return g.r.IntN(300)
}

func (g gen) str() string { return g.strN(g.size()) }

// strN returns about n bytes: random up to 1 KiB, a random 1 KiB repeated
// (and cut anywhere, possibly inside a UTF-8 sequence) beyond.
func (g gen) strN(n int) string {
	if n > 1024 {
		base := g.strN(1024)
		return strings.Repeat(base, n/len(base)+1)[:n]
	}
	var b strings.Builder
	for b.Len() < n {
		if g.r.IntN(4) == 0 {
			b.WriteString(pieces[g.r.IntN(len(pieces))])
		} else {
			b.WriteByte(byte('a' + g.r.IntN(26)))
		}
	}
	return b.String()
}

func (g gen) value(depth int) attribute.Value {
	switch k := g.r.IntN(10); {
	case k < 4 || depth > 60:
		return attribute.StringValue(g.str())
	case k == 4:
		return attribute.Int64Value(g.r.Int64())
	case k == 5:
		return attribute.Float64Value([]float64{g.r.NormFloat64(), 1e308, math.Copysign(0, -1)}[g.r.IntN(3)])
	case k == 6:
		return attribute.StringSliceValue([]string{g.str(), g.str()})
	case k == 7:
		return attribute.ByteSliceValue([]byte(g.str()))
	case k == 8:
		return attribute.SliceValue(g.value(depth+1+g.r.IntN(10)), g.value(depth+1))
	}
	return attribute.MapValue(attribute.KeyValue{Key: attribute.Key(g.str()), Value: g.value(depth + 1 + g.r.IntN(10))})
}

// jsonText is arguments as JSON text: valid, hostile or not JSON at all.
func (g gen) jsonText() string {
	switch g.r.IntN(6) {
	case 0:
		d := g.r.IntN(200)
		return strings.Repeat("[", d) + `"` + strings.ReplaceAll(strings.ReplaceAll(g.str(), `\`, `\\`), `"`, `\"`) + `"` + strings.Repeat("]", d)
	case 1:
		return `{"k":"\u0000\ud800` + strings.Repeat("x", g.size()) + `","n":12345678901234567890}`
	case 2:
		return g.str()
	case 3:
		return `{"a":` + strconv.Quote(g.str()) + `}`
	case 4:
		d := g.r.IntN(200)
		return strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d)
	}
	return `"` + strings.Repeat("b", g.size()) + `"`
}

func (g gen) maybe(kv attribute.KeyValue) []attribute.KeyValue {
	if g.r.IntN(8) == 0 {
		return nil // missing
	}
	if g.r.IntN(6) == 0 {
		kv.Value = g.value(1) // wrong type
	}
	return []attribute.KeyValue{kv}
}

func (g gen) record() auditrow.Record {
	var attrs []attribute.KeyValue
	add := func(kvs []attribute.KeyValue) { attrs = append(attrs, kvs...) }
	switch g.r.IntN(3) {
	case 0:
		add(g.maybe(otelaudit.RequestIDKey.String(g.str())))
	case 1:
		add([]attribute.KeyValue{otelaudit.RequestIDKey.String(uuid.NewString())})
	}
	add(g.maybe(otelaudit.UserIDKey.String(g.str())))
	add(g.maybe(otelaudit.UserRolesKey.StringSlice([]string{g.str(), g.str()})))
	add(g.maybe(otelaudit.ToolNameKey.String(g.str())))
	add(g.maybe(otelaudit.BackendNameKey.String(g.str())))
	add(g.maybe(otelaudit.ResponseStatusKey.String(g.str())))
	add(g.maybe(otelaudit.ErrorMessageKey.String(g.str())))
	add(g.maybe(otelaudit.LatencyMSKey.String(g.str())))
	add(g.maybe(otelaudit.MCPMethodNameKey.String(g.str())))
	add(g.maybe(otelaudit.MCPSessionIDKey.String(g.str())))
	add(g.maybe(otelaudit.JSONRPCRequestIDKey.String(g.str())))
	if g.r.IntN(2) == 0 {
		add(g.maybe(otelaudit.ToolCallArgumentsKey.String(g.jsonText())))
	} else {
		add(g.maybe(attribute.KeyValue{Key: otelaudit.ToolCallArgumentsKey, Value: g.value(1)}))
	}
	for range g.r.IntN(4) {
		attrs = append(attrs, attribute.KeyValue{Key: attribute.Key(g.str()), Value: g.value(1)})
	}
	var tid trace.TraceID
	var sid trace.SpanID
	for i := range tid {
		tid[i] = byte(g.r.Uint32())
	}
	for i := range sid {
		sid[i] = byte(g.r.Uint32())
	}
	times := []time.Time{{}, time.Unix(g.r.Int64N(1<<40)-1<<39, 0), time.Unix(g.r.Int64(), g.r.Int64()), time.Now()}
	rec := auditrow.Record{
		Timestamp: times[g.r.IntN(len(times))], ObservedTimestamp: times[g.r.IntN(len(times))],
		TraceID: tid, SpanID: sid, EventName: otelaudit.EventName, ServiceName: g.str(), Attributes: attrs,
	}
	if g.r.IntN(3) == 0 {
		rec.Body = g.value(1)
	}
	return rec
}

// TestNoRowRefusedForItsSize is the property of issue 9.1: whatever
// oversized or malformed values a record carries in any column (NUL bytes,
// invalid UTF-8, wrong types, deep nesting, megabytes), the mapped row is
// stored by the real writer in audit_log and none goes to the reject table.
// The seed is logged; OTELAUDIT_PROPERTY_SEED replays one.
func TestNoRowRefusedForItsSize(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OTELAUDIT_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (OTELAUDIT_PROPERTY_SEED=%d replays it)", seed, seed)
	g := gen{rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	w, pool := newWriter(t, "audit_log")
	ctx := context.Background()
	const batches, perBatch = 6, 40
	total := 0
	for b := range batches {
		recs := make([]auditrow.Record, perBatch)
		for i := range recs {
			recs[i] = g.record()
		}
		var m auditrow.Mapper
		rows, _ := m.MapAll(nil, recs)
		res, err := w.Write(ctx, rows)

		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		if res.Rejected != 0 || res.Inserted+res.Duplicates != len(rows) {
			t.Fatalf("batch %d: %+v, want all %d rows inserted and none rejected", b, res, len(rows))
		}
		total += res.Inserted
	}
	if n := count(t, pool, "audit_log"); n != total || total < batches*perBatch*9/10 {
		t.Errorf("audit_log has %d rows, %d inserted of %d records", n, total, batches*perBatch)
	}
	if n := count(t, pool, "audit_log_rejects"); n != 0 {
		t.Errorf("reject table has %d rows", n)
	}
}
