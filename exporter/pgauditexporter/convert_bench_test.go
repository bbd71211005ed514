package pgauditexporter

import (
	"testing"
)

// BenchmarkConvertAndMap measures the exporter's own CPU per record: pdata →
// auditrow.Record → Row (no database), for a 1,024-record batch.
func BenchmarkConvertAndMap(b *testing.B) {
	ld := auditLogs(newIDs(1024))
	var bt batch
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		bt.collect(ld)
		bt.mapper.Reset()
		bt.rows, _ = bt.mapper.MapAll(bt.rows[:0], bt.recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/record")
}
