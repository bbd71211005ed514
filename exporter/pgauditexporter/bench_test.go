package pgauditexporter

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// BenchmarkCollectorPath measures audit rows/s end to end, from the first
// Auditor.Record to the last row visible in audit_log, through the two
// production paths side by side in one run:
//
//	in-process: Auditor → SDK batch processor → exporter.Exporter → PostgreSQL
//	collector:  Auditor → SDK batch processor → otlploghttp → otelcol-audit
//	            (gateway.yaml: persistent queue on file_storage with fsync,
//	            batches of 2,000–10,000, 4 consumers) → pgaudit → PostgreSQL
//
// Both use the same SDK batch settings (batchOptions) and the same calls.
// Run with a fixed count, e.g.
//
//	go test -run '^$' -bench CollectorPath -benchtime 50000x -count 3 .
func BenchmarkCollectorPath(b *testing.B) {
	ctx := context.Background()
	inProcessURL := pgtest.NewDatabase(b)
	collectorURL := pgtest.NewDatabase(b)
	gw := newGateway(b, collectorURL)

	run := func(b *testing.B, databaseURL string, provider func(queueSize int) *sdklog.LoggerProvider) {
		conn := pgtest.Connect(b, databaseURL)
		count := func() int {
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil && err != pgx.ErrNoRows {
				return -1
			}
			return n
		}
		calls := testCalls(b.N)
		lp := provider(b.N + 1024)
		defer lp.Shutdown(ctx)
		before := count()
		if before < 0 {
			// The collector creates the table on start; the in-process
			// exporter when it is made.
			before = 0
		}
		b.ResetTimer()
		start := time.Now()
		record(lp, calls)
		if err := lp.ForceFlush(ctx); err != nil {
			b.Fatal(err)
		}
		flushed := time.Since(start)
		deadline := time.Now().Add(5 * time.Minute)
		for count() < before+b.N {
			if time.Now().After(deadline) {
				b.Fatalf("rows did not land within 5 minutes: %d of %d", count()-before, b.N)
			}
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
		// How fast the SDK got rid of the records: for the collector path,
		// the rate at which otelcol-audit accepted them into its queue.
		b.ReportMetric(float64(b.N)/flushed.Seconds(), "exported/s")
		b.ReportMetric(0, "ns/op") // rows/s is the figure; ns/op includes setup noise
	}

	b.Run("in-process", func(b *testing.B) {
		run(b, inProcessURL, func(q int) *sdklog.LoggerProvider { return inProcessProvider(b, q, inProcessURL) })
	})
	b.Run("collector", func(b *testing.B) {
		run(b, collectorURL, func(q int) *sdklog.LoggerProvider {
			return otlpProvider(b, q, otlploghttp.WithEndpoint(gw.HTTPAddr), otlploghttp.WithInsecure(),
				otlploghttp.WithHeaders(gw.AuthHeader()))
		})
	})
}
