package exporter_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
)

// The cost of tamper evidence, side by side (BENCHMARKS.md "Tamper
// evidence"): BenchmarkExport seals by default.

// BenchmarkExportNoSeal is BenchmarkExport without sealing.
func BenchmarkExportNoSeal(b *testing.B) { benchExport(b, exporter.WithSealing(false)) }

// BenchmarkExportSealed is BenchmarkExport, named for the comparison.
func BenchmarkExportSealed(b *testing.B) { benchExport(b) }

// BenchmarkExportSealedSigned seals and signs a checkpoint every 100 ms,
// into the checkpoint table and a JSON Lines anchor.
func BenchmarkExportSealedSigned(b *testing.B) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	benchExport(b, exporter.WithSigningKey(key), exporter.WithAnchorFile(b.TempDir()+"/anchor.jsonl"),
		exporter.WithCheckpointInterval(100*time.Millisecond))
}

// BenchmarkSealingInterleaved writes the same batches through three
// exporters into three databases, one batch each per iteration in turn
// (not sealed, sealed, sealed and signed), so that a busy machine's drift
// hits all three alike; it reports each one's rows/s and the ratios.
func BenchmarkSealingInterleaved(b *testing.B) {
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		opts []exporter.Option
	}{
		{"plain", []exporter.Option{exporter.WithSealing(false)}},
		{"sealed", nil},
		{"signed", []exporter.Option{exporter.WithSigningKey(key), exporter.WithAnchorFile(b.TempDir() + "/anchor.jsonl"),
			exporter.WithCheckpointInterval(100 * time.Millisecond)}},
	}
	exps := make([]*exporter.Exporter, len(variants))
	for i, v := range variants {
		exp, err := exporter.New(ctx, append([]exporter.Option{exporter.WithDatabaseURL(benchDB(b)), exporter.WithMigrate(false)}, v.opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		defer exp.Shutdown(ctx)
		exps[i] = exp
	}
	var c collect
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(&c), sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"))))
	l := lp.Logger("bench")
	batches := make([][]sdklog.Record, b.N)
	for i := range batches {
		c.records = make([]sdklog.Record, 0, benchBatch)
		for j := 0; j < benchBatch; j++ {
			var r log.Record
			r.SetEventName(otelaudit.EventName)
			r.SetTimestamp(time.Now())
			r.AddAttributes(benchAttrs(uuid.Must(uuid.NewV7()), j)...)
			l.Emit(ctx, r)
		}
		batches[i] = c.records
	}
	runtime.GC()
	spent := make([]time.Duration, len(exps))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, exp := range exps {
			start := time.Now()
			if err := exp.Export(ctx, batches[i]); err != nil {
				b.Fatal(err)
			}
			spent[k] += time.Since(start)
		}
	}
	b.StopTimer()
	rows := float64(b.N * benchBatch)
	for k, v := range variants {
		b.ReportMetric(rows/spent[k].Seconds(), v.name+"-rows/s")
	}
	b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "sealed/plain")
	b.ReportMetric(spent[0].Seconds()/spent[2].Seconds(), "signed/plain")
}

// BenchmarkEndToEndSealingInterleaved is BenchmarkEndToEnd for a not
// sealed and a sealed exporter in turn: each iteration emits one batch's
// worth of calls through each LoggerProvider and waits for its ForceFlush,
// so load drift hits both alike. It reports both rows/s and the ratio.
func BenchmarkEndToEndSealingInterleaved(b *testing.B) {
	ctx := context.Background()
	type pipe struct {
		lp    *sdklog.LoggerProvider
		l     log.Logger
		spent time.Duration
	}
	var pipes []*pipe
	for _, opts := range [][]exporter.Option{{exporter.WithSealing(false)}, nil} {
		exp, err := exporter.New(ctx, append([]exporter.Option{exporter.WithDatabaseURL(benchDB(b)), exporter.WithMigrate(false)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		lp := sdklog.NewLoggerProvider(
			sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"))),
			sdklog.WithProcessor(exporter.NewProcessor(exp, exporter.WithQueueSize(4*benchBatch), sdklog.WithExportMaxBatchSize(benchBatch))),
		)
		defer lp.Shutdown(ctx)
		pipes = append(pipes, &pipe{lp: lp, l: lp.Logger("bench")})
	}
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range pipes {
			start := time.Now()
			for j := 0; j < benchBatch; j++ {
				var r log.Record
				r.SetEventName(otelaudit.EventName)
				r.SetTimestamp(time.Now())
				r.AddAttributes(benchAttrs(uuid.Must(uuid.NewV7()), j)...)
				p.l.Emit(ctx, r)
			}
			if err := p.lp.ForceFlush(ctx); err != nil {
				b.Fatal(err)
			}
			p.spent += time.Since(start)
		}
	}
	b.StopTimer()
	rows := float64(b.N * benchBatch)
	b.ReportMetric(rows/pipes[0].spent.Seconds(), "plain-rows/s")
	b.ReportMetric(rows/pipes[1].spent.Seconds(), "sealed-rows/s")
	b.ReportMetric(pipes[0].spent.Seconds()/pipes[1].spent.Seconds(), "sealed/plain")
}
