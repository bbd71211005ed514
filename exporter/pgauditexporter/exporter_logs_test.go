package pgauditexporter

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
	"github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter/internal/metadata"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// The component's metric names, as metadata.yaml declares them (the
// generated internal/metadata creates them; these are what operators see).
const (
	metricSkipped    = "otelcol_exporter_pgaudit_records_skipped"
	metricInserted   = "otelcol_exporter_pgaudit_rows_inserted"
	metricDuplicates = "otelcol_exporter_pgaudit_rows_duplicate"
	metricRejected   = "otelcol_exporter_pgaudit_rows_rejected"
)

// testConfig returns a config for url without queue and retries, so that
// ConsumeLogs reports the outcome of one write.
func testConfig(url string) *Config {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.DatabaseURL = configopaque.String(url)
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.BackOffConfig.Enabled = false
	return cfg
}

// newTestExporter creates and starts the exporter through its factory.
func newTestExporter(t *testing.T, cfg *Config) (exporter.Logs, *componenttest.Telemetry) {
	t.Helper()
	return newTestExporterLogger(t, cfg, zap.NewNop())
}

// newTestExporterLogger is newTestExporter with the component logging to
// logger.
func newTestExporterLogger(t *testing.T, cfg *Config, logger *zap.Logger) (exporter.Logs, *componenttest.Telemetry) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tt.NewTelemetrySettings()
	set.Logger = logger
	exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := exp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return exp, tt
}

// auditLogs returns ld with n audit records (request ids from ids) and one
// application log, under a resource with service.name "gw".
func auditLogs(ids []uuid.UUID) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "gw")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	ts := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	for i, id := range ids {
		lr := lrs.AppendEmpty()
		lr.SetEventName(otelaudit.EventName)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ts.Add(time.Duration(i) * time.Millisecond)))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(ts.Add(time.Second)))
		lr.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		lr.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
		a := lr.Attributes()
		a.PutStr(string(otelaudit.RequestIDKey), id.String())
		a.PutStr(string(otelaudit.UserIDKey), "alice")
		roles := a.PutEmptySlice(string(otelaudit.UserRolesKey))
		roles.AppendEmpty().SetStr("admin")
		roles.AppendEmpty().SetStr("ops")
		a.PutStr(string(otelaudit.ToolNameKey), "echo")
		a.PutStr(string(otelaudit.BackendNameKey), "demo")
		args := a.PutEmptyMap(string(otelaudit.ToolCallArgumentsKey))
		args.PutStr("text", "hi")
		args.PutInt("n", int64(i))
		args.PutDouble("f", 1.5)
		args.PutBool("b", true)
		args.PutEmptySlice("list").AppendEmpty().SetStr("x")
		a.PutStr(string(otelaudit.ResponseStatusKey), string(otelaudit.StatusOK))
		a.PutInt(string(otelaudit.LatencyMSKey), 12)
		a.PutStr(string(otelaudit.GenAIOperationNameKey), otelaudit.OperationExecuteTool)
		a.PutStr(string(otelaudit.MCPMethodNameKey), otelaudit.MethodToolsCall)
		a.PutEmptyBytes("raw").FromRaw([]byte{0, 1, 2})
	}
	app := lrs.AppendEmpty()
	app.Body().SetStr("application log, not an audit event")
	return ld
}

func newIDs(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	return ids
}

func sumMetric(t *testing.T, tt *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tt.GetMetric(name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s: %T, want a Sum[int64]", name, m.Data)
	}
	var n int64
	for _, dp := range sum.DataPoints {
		n += dp.Value
	}
	return n
}

func TestExporterWritesRows(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	exp, tt := newTestExporter(t, testConfig(url))
	ctx := context.Background()
	ids := newIDs(3)
	if err := exp.ConsumeLogs(ctx, auditLogs(ids)); err != nil {
		t.Fatal(err)
	}

	conn := pgtest.Connect(t, url)
	rows, err := conn.Query(ctx, `SELECT request_id, timestamp, client_subject, client_role, tool_name, backend_name,
		request_args::text, response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes::text
		FROM audit_log ORDER BY timestamp`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			id                                       uuid.UUID
			ts                                       time.Time
			subject, role, tool, backend, args, stat string
			errMsg                                   *string
			latency                                  int64
			traceID, spanID, service, attrs          string
		)
		if err := rows.Scan(&id, &ts, &subject, &role, &tool, &backend, &args, &stat, &errMsg, &latency, &traceID, &spanID, &service, &attrs); err != nil {
			t.Fatal(err)
		}
		if id != ids[n] {
			t.Errorf("row %d: request_id %s, want %s", n, id, ids[n])
		}
		want := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC).Add(time.Duration(n) * time.Millisecond)
		if !ts.Equal(want) {
			t.Errorf("row %d: timestamp %s, want %s", n, ts, want)
		}
		if subject != "alice" || role != "admin,ops" || tool != "echo" || backend != "demo" || stat != "ok" || errMsg != nil || latency != 12 {
			t.Errorf("row %d: columns %q %q %q %q %q %v %d", n, subject, role, tool, backend, stat, errMsg, latency)
		}
		if traceID != "0102030405060708090a0b0c0d0e0f10" || spanID != "0102030405060708" || service != "gw" {
			t.Errorf("row %d: trace %s span %s service %s", n, traceID, spanID, service)
		}
		var gotArgs map[string]any
		if err := json.Unmarshal([]byte(args), &gotArgs); err != nil {
			t.Fatal(err)
		}
		wantArgs := map[string]any{"text": "hi", "n": float64(n), "f": 1.5, "b": true, "list": []any{"x"}}
		if fmt.Sprint(gotArgs) != fmt.Sprint(wantArgs) {
			t.Errorf("row %d: request_args %s", n, args)
		}
		var gotAttrs map[string]any
		if err := json.Unmarshal([]byte(attrs), &gotAttrs); err != nil {
			t.Fatal(err)
		}
		if gotAttrs["mcp.method.name"] != "tools/call" || gotAttrs["gen_ai.operation.name"] != "execute_tool" || gotAttrs["raw"] != "AAEC" {
			t.Errorf("row %d: attributes %s", n, attrs)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(ids) {
		t.Fatalf("%d rows, want %d", n, len(ids))
	}
	if got := sumMetric(t, tt, metricInserted); got != 3 {
		t.Errorf("%s = %d, want 3", metricInserted, got)
	}
	if got := sumMetric(t, tt, metricSkipped); got != 1 {
		t.Errorf("%s = %d, want 1 (the application log)", metricSkipped, got)
	}

	// A replay of the same batch (a retry, or the persistent queue after a
	// crash) leaves each row once.
	if err := exp.ConsumeLogs(ctx, auditLogs(ids)); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 3 {
		t.Fatalf("after replay: %d rows, want 3", count)
	}
	if got := sumMetric(t, tt, metricDuplicates); got != 3 {
		t.Errorf("%s = %d, want 3", metricDuplicates, got)
	}
}

func TestExporterSkipsOnlyNonAudit(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	exp, tt := newTestExporter(t, testConfig(url))
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for range 5 {
		lr := lrs.AppendEmpty()
		lr.SetEventName("some.other.event")
		lr.Attributes().PutStr(string(otelaudit.ToolNameKey), "echo")
	}
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	if got := sumMetric(t, tt, metricSkipped); got != 5 {
		t.Fatalf("%s = %d, want 5", metricSkipped, got)
	}
	var count int
	if err := pgtest.Connect(t, url).QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 0 {
		t.Fatalf("%d rows, want 0", count)
	}
}

// A record the mapping must sanitise still lands, with what was changed in
// its attributes; a batch is never failed by one bad record.
func TestExporterSanitisesBadRecord(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	exp, _ := newTestExporter(t, testConfig(url))
	ids := newIDs(4)
	ld := auditLogs(ids)
	bad := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(2).Attributes()
	bad.PutStr(string(otelaudit.UserIDKey), "al\x00ice\xff")
	bad.PutStr(string(otelaudit.ToolCallArgumentsKey), "{not json")
	bad.Remove(string(otelaudit.BackendNameKey))
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, url)
	var count int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 4 {
		t.Fatalf("%d rows, want 4", count)
	}
	var subject, backend, issues string
	if err := conn.QueryRow(context.Background(),
		"SELECT client_subject, backend_name, attributes->>'otelaudit.mapping.issues' FROM audit_log WHERE request_id=$1", ids[2]).
		Scan(&subject, &backend, &issues); err != nil {
		t.Fatal(err)
	}
	if subject != "al\uFFFDice\uFFFD" || backend != "unknown" || !strings.Contains(issues, "not valid JSON") {
		t.Fatalf("sanitised row: subject %q backend %q issues %s", subject, backend, issues)
	}
}

// A row PostgreSQL refuses (a JSON number beyond numeric's range in
// request_args) does not cost the rest of the batch: the others land, the
// refused row is stored in the reject table, rows_rejected counts it and a
// warning names the reject table. ConsumeLogs succeeds: nothing was lost.
func TestExporterRejectedRow(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	core, logs := observer.New(zap.WarnLevel)
	exp, tt := newTestExporterLogger(t, testConfig(url), zap.New(core))
	ids := newIDs(5)
	ld := auditLogs(ids)
	const refused = 2
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(refused).Attributes().
		PutStr(string(otelaudit.ToolCallArgumentsKey), `{"n": 1e1000000}`)
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatalf("ConsumeLogs with one refused row: %v", err)
	}

	ctx := context.Background()
	conn := pgtest.Connect(t, url)
	stored := storedIDs(t, url)
	for i, id := range ids {
		if want := i != refused; (stored[id] == 1) != want {
			t.Errorf("row %d (%s): stored %d times, want it stored: %v", i, id, stored[id], want)
		}
	}
	if len(stored) != len(ids)-1 {
		t.Errorf("audit_log has %d rows, want %d", len(stored), len(ids)-1)
	}

	var rejects int
	var rejectedID, rejectErr string
	if err := conn.QueryRow(ctx, "SELECT count(*), max(request_id), max(error) FROM audit_log_rejects").
		Scan(&rejects, &rejectedID, &rejectErr); err != nil {
		t.Fatal(err)
	}
	if rejects != 1 || rejectedID != ids[refused].String() || rejectErr == "" {
		t.Fatalf("audit_log_rejects: %d rows, request_id %s (want 1 row, %s), error %q", rejects, rejectedID, ids[refused], rejectErr)
	}

	if got := sumMetric(t, tt, metricRejected); got != 1 {
		t.Errorf("%s = %d, want 1", metricRejected, got)
	}
	if got := sumMetric(t, tt, metricInserted); got != int64(len(ids)-1) {
		t.Errorf("%s = %d, want %d", metricInserted, got, len(ids)-1)
	}
	warnings := logs.FilterMessageSnippet("refused").FilterLevelExact(zap.WarnLevel).All()
	if len(warnings) != 1 {
		t.Fatalf("%d warnings about refused rows, want 1; logged: %v", len(warnings), logs.All())
	}
	fields := warnings[0].ContextMap()
	if fields["rejected"] != int64(1) || fields["reject_table"] != "audit_log_rejects" {
		t.Errorf("warning fields %v, want rejected=1 reject_table=audit_log_rejects", fields)
	}
}

// A missing audit table is an error no retry fixes: permanent.
func TestExporterPermanentError(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	cfg := testConfig(url)
	cfg.Migrate = false // the empty database has no audit_log
	core, logs := observer.New(zap.ErrorLevel)
	exp, tt := newTestExporterLogger(t, cfg, zap.New(core))
	err := exp.ConsumeLogs(context.Background(), auditLogs(newIDs(2)))
	if err == nil {
		t.Fatal("want an error writing to a missing table")
	}
	if !consumererror.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	// The batch is lost: its two audit rows are counted with the reason,
	// under the one definition of otelaudit.records.dropped.
	m, err := tt.GetMetric(telemetry.RecordsDropped.Name)
	if err != nil {
		t.Fatal(err)
	}
	sum := m.Data.(metricdata.Sum[int64])
	if len(sum.DataPoints) != 1 || sum.DataPoints[0].Value != 2 {
		t.Fatalf("%s: %+v, want 2", telemetry.RecordsDropped.Name, sum.DataPoints)
	}
	if r, _ := sum.DataPoints[0].Attributes.Value(telemetry.ReasonKey); r.AsString() != telemetry.ReasonExportFailed {
		t.Errorf("reason %q, want %q", r.AsString(), telemetry.ReasonExportFailed)
	}
	if n := logs.FilterMessageSnippet("lost").Len(); n != 1 {
		t.Errorf("%d error logs about lost rows, want 1: %v", n, logs.All())
	}
}

// closedPort returns a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// PostgreSQL being away is expected: start succeeds, and the write fails
// with a retryable error so the queue and retry settings keep the batch.
func TestExporterUnreachableIsRetryable(t *testing.T) {
	t.Parallel()
	cfg := testConfig(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", closedPort(t)))
	exp, _ := newTestExporter(t, cfg) // starts although PostgreSQL is away
	err := exp.ConsumeLogs(context.Background(), auditLogs(newIDs(1)))
	if err == nil {
		t.Fatal("want an error while PostgreSQL is unreachable")
	}
	if consumererror.IsPermanent(err) {
		t.Fatalf("want a retryable error, got a permanent one: %v", err)
	}
}

// With retries on, a batch accepted while PostgreSQL is away lands once it
// is back, and the migration deferred at start runs first.
func TestExporterRetriesUntilPostgresIsBack(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	proxy := newProxy(t, "127.0.0.1:5432")
	proxy.SetRefuse(true)
	cfg := testConfig(proxy.URL(url))
	cfg.BackOffConfig.Enabled = true
	cfg.BackOffConfig.InitialInterval = 50 * time.Millisecond
	cfg.BackOffConfig.MaxInterval = 200 * time.Millisecond
	cfg.BackOffConfig.MaxElapsedTime = 0
	exp, _ := newTestExporter(t, cfg)

	ids := newIDs(5)
	done := make(chan error, 1)
	go func() { done <- exp.ConsumeLogs(context.Background(), auditLogs(ids)) }()
	// Two refused connections: the first attempt and at least one retry.
	waitFor(t, 30*time.Second, "a retried write while PostgreSQL is away", func() bool {
		return proxy.Refused() >= 2
	})
	select {
	case err := <-done:
		t.Fatalf("ConsumeLogs returned while PostgreSQL was away: %v", err)
	default:
	}
	proxy.SetRefuse(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ConsumeLogs did not finish after PostgreSQL came back")
	}
	var count int
	if err := pgtest.Connect(t, url).QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != len(ids) {
		t.Fatalf("%d rows, want %d", count, len(ids))
	}
}

func TestToAttrKeepsKinds(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("s", "x")
	m.PutInt("i", -3)
	m.PutDouble("d", 2.5)
	m.PutBool("b", true)
	m.PutEmptyBytes("y").FromRaw([]byte("ab"))
	m.PutEmpty("e")
	sl := m.PutEmptySlice("l")
	sl.AppendEmpty().SetInt(1)
	sl.AppendEmpty().SetStr("two")
	m.PutEmptyMap("m").PutEmptyMap("inner").PutBool("deep", false)
	v := toAttr(pcommon.NewValueMap())
	if v.Type().String() != "MAP" {
		t.Fatalf("empty map: %s", v.Type())
	}
	mv := pcommon.NewValueMap()
	m.CopyTo(mv.Map())
	got := toAttr(mv)
	want := map[string]string{
		"s": "STRING", "i": "INT64", "d": "FLOAT64", "b": "BOOL", "y": "BYTESLICE",
		"e": "EMPTY", "l": "SLICE", "m": "MAP",
	}
	for _, kv := range got.AsMap() {
		if want[string(kv.Key)] != kv.Value.Type().String() {
			t.Errorf("%s: %s, want %s", kv.Key, kv.Value.Type(), want[string(kv.Key)])
		}
		delete(want, string(kv.Key))
	}
	if len(want) != 0 {
		t.Errorf("lost keys: %v", want)
	}
	if got.String() == "" {
		t.Fatal("empty Emit")
	}
}
