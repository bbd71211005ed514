package integrity_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestAppendOnly holds that UPDATE, DELETE and TRUNCATE are refused on the
// audit, seal and checkpoint tables, even for their owner, and that the
// owner can still repair deliberately by disabling the trigger.
func TestAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewMigratedDatabase(t)
	conn := pgtest.Connect(t, url)
	mustExec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(`INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name, response_status, latency_ms)
		VALUES (gen_random_uuid(), now(), 's', 'r', 't', 'b', 'ok', 1)`)
	mustExec(`INSERT INTO audit_log_seals (stream_id, seq, kind, prev_hash, row_count, sealed_at, seal_hash)
		VALUES (gen_random_uuid(), 1, 'gap', '\x00', 1, now(), '\x00')`)
	mustExec(`INSERT INTO audit_log_checkpoints (stream_id, seq, seal_hash, closed, signed_at, key_id, signature)
		VALUES (gen_random_uuid(), 1, '\x00', false, now(), 'k', '\x00')`)
	for _, sql := range []string{
		`UPDATE audit_log SET tool_name = 'x'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
		`UPDATE audit_log_seals SET row_count = 2`,
		`DELETE FROM audit_log_seals`,
		`TRUNCATE audit_log_seals`,
		`UPDATE audit_log_checkpoints SET closed = true`,
		`DELETE FROM audit_log_checkpoints`,
		`TRUNCATE audit_log_checkpoints`,
	} {
		_, err := conn.Exec(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", sql, err)
		}
	}
	// A partition addressed directly is refused too (schema v2). Only a
	// partition that holds rows can refuse a row-level DELETE (one that
	// deletes nothing fires no trigger), so one row lands in each.
	var parts []string
	mustExec(`INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name, response_status, latency_ms)
		SELECT gen_random_uuid(), d, 's', 'r', 't', 'b', 'ok', 1
		FROM generate_series(now() - interval '1 day', now() + interval '3 days', interval '1 day') d
		UNION ALL SELECT gen_random_uuid(), '1970-01-01', 's', 'r', 't', 'b', 'ok', 1`)
	rows, err := conn.Query(ctx, `SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'audit_log'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	for _, p := range parts {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+p).Scan(&n); err != nil || n == 0 {
			t.Errorf("partition %s holds %d rows (%v), want at least one", p, n, err)
		}
		if _, err := conn.Exec(ctx, `DELETE FROM `+p); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("DELETE FROM partition %s: err = %v, want the append-only refusal", p, err)
		}
	}
	// The documented deliberate repair.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`,
		`UPDATE audit_log SET tool_name = 'repaired'`,
		`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`,
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatalf("repair: %s: %v", sql, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var tool string
	if err := conn.QueryRow(ctx, `SELECT min(tool_name) FROM audit_log`).Scan(&tool); err != nil || tool != "repaired" {
		t.Fatalf("after the repair: tool_name = %q, %v", tool, err)
	}
	if _, err := conn.Exec(ctx, `UPDATE audit_log SET tool_name = 'again'`); err == nil {
		t.Fatal("UPDATE after the repair's ENABLE TRIGGER succeeded")
	}
}
