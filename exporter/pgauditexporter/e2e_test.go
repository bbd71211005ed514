package pgauditexporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// auditColumns are the audit_log columns compared between the two paths:
// every column but id and created_at. JSONB is compared as PostgreSQL
// prints it (normalised).
const auditColumns = `request_id::text, timestamp, client_subject, client_role, tool_name, backend_name,
	request_args::text, response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes::text`

var auditColumnNames = []string{
	"request_id", "timestamp", "client_subject", "client_role", "tool_name", "backend_name",
	"request_args", "response_status", "error_message", "latency_ms", "trace_id", "span_id", "service_name", "attributes",
}

func testResource() *resource.Resource {
	return resource.NewSchemaless(attribute.String("service.name", "gateway-e2e"), attribute.String("service.version", "1.2.3"))
}

// otlpProvider is a LoggerProvider exporting over OTLP/HTTP. Without an
// endpoint it follows OTEL_EXPORTER_OTLP_ENDPOINT, as a gateway would.
func otlpProvider(tb testing.TB, queueSize int, opts ...otlploghttp.Option) *sdklog.LoggerProvider {
	tb.Helper()
	exp, err := otlploghttp.New(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(
		sdklog.WithResource(testResource()),
		sdklog.WithProcessor(exporter.NewProcessor(exp,
			batchOptions(queueSize)...)),
	)
	tb.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	return lp
}

// batchOptions are the SDK batch processor settings of both paths: a queue
// that holds every record of a run (the SDK drops records when its queue is
// full), 1024 records per export.
func batchOptions(queueSize int) []sdklog.BatchProcessorOption {
	return []sdklog.BatchProcessorOption{
		exporter.WithQueueSize(queueSize), // the processor must know the size it guards
		sdklog.WithExportMaxBatchSize(1024),
		sdklog.WithExportInterval(100 * time.Millisecond),
	}
}

// inProcessProvider is a LoggerProvider writing through the in-process
// exporter to databaseURL.
func inProcessProvider(tb testing.TB, queueSize int, databaseURL string) *sdklog.LoggerProvider {
	tb.Helper()
	exp, err := exporter.New(context.Background(), exporter.WithDatabaseURL(databaseURL))
	if err != nil {
		tb.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(
		sdklog.WithResource(testResource()),
		sdklog.WithProcessor(exporter.NewProcessor(exp,
			batchOptions(queueSize)...)),
	)
	tb.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	return lp
}

type toolError struct{ code int }

func (e *toolError) Error() string { return fmt.Sprintf("tool failed with code %d", e.code) }

// testCalls returns n tool calls covering the shapes the instrumentation
// produces: every status, nested and raw JSON arguments, secrets to redact,
// several roles, MCP session data, and a caller without identity.
func testCalls(n int) []instrumentation.Call {
	base := time.Date(2026, 11, 27, 9, 30, 0, 987654321, time.UTC)
	calls := make([]instrumentation.Call, n)
	for i := range calls {
		c := instrumentation.Call{
			RequestID: uuid.Must(uuid.NewV7()),
			Start:     base.Add(time.Duration(i) * 1500 * time.Microsecond),
			Subject:   fmt.Sprintf("user-%d", i%7),
			Role:      "reader",
			Tool:      fmt.Sprintf("tool_%d", i%5),
			Backend:   "backend-" + string(rune('a'+i%3)),
			Latency:   time.Duration(i%250) * time.Millisecond,
			Method:    otelaudit.MethodToolsCall,
			SessionID: fmt.Sprintf("session-%d", i%11),
			JSONRPCID: fmt.Sprint(i),
		}
		switch i % 8 {
		case 0:
			c.Args = map[string]any{"query": "select 1", "limit": 10, "ratio": 0.25, "deep": map[string]any{"list": []any{1, "two", 3.5, true, nil}}}
		case 1:
			c.Args = json.RawMessage(`{"path":"/tmp/x","flags":["a","b"],"n":12345678901}`)
			c.Role = "admin, ops"
		case 2:
			c.Args = map[string]any{"password": "hunter2", "api_key": "k-123", "user": "bob"}
			c.Err = &toolError{code: 7}
		case 3:
			c.Args = map[string]any{"text": "ünïcödé ✓ \"quoted\" \n newline"}
			c.Err = context.DeadlineExceeded
		case 4:
			c.Status = otelaudit.StatusDenied
			c.ErrorType = "forbidden"
			c.ErrorMessage = "role reader may not call tool_4"
		case 5:
			c.Args = []any{"positional", 2}
			c.Err = errors.New("backend unavailable")
		case 6:
			c.Subject, c.Role = "", "" // no identity
			c.Args = "not json at all"
		case 7:
			c.Method, c.SessionID, c.JSONRPCID = "", "", ""
			c.Args = map[string]any{}
		}
		calls[i] = c
	}
	return calls
}

// record emits every call through an Auditor on lp, each under its own span
// context so that trace_id and span_id are filled.
func record(lp *sdklog.LoggerProvider, calls []instrumentation.Call) {
	a := instrumentation.New(instrumentation.WithLoggerProvider(lp))
	for i, c := range calls {
		var tid trace.TraceID
		var sid trace.SpanID
		copy(tid[:], c.RequestID[:])
		sid[0], sid[7] = 0xab, byte(i)
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
		}))
		a.Record(ctx, c)
	}
}

// waitRows waits until the audit table at databaseURL holds want rows.
func waitRows(tb testing.TB, databaseURL string, want int, timeout time.Duration) {
	tb.Helper()
	conn := pgtest.Connect(tb, databaseURL)
	deadline := time.Now().Add(timeout)
	var got int
	for {
		err := conn.QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&got)
		if err == nil && got == want {
			return
		}
		if err == nil && got > want {
			tb.Fatalf("audit_log has %d rows, want %d", got, want)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("audit_log has %d rows after %s, want %d (last error: %v)", got, timeout, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedIDs returns how often each request id is stored in the audit table
// at databaseURL.
func storedIDs(tb testing.TB, databaseURL string) map[uuid.UUID]int {
	tb.Helper()
	rows, err := pgtest.Connect(tb, databaseURL).Query(context.Background(), "SELECT request_id FROM audit_log")
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		tb.Fatal(err)
	}
	stored := map[uuid.UUID]int{}
	for _, id := range ids {
		stored[id]++
	}
	return stored
}

func auditRows(tb testing.TB, databaseURL string) [][]any {
	tb.Helper()
	conn := pgtest.Connect(tb, databaseURL)
	rows, err := conn.Query(context.Background(), "SELECT "+auditColumns+" FROM audit_log ORDER BY request_id")
	if err != nil {
		tb.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestEndToEndMatchesInProcess sends the same tool calls through the
// production path (SDK → OTLP/HTTP → otelcol-audit with gateway.yaml →
// pgaudit → PostgreSQL) and through the in-process exporter, and checks
// that both databases hold identical rows, column by column.
func TestEndToEndMatchesInProcess(t *testing.T) {
	collectorURL := pgtest.NewDatabase(t)
	inProcessURL := pgtest.NewDatabase(t)
	gw := newGateway(t, collectorURL)

	// The gateway switches to the Collector by the standard variables
	// alone: the endpoint, and the bearer token gateway.yaml requires.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+gw.HTTPAddr)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20"+gw.Token)
	viaCollector := otlpProvider(t, 4096)
	inProcess := inProcessProvider(t, 4096, inProcessURL)

	const n = 1000
	calls := testCalls(n)
	record(viaCollector, calls)
	record(inProcess, calls)
	ctx := context.Background()
	if err := viaCollector.ForceFlush(ctx); err != nil {
		t.Fatalf("OTLP export to otelcol-audit: %v", err)
	}
	if err := inProcess.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	waitRows(t, inProcessURL, n, 30*time.Second)
	waitRows(t, collectorURL, n, 60*time.Second)

	want := auditRows(t, inProcessURL)
	got := auditRows(t, collectorURL)
	if len(got) != len(want) {
		t.Fatalf("collector path: %d rows, in-process: %d", len(got), len(want))
	}
	mismatches := 0
	for i := range want {
		for j, name := range auditColumnNames {
			if !reflect.DeepEqual(got[i][j], want[i][j]) {
				mismatches++
				if mismatches <= 20 {
					t.Errorf("row %d (request_id %v) column %s:\n  collector:  %#v\n  in-process: %#v", i, want[i][0], name, got[i][j], want[i][j])
				}
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d column mismatches between the collector path and the in-process path", mismatches)
	}

	// The rows really carry the data (not two identical empty tables).
	var redacted, roles, traced int
	conn := pgtest.Connect(t, collectorURL)
	if err := conn.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE request_args->>'password' = $1),
			count(*) FILTER (WHERE client_role = 'admin,ops'),
			count(*) FILTER (WHERE trace_id IS NOT NULL AND span_id IS NOT NULL AND service_name = 'gateway-e2e')
		FROM audit_log`, instrumentation.RedactedValue).Scan(&redacted, &roles, &traced); err != nil {
		t.Fatal(err)
	}
	if redacted != n/8 || roles != n/8 || traced != n {
		t.Fatalf("rows: %d redacted (want %d), %d admin,ops (want %d), %d traced (want %d)", redacted, n/8, roles, n/8, traced, n)
	}
	var rejects int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_log_rejects").Scan(&rejects); err != nil || rejects != 0 {
		t.Fatalf("audit_log_rejects: %d rows, err %v", rejects, err)
	}
	if v, err := gw.Metric("otelcol_exporter_pgaudit_rows_inserted"); err != nil || v != n {
		t.Errorf("otelcol_exporter_pgaudit_rows_inserted = %v (err %v), want %d", v, err, n)
	}
}

// requiredVars returns the variables the header of the configuration at
// path marks as required, each set to the example the header gives:
//
//	#   OTELAUDIT_DATABASE_URL       required, e.g. postgres://otelaudit@db:5432/audit
var requiredLine = regexp.MustCompile(`(?m)^#\s+(OTELAUDIT_[A-Z0-9_]+)\s+required, e\.g\. (\S+)`)

func requiredVars(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, m := range requiredLine.FindAllStringSubmatch(string(b), -1) {
		vars = append(vars, m[1]+"="+m[2])
	}
	return vars
}

// cleanEnv is the test's environment without any OTELAUDIT_* variable.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTELAUDIT_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestShippedConfigsValidate runs `otelcol-audit validate` on every shipped
// configuration with only the variables its header marks as required set
// (every listener, the token file and the queue on their defaults), checks
// that the defaults listen on localhost only, and that a configuration
// missing a required variable is refused.
func TestShippedConfigsValidate(t *testing.T) {
	bin := collectorBinary(t)
	configs, err := filepath.Glob(filepath.Join(repoRoot(t), "collector-config", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	validated := 0
	for _, cfg := range configs {
		if filepath.Base(cfg) == "builder-config.yaml" {
			continue
		}
		validated++
		t.Run(filepath.Base(cfg), func(t *testing.T) {
			vars := requiredVars(t, cfg)
			if len(vars) == 0 {
				t.Fatalf("%s: its header marks no variable as required", cfg)
			}
			cmd := exec.Command(bin, "validate", "--config", cfg)
			cmd.Env = append(cleanEnv(), vars...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("otelcol-audit validate --config %s with only %v: %v\n%s", cfg, vars, err, out)
			}
			// Listeners default to localhost: the only addresses in
			// ${env:VAR:-default} defaults are loopback ones.
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`\$\{env:[A-Z0-9_]+:-([^}]*)\}`).FindAllStringSubmatch(string(b), -1) {
				if strings.HasPrefix(m[1], "0.0.0.0") || strings.HasPrefix(m[1], "[::]") || strings.HasPrefix(m[1], ":") {
					t.Errorf("%s: default %q listens on every interface", cfg, m[0])
				}
			}
		})
	}
	if validated < 2 {
		t.Fatalf("validated %d configs, want gateway.yaml and agent.yaml", validated)
	}

	// Without the database URL the gateway config must not validate.
	cmd := exec.Command(bin, "validate", "--config", filepath.Join(repoRoot(t), "collector-config", "gateway.yaml"))
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "database_url or host is required") {
		t.Fatalf("gateway.yaml without OTELAUDIT_DATABASE_URL: err %v, output:\n%s", err, out)
	}
}
