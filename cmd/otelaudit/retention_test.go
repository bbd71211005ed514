package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

func TestMigrateAndRetention(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	env := dbEnv(url)

	r := mustRun(t, env, "migrate", "--status")
	if !strings.Contains(r.stdout, "version 0 of") {
		t.Errorf("status before: %q", r.stdout)
	}
	r = mustRun(t, env, "migrate", "--to", "1")
	if !strings.Contains(r.stdout, "0 -> 1") {
		t.Errorf("migrate --to 1: %q", r.stdout)
	}
	conn := pgtest.Connect(t, url)
	ctx := context.Background()
	// v1 rows, 40 and 20 days old and today's, upgraded in place.
	if _, err := conn.Exec(ctx, `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name, response_status, latency_ms)
		SELECT gen_random_uuid(), now() - d * interval '1 day', 's', 'r', 't', 'b', 'ok', 1 FROM unnest(ARRAY[40, 20, 0]) d`); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, env, "migrate")
	if !strings.Contains(r.stdout, "1 -> ") {
		t.Errorf("migrate: %q", r.stdout)
	}
	r = mustRun(t, env, "migrate")
	if !strings.Contains(r.stdout, "up to date") {
		t.Errorf("migrate again: %q", r.stdout)
	}

	if r := run(t, env, "retention"); r.code != 2 {
		t.Errorf("retention without --keep: exit %d", r.code)
	}
	if r := run(t, env, "retention", "--keep", "soon"); r.code != 2 || !strings.Contains(r.stderr, "--keep") {
		t.Errorf("retention --keep soon: exit %d, %q", r.code, r.stderr)
	}
	old := time.Now().UTC().Add(-40 * 24 * time.Hour).Format("20060102")
	r = mustRun(t, env, "retention", "--keep", "30d", "--dry-run")
	if !strings.Contains(r.stdout, "would drop audit_log_p"+old) {
		t.Errorf("dry run: %q", r.stdout)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows after the dry run = %d, %v", n, err)
	}
	r = mustRun(t, env, "retention", "--keep", "30d")
	if !strings.Contains(r.stdout, "dropped audit_log_p"+old) {
		t.Errorf("retention: %q", r.stdout)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows after retention = %d, %v; want 2", n, err)
	}
	parts, err := migrations.Partitions(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Name == "audit_log_p"+old {
			t.Errorf("partition %s still there", p.Name)
		}
	}
}
