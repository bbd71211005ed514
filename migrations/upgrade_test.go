package migrations_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// TestUpgradeV1KeepsEveryRow fills a v1 table with a million rows (set
// OTELAUDIT_UPGRADE_ROWS to change it) inside PostgreSQL, migrates it to the
// latest version in place and checks every row is there, unique by
// request_id, with its id and values, and that queries, writes and the down
// migration work.
func TestUpgradeV1KeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := 1_000_000
	if s := os.Getenv("OTELAUDIT_UPGRADE_ROWS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if testing.Short() {
		n = 10_000
	}
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url, 1); err != nil {
		t.Fatal(err)
	}
	db := newPool(t, url)
	start := time.Now()
	// 40 days of history up to now, plus a few skewed clocks.
	if _, err := db.Exec(ctx, `
		INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
		                       request_args, response_status, error_message, latency_ms, trace_id, span_id,
		                       service_name, attributes)
		SELECT gen_random_uuid(), now() - (i * (40 * 86400.0 / $1)) * interval '1 second',
		       'user-' || (i % 500), 'admin', 'tool-' || (i % 20), 'demo', '{"q":"x"}',
		       CASE WHEN i % 50 = 0 THEN 'error' ELSE 'ok' END, CASE WHEN i % 50 = 0 THEN 'boom' END,
		       i % 1000, md5(i::text), left(md5(i::text), 16), 'gw',
		       jsonb_build_object('mcp.session.id', 'sess-' || (i / 100), 'mcp.method.name', 'tools/call')
		FROM generate_series(1, $1) i`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name, response_status, latency_ms)
		VALUES (gen_random_uuid(), '1970-01-01', 'a','r','t','b','ok',1), (gen_random_uuid(), '2100-01-01', 'a','r','t','b','ok',1)`); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %d v1 rows in %v", n+2, time.Since(start))
	var sumBefore, maxBefore int64
	if err := db.QueryRow(ctx, `SELECT sum(hashtext(request_id::text || "timestamp"::text || tool_name || id::text)::bigint), max(id) FROM audit_log`).Scan(&sumBefore, &maxBefore); err != nil {
		t.Fatal(err)
	}
	db.Reset() // no connection may keep v1's plans

	start = time.Now()
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatal(err)
	}
	t.Logf("upgraded %d rows v1 -> v%d in %v", n+2, migrations.Latest(), time.Since(start))

	var count, distinct int
	var sumAfter int64
	if err := db.QueryRow(ctx, `SELECT count(*), count(DISTINCT request_id), sum(hashtext(request_id::text || "timestamp"::text || tool_name || id::text)::bigint) FROM audit_log`).Scan(&count, &distinct, &sumAfter); err != nil {
		t.Fatal(err)
	}
	if count != n+2 || distinct != n+2 || sumAfter != sumBefore {
		t.Fatalf("after upgrade: %d rows, %d request ids, checksum %d; want %d, %d, %d", count, distinct, sumAfter, n+2, n+2, sumBefore)
	}
	var inDefault int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_log_default`).Scan(&inDefault); err != nil || inDefault != 2 {
		t.Errorf("default partition holds %d rows, %v; want the 2 skewed ones", inDefault, err)
	}
	// Queries use the new indexes; writes get fresh ids.
	rows, err := db.Query(ctx, `EXPLAIN SELECT * FROM audit_log WHERE trace_id = md5('77')`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "trace_id_idx") {
		t.Errorf("trace lookup does not use the trace index:\n%s", p)
	}
	var got int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE attributes->>'mcp.session.id' = 'sess-7'`).Scan(&got); err != nil || got != 100 {
		t.Errorf("session sess-7: %d rows, %v; want 100", got, err)
	}
	id := uuid.New()
	if k := insert(t, db, "audit_log", []uuid.UUID{id}, []time.Time{time.Now()}); k != 1 {
		t.Fatalf("write after upgrade: %d rows", k)
	}
	var newID int64
	if err := db.QueryRow(ctx, `SELECT id FROM audit_log WHERE request_id = $1`, id).Scan(&newID); err != nil || newID <= maxBefore {
		t.Errorf("new row id %d (max before %d), %v", newID, maxBefore, err)
	}

	if testing.Short() || n <= 100_000 {
		// Down again keeps every row too.
		if err := migrations.Migrate(ctx, url, 1); err != nil {
			t.Fatalf("down: %v", err)
		}
		if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&count); err != nil || count != n+3 {
			t.Errorf("after down: %d rows, %v; want %d", count, err, n+3)
		}
	}
}
