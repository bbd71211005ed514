package exporter_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit"
)

// row is what a test reads back from audit_log.
type row struct {
	ID       uuid.UUID
	Subject  string
	Role     string
	Tool     string
	Backend  string
	Args     *string
	Status   string
	ErrMsg   *string
	Latency  int64
	Attrs    map[string]any
	TraceID  *string
	Service  *string
	Stamp    time.Time
	ArgsJSON any
}

func readRows(t *testing.T, url string) map[string]row {
	t.Helper()
	conn := connect(t, url)
	rows, err := conn.Query(context.Background(), `SELECT request_id, client_subject, client_role, tool_name, backend_name,
		request_args::text, response_status, error_message, latency_ms, attributes::text, trace_id, service_name, "timestamp" FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]row{}
	for rows.Next() {
		var r row
		var attrs *string
		if err := rows.Scan(&r.ID, &r.Subject, &r.Role, &r.Tool, &r.Backend, &r.Args, &r.Status, &r.ErrMsg, &r.Latency, &attrs, &r.TraceID, &r.Service, &r.Stamp); err != nil {
			t.Fatal(err)
		}
		if attrs != nil {
			if err := json.Unmarshal([]byte(*attrs), &r.Attrs); err != nil {
				t.Fatal(err)
			}
		}
		if r.Args != nil {
			if err := json.Unmarshal([]byte(*r.Args), &r.ArgsJSON); err != nil {
				t.Fatal(err)
			}
		}
		// Key rows by tool name: every case below uses its own.
		out[r.Tool] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// record makes an SDK record the way a LoggerProvider does (a zero
// sdklog.Record keeps no attributes).
func record(attrs ...attribute.KeyValue) sdklog.Record {
	var c collect
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(&c))
	var r log.Record
	r.SetEventName(otelaudit.EventName)
	r.SetTimestamp(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	r.AddAttributes(attrs...)
	lp.Logger("test").Emit(context.Background(), r)
	return c.records[0]
}

// collect is a processor that keeps clones of the records emitted.
type collect struct{ records []sdklog.Record }

func (c *collect) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *collect) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *collect) Shutdown(context.Context) error                         { return nil }
func (c *collect) ForceFlush(context.Context) error                       { return nil }

// base is a complete call with the given tool name and id; more attributes
// override earlier ones.
func base(tool string, more ...attribute.KeyValue) []attribute.KeyValue {
	return append([]attribute.KeyValue{
		otelaudit.RequestIDKey.String(uuid.NewString()),
		otelaudit.UserIDKey.String("alice"),
		otelaudit.UserRolesKey.StringSlice([]string{"admin"}),
		otelaudit.ToolNameKey.String(tool),
		otelaudit.BackendNameKey.String("demo"),
		otelaudit.ResponseStatusKey.String("ok"),
		otelaudit.LatencyMSKey.Int64(5),
	}, more...)
}

func issues(r row) string {
	b, _ := json.Marshal(r.Attrs["otelaudit.mapping.issues"])
	return string(b)
}

func TestBadInputLandsWithTheRestOfItsBatch(t *testing.T) {
	t.Parallel()
	exp, url := newExporter(t)
	ctx := context.Background()

	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	huge := `{"blob":"` + strings.Repeat("x", 3<<20) + `"}`
	noID := []attribute.KeyValue{
		otelaudit.UserIDKey.String("bob"), otelaudit.UserRolesKey.StringSlice([]string{"dev"}),
		otelaudit.ToolNameKey.String("no-id"), otelaudit.BackendNameKey.String("demo"),
		otelaudit.ResponseStatusKey.String("ok"), otelaudit.LatencyMSKey.Int64(1),
	}
	noID2 := append(append([]attribute.KeyValue{}, noID[:2]...), otelaudit.ToolNameKey.String("no-id-2"))
	noID2 = append(noID2, noID[3:]...)

	batch := []sdklog.Record{
		record(base("good-1")...),
		record(base("nul-subject", otelaudit.UserIDKey.String("ali\x00ce"))...),
		record(base("bad\xffutf8")...),
		record(base("args-json-nul", otelaudit.ToolCallArgumentsKey.String(`{"a":"x\u0000y"}`))...),
		record(base("args-map-nul", otelaudit.ToolCallArgumentsKey.Map(attribute.String("k", "v\x00"), attribute.String("bad", "\xfe")))...),
		record(base("args-invalid", otelaudit.ToolCallArgumentsKey.String(`not json {`))...),
		record(base("args-scalar", otelaudit.ToolCallArgumentsKey.Int(42))...),
		record(base("args-huge", otelaudit.ToolCallArgumentsKey.String(huge))...),
		record(base("args-deep", otelaudit.ToolCallArgumentsKey.String(deep))...),
		record(base("args-surrogate", otelaudit.ToolCallArgumentsKey.String(`{"a":"\ud800"}`))...),
		record(base("args-bad-utf8", otelaudit.ToolCallArgumentsKey.String("{\"a\":\"\xff\"}"))...),
		record(noID...),
		record(noID...), // the same record again: a replay, must not add a row
		record(noID2...),
		record(base("not-uuid", otelaudit.RequestIDKey.String("req-123"))...),
		record(otelaudit.ToolNameKey.String("only-tool")),
		record(base("types", otelaudit.UserIDKey.Int(42), otelaudit.LatencyMSKey.String("15"),
			otelaudit.UserRolesKey.String("admin,ops"), attribute.Float64("score", nanValue()))...),
		record(base("postgres-refuses", otelaudit.ToolCallArgumentsKey.String(`{"n": 1e1000000}`))...),
		record(base("good-2")...),
	}
	if err := exp.Export(ctx, batch); err != nil {
		t.Fatalf("Export: %v", err)
	}
	got := readRows(t, url)

	wantTools := []string{"good-1", "nul-subject", "bad\uFFFDutf8", "args-json-nul", "args-map-nul", "args-invalid",
		"args-scalar", "args-huge", "args-deep", "args-surrogate", "args-bad-utf8", "no-id", "no-id-2", "not-uuid",
		"only-tool", "types", "good-2"}
	if len(got) != len(wantTools) {
		t.Errorf("rows = %d, want %d", len(got), len(wantTools))
	}
	var total int
	if err := connect(t, url).QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&total); err != nil || total != len(wantTools) {
		t.Errorf("count(*) = %d (%v), want %d", total, err, len(wantTools))
	}
	for _, tool := range wantTools {
		if _, ok := got[tool]; !ok {
			t.Errorf("no row for %q", tool)
		}
	}
	st := exp.Stats()
	if st.Written != int64(len(wantTools)) || st.Duplicates != 1 || st.Rejected != 1 {
		t.Errorf("stats = %+v, want %d written, 1 duplicate, 1 rejected", st, len(wantTools))
	}

	if r := got["nul-subject"]; r.Subject != "ali\uFFFDce" || !strings.Contains(issues(r), "user.id: NUL bytes") {
		t.Errorf("nul-subject: subject %q issues %s", r.Subject, issues(r))
	} else if raw := r.Attrs["otelaudit.mapping.raw"].(map[string]any)["user.id"]; raw != "YWxpAGNl" {
		t.Errorf("nul-subject: raw = %v, want base64 of the raw value", raw)
	}
	if r := got["args-json-nul"]; *r.Args != "{\"a\": \"x\uFFFDy\"}" {
		t.Errorf("args-json-nul: args %s", *r.Args)
	}
	if r := got["args-map-nul"]; *r.Args != "{\"k\": \"v\uFFFD\", \"bad\": \"\uFFFD\"}" {
		t.Errorf("args-map-nul: args %s", *r.Args)
	}
	if r := got["args-invalid"]; r.ArgsJSON != "not json {" || !strings.Contains(issues(r), "not valid JSON") {
		t.Errorf("args-invalid: args %v issues %s", r.ArgsJSON, issues(r))
	}
	if r := got["args-scalar"]; *r.Args != "42" {
		t.Errorf("args-scalar: args %s", *r.Args)
	}
	if r := got["args-huge"]; !strings.Contains(*r.Args, `"otelaudit.size": 3145739`) || !strings.Contains(*r.Args, `"otelaudit.sha256"`) {
		t.Errorf("args-huge: args %s", *r.Args)
	}
	// One depth limit everywhere: arrays below otelaudit.MaxJSONDepth are
	// replaced by otelaudit.DepthLimitValue (its "[" counts once more).
	if r := got["args-deep"]; r.Args == nil || !strings.Contains(*r.Args, otelaudit.DepthLimitValue) ||
		strings.Count(*r.Args, "[") != otelaudit.MaxJSONDepth+1 || !strings.Contains(issues(r), "deeper than") {
		t.Errorf("args-deep: args %v, issues %s", r.Args, issues(r))
	}
	if r := got["args-surrogate"]; *r.Args != "{\"a\": \"\uFFFD\"}" {
		t.Errorf("args-surrogate: args %s", *r.Args)
	}
	if r := got["args-bad-utf8"]; *r.Args != "{\"a\": \"\uFFFD\"}" {
		t.Errorf("args-bad-utf8: args %s", *r.Args)
	}
	if a, b := got["no-id"], got["no-id-2"]; a.ID == b.ID || a.ID == uuid.Nil || !strings.Contains(issues(a), "derived") {
		t.Errorf("derived ids: %s %s, issues %s", a.ID, b.ID, issues(a))
	}
	if r := got["not-uuid"]; r.ID != uuid.NewSHA1(uuid.MustParse("6f1d3c2e-8a4b-5c7d-9e0f-a1b2c3d4e5f6"), []byte("req-123")) ||
		r.Attrs["otelaudit.mapping.raw"].(map[string]any)["otelaudit.request.id"] != "req-123" {
		t.Errorf("not-uuid: id %s attrs %v", r.ID, r.Attrs)
	}
	if r := got["only-tool"]; r.Subject != "unknown" || r.Role != "unknown" || r.Backend != "unknown" || r.Status != "unknown" {
		t.Errorf("only-tool: %+v", r)
	} else {
		missing, _ := json.Marshal(r.Attrs["otelaudit.mapping.missing"])
		if string(missing) != `["user.id","user.roles","otelaudit.backend.name","otelaudit.response.status","otelaudit.latency_ms","otelaudit.request.id"]` {
			t.Errorf("only-tool: missing %s", missing)
		}
	}
	if r := got["types"]; r.Subject != "42" || r.Latency != 15 || r.Role != "admin,ops" || r.Attrs["score"] != "NaN" {
		t.Errorf("types: %+v", r)
	}

	// The row PostgreSQL refused is in the reject table with its error.
	conn := connect(t, url)
	var n int
	var msg, payload string
	if err := conn.QueryRow(ctx, `SELECT count(*) OVER (), error, convert_from(payload, 'UTF8') FROM audit_log_rejects`).Scan(&n, &msg, &payload); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !strings.HasPrefix(msg, "22003") || !strings.Contains(payload, `"tool_name":"postgres-refuses"`) {
		t.Errorf("rejects: n=%d msg=%q payload=%s", n, msg, payload)
	}

	// Exporting the whole batch again (a replay) writes nothing new: every
	// record maps to the id it had, the ones derived for records without
	// a request id included, so each is a duplicate. The refused row is
	// refused again and stored again: the reject table is a log.
	if err := exp.Export(ctx, batch); err != nil {
		t.Fatalf("replay: %v", err)
	}
	var again int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&again); err != nil || again != total {
		t.Errorf("after replay: count(*) = %d (%v), want %d", again, err, total)
	}
	st2 := exp.Stats()
	if wantDup := st.Duplicates + int64(len(batch)) - 1; st2.Written != st.Written || st2.Duplicates != wantDup || st2.Rejected != 2 {
		t.Errorf("after replay: stats %+v, want %d written (unchanged), %d duplicates, 2 rejected", st2, st.Written, wantDup)
	}
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}
