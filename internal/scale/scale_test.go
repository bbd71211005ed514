package scale_test

import (
	"context"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/internal/scale"
)

// TestFillAndLookups fills a small history and checks that every lookup
// finds rows and reads each partition that holds rows through an index.
func TestFillAndLookups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := pgtest.NewMigratedPool(t)
	now := time.Now().UTC()
	w := scale.NewWorkload(20_000, now.Add(-3*24*time.Hour), now)
	if err := scale.Fill(ctx, pool, "audit_log", w, 0, w.Rows, true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) audit_log`); err != nil {
		t.Fatal(err)
	}
	size, err := scale.Measure(ctx, pool, "audit_log")
	if err != nil {
		t.Fatal(err)
	}
	if size.Rows != w.Rows || size.Partitions < 4 {
		t.Fatalf("size = %+v, want %d rows in at least 4 partitions", size, w.Rows)
	}
	var distinct int64
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT request_id) FROM audit_log`).Scan(&distinct); err != nil || distinct != w.Rows {
		t.Errorf("distinct request ids = %d, %v; want %d", distinct, err, w.Rows)
	}
	lookups, err := scale.Lookups(ctx, pool, "audit_log", w)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lookups {
		tm, err := scale.Time(ctx, pool, l, 2)
		if err != nil {
			t.Fatal(err)
		}
		if tm.Rows == 0 {
			t.Errorf("%s: no rows", l.Name)
		}
		// Every question, the aggregate over the last hour included (an
		// index-only scan of ("timestamp", tool_name) since 000005), reads
		// each partition with rows through an index.
		if !tm.UsesIndex {
			t.Errorf("%s: not answered from an index:\n%s", l.Name, tm.Plan)
		}
	}
	rate, err := scale.ExportRate(ctx, pool, "audit_log", scale.Records(2, 1024))
	if err != nil || rate <= 0 {
		t.Errorf("export rate = %v, %v", rate, err)
	}
}
