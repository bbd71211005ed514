package auditrow

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

func sampleRecord() Record {
	return Record{
		Timestamp:   time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		EventName:   otelaudit.EventName,
		ServiceName: "gateway",
		Attributes: []attribute.KeyValue{
			otelaudit.RequestIDKey.String(uuid.NewString()),
			otelaudit.UserIDKey.String("alice@example.com"),
			otelaudit.UserRolesKey.StringSlice([]string{"admin"}),
			otelaudit.ToolNameKey.String("search_docs"),
			otelaudit.BackendNameKey.String("docs"),
			otelaudit.ToolCallArgumentsKey.Map(attribute.String("query", "quarterly report"), attribute.Int("limit", 10), attribute.Bool("fuzzy", true)),
			otelaudit.ResponseStatusKey.String("ok"),
			otelaudit.LatencyMSKey.Int64(12),
			otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool),
			otelaudit.MCPMethodNameKey.String(otelaudit.MethodToolsCall),
			otelaudit.MCPSessionIDKey.String("3f1c2a9e-session"),
			otelaudit.JSONRPCRequestIDKey.String("42"),
		},
	}
}

func TestMapWellFormed(t *testing.T) {
	rec := sampleRecord()
	var m Mapper
	r := m.Map(&rec)
	if r.ClientSubject != "alice@example.com" || r.ClientRole != "admin" || r.ToolName != "search_docs" ||
		r.BackendName != "docs" || r.ResponseStatus != "ok" || r.LatencyMS != 12 || r.ServiceName != "gateway" {
		t.Errorf("row = %+v", r)
	}
	if got, want := string(r.RequestArgs), `{"fuzzy":true,"limit":10,"query":"quarterly report"}`; got != want {
		t.Errorf("args = %s, want %s", got, want)
	}
	if got, want := string(r.Attributes), `{"gen_ai.operation.name":"execute_tool","mcp.method.name":"tools/call","mcp.session.id":"3f1c2a9e-session","jsonrpc.request.id":"42"}`; got != want {
		t.Errorf("attributes = %s, want %s", got, want)
	}
	if r.TraceID != "" || r.SpanID != "" {
		t.Errorf("trace/span ids without a span context: %q %q", r.TraceID, r.SpanID)
	}
}

func TestMapAllSkipsOtherEvents(t *testing.T) {
	recs := []Record{sampleRecord(), {EventName: "app.log"}, {}, sampleRecord()}
	var m Mapper
	rows, skipped := m.MapAll(nil, recs)
	if len(rows) != 2 || skipped != 2 {
		t.Errorf("rows = %d skipped = %d, want 2 and 2", len(rows), skipped)
	}
}

func TestAppendString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        `"plain"`,
		"q\"b\\":       `"q\"b\\"`,
		"nl\n\t\r\x01": `"nl\n\t\r\u0001"`,
		"nul\x00":      `"nul\ufffd"`,
		"bad\xff":      `"bad\ufffd"`,
		"é€😀":          `"é€😀"`,
	} {
		got, _ := appendString(nil, in)
		if string(got) != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	for in, want := range map[string]jsonVerdict{
		`{"a":1}`:              jsonOK,
		`"s"`:                  jsonOK,
		`{"a":"\\u0000"}`:      jsonOK, // an escaped backslash, then text
		`{"a":"\u0000"}`:       jsonRewrite,
		`{"a":"\uD83D\uDE00"}`: jsonRewrite,
		"{\"a\":\"\xff\"}":     jsonRewrite,
		`{"a":`:                jsonInvalid,
		"":                     jsonInvalid,
		"\xff":                 jsonInvalid,
		`[[[[]]]]`:             jsonOK,
	} {
		if got := checkJSON([]byte(in)); got != want {
			t.Errorf("checkJSON(%q) = %d, want %d", in, got, want)
		}
	}
}

func BenchmarkMap(b *testing.B) {
	recs := make([]Record, 512)
	for i := range recs {
		recs[i] = sampleRecord()
	}
	var m Mapper
	rows := make([]Row, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		m.Reset()
		rows, _ = m.MapAll(rows[:0], recs)
	}
	b.ReportMetric(float64(b.N*512)/b.Elapsed().Seconds(), "rows/s")
}
