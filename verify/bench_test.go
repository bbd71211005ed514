package verify_test

import (
	"context"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/verify"
)

// BenchmarkVerify verifies a trail of 100,000 rows (100 batches of 1,000)
// written through the real exporter; it reports rows/s.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	pool := benchTrail(b)
	b.ResetTimer()
	var rows int64
	for b.Loop() {
		rep, err := verify.Run(ctx, pool)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Intact() || rep.Rows != benchBatches*benchSize {
			b.Fatalf("intact %v, %d rows; want intact, %d", rep.Intact(), rep.Rows, benchBatches*benchSize)
		}
		rows += rep.Rows
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkReadRowsBaseline is the floor under BenchmarkVerify: the same
// rows, in the same order, copied out of PostgreSQL in text and thrown
// away (no decoding, no hashing).
func BenchmarkReadRowsBaseline(b *testing.B) {
	ctx := context.Background()
	pool := benchTrail(b)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	b.ResetTimer()
	var rows int64
	for b.Loop() {
		tag, err := conn.Conn().PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT * FROM audit_log ORDER BY id) TO STDOUT`)
		if err != nil {
			b.Fatal(err)
		}
		rows += tag.RowsAffected()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

const benchBatches, benchSize = 100, 1000

func benchTrail(b *testing.B) *pgxpool.Pool {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url))
	if err != nil {
		b.Fatal(err)
	}
	for range benchBatches {
		if err := exp.Export(ctx, records(benchSize)); err != nil {
			b.Fatal(err)
		}
	}
	if err := exp.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE audit_log"); err != nil {
		b.Fatal(err)
	}
	return pool
}
