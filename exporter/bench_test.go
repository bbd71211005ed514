package exporter_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// benchBatch is the SDK BatchProcessor's default export batch size.
const benchBatch = 512

// The benchmarks below write the same calls into the same indexed audit_log
// and report rows/s, so that they compare side by side in one run:
//
//	go test -run '^$' -bench . -benchmem ./exporter/
//
// Each b.N iteration writes one batch of 512 rows.

func benchAttrs(id uuid.UUID, i int) []attribute.KeyValue {
	return []attribute.KeyValue{
		otelaudit.RequestIDKey.String(id.String()),
		otelaudit.UserIDKey.String("alice@example.com"),
		otelaudit.UserRolesKey.StringSlice([]string{"admin"}),
		otelaudit.ToolNameKey.String("search_docs"),
		otelaudit.BackendNameKey.String("docs"),
		otelaudit.ToolCallArgumentsKey.Map(attribute.String("query", "quarterly report"), attribute.Int("limit", 10), attribute.Bool("fuzzy", i%2 == 0)),
		otelaudit.ResponseStatusKey.String("ok"),
		otelaudit.LatencyMSKey.Int64(int64(i % 100)),
		otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool),
		otelaudit.MCPMethodNameKey.String(otelaudit.MethodToolsCall),
		otelaudit.MCPSessionIDKey.String("3f1c2a9e-session"),
		otelaudit.JSONRPCRequestIDKey.String("42"),
	}
}

func benchDB(b *testing.B) string {
	b.Helper()
	url := pgtest.NewDatabase(b)
	if err := migrations.Up(context.Background(), url); err != nil {
		b.Fatal(err)
	}
	return url
}

func reportRows(b *testing.B) {
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkCopyFromRaw is the ceiling: pgx.CopyFrom of rows the caller
// already holds as column values, JSON pre-encoded.
func BenchmarkCopyFromRaw(b *testing.B) {
	url := benchDB(b)
	conn := pgtest.Connect(b, url)
	ctx := context.Background()
	cols := []string{"request_id", "timestamp", "client_subject", "client_role", "tool_name", "backend_name",
		"request_args", "response_status", "error_message", "latency_ms", "trace_id", "span_id", "service_name", "attributes"}
	batches := make([][][]any, b.N)
	now := time.Now()
	for i := range batches {
		batches[i] = make([][]any, benchBatch)
		for j := range batches[i] {
			batches[i][j] = []any{[16]byte(uuid.Must(uuid.NewV7())), now, "alice@example.com", "admin", "search_docs", "docs",
				[]byte(`{"query":"quarterly report","limit":10,"fuzzy":true}`), "ok", nil, int64(j % 100),
				"0102030405060708090a0b0c0d0e0f10", "0102030405060708", "gateway",
				[]byte(`{"gen_ai.operation.name":"execute_tool","mcp.method.name":"tools/call","mcp.session.id":"3f1c2a9e-session","jsonrpc.request.id":"42"}`)}
		}
	}
	runtime.GC() // leave the setup's garbage out of the measurement
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"audit_log"}, cols, pgx.CopyFromRows(batches[i])); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b)
}

// BenchmarkNaiveInsert is the seed plan's writer: one INSERT per row.
func BenchmarkNaiveInsert(b *testing.B) {
	url := benchDB(b)
	conn := pgtest.Connect(b, url)
	ctx := context.Background()
	now := time.Now()
	runtime.GC() // leave the setup's garbage out of the measurement
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < benchBatch; j++ {
			_, err := conn.Exec(ctx, `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
				request_args, response_status, latency_ms, trace_id, span_id, service_name, attributes)
				VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
				[16]byte(uuid.Must(uuid.NewV7())), now, "alice@example.com", "admin", "search_docs", "docs",
				[]byte(`{"query":"quarterly report","limit":10,"fuzzy":true}`), "ok", int64(j%100),
				"0102030405060708090a0b0c0d0e0f10", "0102030405060708", "gateway",
				[]byte(`{"gen_ai.operation.name":"execute_tool","mcp.method.name":"tools/call","mcp.session.id":"3f1c2a9e-session","jsonrpc.request.id":"42"}`))
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	reportRows(b)
}

// BenchmarkExport is Exporter.Export with the records already in hand.
func BenchmarkExport(b *testing.B) { benchExport(b) }

// BenchmarkExportConcurrency2 splits each batch across two connections.
func BenchmarkExportConcurrency2(b *testing.B) { benchExport(b, exporter.WithWriteConcurrency(2)) }

// BenchmarkExportSpoolIdle is BenchmarkExport with a spool configured but
// idle (PostgreSQL up): what the spool costs when there is no outage.
func BenchmarkExportSpoolIdle(b *testing.B) {
	benchExport(b, exporter.WithSpool(b.TempDir(), 1<<30))
}

func benchExport(b *testing.B, opts ...exporter.Option) {
	url := benchDB(b)
	exp, err := exporter.New(context.Background(), append([]exporter.Option{exporter.WithDatabaseURL(url), exporter.WithMigrate(false)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	batches := make([][]sdklog.Record, b.N)
	var c collect
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(&c), sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"))))
	l := lp.Logger("bench")
	for i := range batches {
		c.records = make([]sdklog.Record, 0, benchBatch)
		for j := 0; j < benchBatch; j++ {
			var r log.Record
			r.SetEventName(otelaudit.EventName)
			r.SetTimestamp(time.Now())
			r.AddAttributes(benchAttrs(uuid.Must(uuid.NewV7()), j)...)
			l.Emit(context.Background(), r)
		}
		batches[i] = c.records
	}
	ctx := context.Background()
	runtime.GC() // leave the setup's garbage out of the measurement
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := exp.Export(ctx, batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if st := exp.Stats(); st.Written != int64(b.N*benchBatch) || st.Spooled != 0 {
		b.Fatalf("stats %+v, want %d rows written and none spooled", st, b.N*benchBatch)
	}
	reportRows(b)
}

// BenchmarkEndToEnd emits calls through a LoggerProvider and NewProcessor
// while the processor exports in the background, and stops the clock when
// ForceFlush returns: everything the application pays for, minus the
// Auditor. The queue holds the whole run, so nothing is dropped.
func BenchmarkEndToEnd(b *testing.B) { benchEndToEnd(b, 1, false) }

// BenchmarkEndToEndConcurrency2 is BenchmarkEndToEnd with each batch split
// across two connections.
func BenchmarkEndToEndConcurrency2(b *testing.B) { benchEndToEnd(b, 2, false) }

// BenchmarkEndToEndAllowKeyDuplication is BenchmarkEndToEnd on a provider
// with sdklog.WithAllowKeyDuplication: the SDK skips its per-record key
// de-duplication, which audit records (unique keys) do not need.
func BenchmarkEndToEndAllowKeyDuplication(b *testing.B) { benchEndToEnd(b, 1, true) }

func benchEndToEnd(b *testing.B, concurrency int, allowDup bool) {
	url := benchDB(b)
	exp, err := exporter.New(context.Background(), exporter.WithDatabaseURL(url), exporter.WithMigrate(false),
		exporter.WithWriteConcurrency(concurrency))
	if err != nil {
		b.Fatal(err)
	}
	opts := []sdklog.LoggerProviderOption{
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"))),
		sdklog.WithProcessor(exporter.NewProcessor(exp, exporter.WithQueueSize(b.N*benchBatch+1), sdklog.WithExportMaxBatchSize(benchBatch))),
	}
	if allowDup {
		opts = append(opts, sdklog.WithAllowKeyDuplication())
	}
	lp := sdklog.NewLoggerProvider(opts...)
	defer lp.Shutdown(context.Background())
	l := lp.Logger("bench")
	ids := make([]uuid.UUID, b.N*benchBatch)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	ctx := context.Background()
	runtime.GC() // leave the setup's garbage out of the measurement
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < benchBatch; j++ {
			var r log.Record
			r.SetEventName(otelaudit.EventName)
			r.SetTimestamp(time.Now())
			r.AddAttributes(benchAttrs(ids[i*benchBatch+j], j)...)
			l.Emit(ctx, r)
		}
	}
	if err := lp.ForceFlush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if st := exp.Stats(); st.Written != int64(b.N*benchBatch) {
		b.Fatalf("written %d rows, want %d", st.Written, b.N*benchBatch)
	}
	reportRows(b)
}
