package exporter_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

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
