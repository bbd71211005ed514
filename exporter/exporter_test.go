package exporter_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// call returns the attributes of a well-formed audit record.
func call(id uuid.UUID, tool string) []attribute.KeyValue {
	return []attribute.KeyValue{
		otelaudit.RequestIDKey.String(id.String()),
		otelaudit.UserIDKey.String("alice"),
		otelaudit.UserRolesKey.StringSlice([]string{"admin"}),
		otelaudit.ToolNameKey.String(tool),
		otelaudit.BackendNameKey.String("demo"),
		otelaudit.ToolCallArgumentsKey.Map(attribute.String("text", "hi"), attribute.Int("n", 3)),
		otelaudit.ResponseStatusKey.String(string(otelaudit.StatusOK)),
		otelaudit.LatencyMSKey.Int64(12),
		otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool),
		otelaudit.MCPMethodNameKey.String(otelaudit.MethodToolsCall),
	}
}

func newExporter(t *testing.T, opts ...exporter.Option) (*exporter.Exporter, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	exp, err := exporter.New(context.Background(), append([]exporter.Option{exporter.WithDatabaseURL(url)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp, url
}

func emit(ctx context.Context, l log.Logger, ts time.Time, attrs []attribute.KeyValue) {
	var r log.Record
	r.SetEventName(otelaudit.EventName)
	r.SetTimestamp(ts)
	r.AddAttributes(attrs...)
	l.Emit(ctx, r)
}

// capture keeps a copy of every batch the processor exports.
type capture struct {
	*exporter.Exporter
	mu      sync.Mutex
	batches [][]sdklog.Record
}

func (c *capture) Export(ctx context.Context, records []sdklog.Record) error {
	b := make([]sdklog.Record, len(records))
	for i := range records {
		b[i] = records[i].Clone()
	}
	c.mu.Lock()
	c.batches = append(c.batches, b)
	c.mu.Unlock()
	return c.Exporter.Export(ctx, records)
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	exp, url := newExporter(t)
	captured := &capture{Exporter: exp}
	lp := sdklog.NewLoggerProvider(
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "gw"))),
		sdklog.WithProcessor(exporter.NewProcessor(captured)),
	)
	ctx := context.Background()
	tid, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
	sid, _ := trace.SpanIDFromHex("0102030405060708")
	sctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	l := lp.Logger("test")
	id := uuid.Must(uuid.NewV7())
	ts := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	emit(sctx, l, ts, call(id, "echo"))

	// An application log on the same provider must not become a row.
	var app log.Record
	app.SetBody(attribute.StringValue("hello"))
	l.Emit(ctx, app)

	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, url)
	var (
		n                                                  int
		gotID                                              uuid.UUID
		gotTS                                              time.Time
		subject, role, tool, backend, status, trace_, span string
		svc                                                string
		args, attrs                                        string
		latency                                            int64
		errMsg                                             *string
	)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows = %d (%v), want 1", n, err)
	}
	err := conn.QueryRow(ctx, `SELECT request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
		request_args::text, response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes::text FROM audit_log`).
		Scan(&gotID, &gotTS, &subject, &role, &tool, &backend, &args, &status, &errMsg, &latency, &trace_, &span, &svc, &attrs)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("request_id", gotID, id)
	check("timestamp", gotTS.UTC(), ts)
	check("client_subject", subject, "alice")
	check("client_role", role, "admin")
	check("tool_name", tool, "echo")
	check("backend_name", backend, "demo")
	check("request_args", args, `{"n": 3, "text": "hi"}`)
	check("response_status", status, "ok")
	check("error_message", errMsg == nil, true)
	check("latency_ms", latency, int64(12))
	check("trace_id", trace_, tid.String())
	check("span_id", span, sid.String())
	check("service_name", svc, "gw")
	check("attributes", attrs, `{"mcp.method.name": "tools/call", "gen_ai.operation.name": "execute_tool"}`)

	// Replaying the same batch (as a retry or a spool replay does) leaves
	// the row once.
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if len(captured.batches) != 1 {
		t.Fatalf("%d batches exported, want 1", len(captured.batches))
	}
	e2, err := exporter.New(ctx, exporter.WithDatabaseURL(url), exporter.WithMigrate(false))
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Shutdown(ctx)
	if err := e2.Export(ctx, captured.batches[0]); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows after the replay = %d (%v), want 1", n, err)
	}
	if st := e2.Stats(); st.Duplicates != 1 || st.Written != 0 {
		t.Errorf("replay stats %+v, want 1 duplicate, nothing written", st)
	}
}

func connect(t *testing.T, url string) *pgx.Conn { return pgtest.Connect(t, url) }

func TestWriteConcurrencyWritesEveryRowOnce(t *testing.T) {
	t.Parallel()
	exp, url := newExporter(t, exporter.WithWriteConcurrency(3))
	batch := make([]sdklog.Record, 1000)
	for i := range batch {
		batch[i] = record(call(uuid.Must(uuid.NewV7()), fmt.Sprintf("tool-%d", i))...)
	}
	ctx := context.Background()
	if err := exp.Export(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := exp.Export(ctx, batch); err != nil { // a replay
		t.Fatal(err)
	}
	var n, tools int
	if err := connect(t, url).QueryRow(ctx, `SELECT count(*), count(DISTINCT tool_name) FROM audit_log`).Scan(&n, &tools); err != nil {
		t.Fatal(err)
	}
	if st := exp.Stats(); n != 1000 || tools != 1000 || st.Written != 1000 || st.Duplicates != 1000 {
		t.Errorf("rows %d, distinct tools %d, stats %+v; want 1000 rows written once and 1000 duplicates", n, tools, st)
	}
}

func TestShutdownContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)

	// A pool the caller passes is never closed by the exporter.
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	exp, err := exporter.New(ctx, exporter.WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		t.Errorf("the caller's pool was closed by Shutdown: %v", err)
	}
	if err := exp.Export(ctx, []sdklog.Record{record(call(uuid.Must(uuid.NewV7()), "late")...)}); !errors.Is(err, sdklog.ErrExporterShutdown) {
		t.Errorf("Export after Shutdown = %v, want ErrExporterShutdown", err)
	}
	if st := exp.Stats(); st.DroppedByReason[exporter.DropShutdown] != 1 {
		t.Errorf("stats %+v, want the refused record counted (shutdown)", st)
	}
	if err := exp.ForceFlush(ctx); err != nil {
		t.Errorf("ForceFlush after Shutdown: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows after a refused Export = %d (%v), want 0", n, err)
	}
}

func TestProcessorEnabledOnlyForAuditEvents(t *testing.T) {
	t.Parallel()
	stuck := &stuckExporter{release: make(chan struct{})}
	close(stuck.release)
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(exporter.NewProcessor(stuck)))
	defer lp.Shutdown(context.Background())
	l := lp.Logger("test")
	ctx := context.Background()
	if !l.Enabled(ctx, log.EnabledParameters{EventName: otelaudit.EventName}) {
		t.Error("Enabled = false for an audit event")
	}
	for _, name := range []string{"", "app.request", "otelaudit.tool_call.v2"} {
		if l.Enabled(ctx, log.EnabledParameters{EventName: name}) {
			t.Errorf("Enabled = true for event %q", name)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := exporter.New(ctx, exporter.WithDatabaseURL("postgres://%zz")); err == nil {
		t.Error("bad URL: no error")
	}
	if _, err := exporter.New(ctx, exporter.WithDatabaseURL(pgtest.AdminURL()), exporter.WithTable("Bad-Name")); err == nil {
		t.Error("bad table name: no error")
	}
	cluster := pgtest.StartCluster(t)
	cluster.Stop()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := exporter.New(cctx, exporter.WithDatabaseURL(cluster.URL())); err == nil {
		t.Error("migrations against a stopped server: no error")
	}
	if _, err := exporter.New(ctx, exporter.WithDatabaseURL(pgtest.AdminURL()), exporter.WithMigrate(false), exporter.WithSpool("/proc/otelaudit-no-such-dir", 1<<20)); err == nil {
		t.Error("unusable spool directory: no error")
	}
	// An anchor file planted as a symbolic link stops the exporter at start.
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "anchor.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := exporter.New(ctx, exporter.WithDatabaseURL(pgtest.AdminURL()), exporter.WithMigrate(false), exporter.WithAnchorFile(link)); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("anchor file that is a symbolic link: %v", err)
	}
}
