package exporter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// A spooled batch damaged on disk (one flipped byte) is not replayed; its
// records are counted as dropped with reason spool_corrupt, and every other
// record lands: spooled = rows + counted, nothing lost silently.
func TestSpoolFlippedByteIsCountedInRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()

	// PostgreSQL away (nothing listens on port 1): ten batches of 100
	// records go to the spool.
	away, err := exporter.New(ctx, exporter.WithDatabaseURL("postgres://postgres@127.0.0.1:1/audit"),
		exporter.WithMigrate(false), exporter.WithSpool(dir, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	const batches, per = 10, 100
	for b := range batches {
		batch := make([]sdklog.Record, per)
		for i := range batch {
			batch[i] = record(call(uuid.Must(uuid.NewV7()), fmt.Sprintf("tool-%d-%d", b, i))...)
		}
		if err := away.Export(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if st := away.Stats(); st.Spooled != batches*per {
		t.Fatalf("spooled %d, want %d", st.Spooled, batches*per)
	}
	if err := away.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment in %s (%v)", dir, err)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	// The next exporter, with PostgreSQL there, replays what is intact.
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url), exporter.WithSpool(dir, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	waitFor(t, "the spool to drain", func() bool { return exp.Stats().SpoolBacklog == 0 })
	var rows int64
	if err := pgtest.Connect(t, url).QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	st := exp.Stats()
	lost := st.DroppedByReason[exporter.DropCorrupt]
	t.Logf("%d spooled, %d rows replayed, %d counted as spool_corrupt", batches*per, rows, lost)
	if lost == 0 || rows+lost != batches*per || st.Replayed != rows {
		t.Errorf("%d rows + %d counted corrupt != %d spooled (stats %+v)", rows, lost, batches*per, st)
	}
	if lost > per {
		t.Errorf("%d records counted lost for one flipped byte, want at most one batch (%d)", lost, per)
	}
}
