package pgwriter_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/google/uuid"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// The refused-rows benchmarks write batches of 1,024 rows into the
// migrated (partitioned, indexed) audit_log, side by side in one run:
//
//	go test -run '^$' -bench 'Write1024' -benchmem -count 6 ./exporter/internal/pgwriter/
//
// Write1024Clean is the clean batch. Write1024RefusedJSON has 10% of its
// rows tripping the data error that remains after the mapping's sanitising
// with the default caps: a JSON number PostgreSQL's numeric cannot hold
// (22003). Write1024RefusedMixed adds 10% tripping the btree index row limit
// (54000), reachable only when Mapper.MaxFieldBytes is raised above ~2 KB:
// 20% refused in all. rows/s counts every row of the batch, stored or
// rejected.

const benchRows = 1024

func BenchmarkWrite1024Clean(b *testing.B)        { benchWrite(b, nil) }
func BenchmarkWrite1024RefusedJSON(b *testing.B)  { benchWrite(b, poisonJSON) }
func BenchmarkWrite1024RefusedMixed(b *testing.B) { benchWrite(b, poison) }

// The same with WithSealing, the exporter's default.
func BenchmarkWrite1024SealedClean(b *testing.B) {
	benchWrite(b, nil, pgwriter.WithSealing(uuid.New()))
}
func BenchmarkWrite1024SealedRefusedJSON(b *testing.B) {
	benchWrite(b, poisonJSON, pgwriter.WithSealing(uuid.New()))
}

func benchWrite(b *testing.B, refuse func([]auditrow.Row) int, opts ...pgwriter.Option) {
	w, _, _ := tracedWriter(b, opts...)
	batches := make([][]auditrow.Row, b.N)
	bad := 0
	for i := range batches {
		batches[i] = rows(benchRows)
		if refuse != nil {
			bad = refuse(batches[i])
		}
	}
	ctx := context.Background()
	runtime.GC()
	b.ResetTimer()
	for i := range b.N {
		res, err := w.Write(ctx, batches[i])
		if err != nil || res != (pgwriter.Result{Inserted: benchRows - bad, Rejected: bad}) {
			b.Fatalf("write = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
}
