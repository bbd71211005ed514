package migrations_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

func columns(t *testing.T, url, table string) map[string]string {
	t.Helper()
	conn := pgtest.Connect(t, url)
	rows, err := conn.Query(context.Background(),
		`SELECT column_name, data_type || ' ' || is_nullable FROM information_schema.columns WHERE table_name = $1`, table)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var n, ty string
		if err := rows.Scan(&n, &ty); err != nil {
			t.Fatal(err)
		}
		got[n] = ty
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestUpCreatesDesignSchema(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id":              "bigint NO",
		"request_id":      "uuid NO",
		"timestamp":       "timestamp with time zone NO",
		"client_subject":  "text NO",
		"client_role":     "text NO",
		"tool_name":       "text NO",
		"backend_name":    "text NO",
		"request_args":    "jsonb YES",
		"response_status": "text NO",
		"error_message":   "text YES",
		"latency_ms":      "bigint NO",
		"trace_id":        "text YES",
		"span_id":         "text YES",
		"service_name":    "text YES",
		"attributes":      "jsonb YES",
		"created_at":      "timestamp with time zone NO",
		"row_hash":        "bytea YES",
		"seal_stream":     "uuid YES",
		"seal_seq":        "bigint YES",
		"seal_pos":        "integer YES",
	}
	got := columns(t, url, "audit_log")
	if len(got) != len(want) {
		t.Errorf("audit_log has %d columns %v, want %d", len(got), got, len(want))
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("column %s = %q, want %q", c, got[c], w)
		}
	}

	conn := pgtest.Connect(t, url)
	var defs []string
	rows, err := conn.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_log' ORDER BY indexname`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d string
		_ = rows.Scan(&d)
		defs = append(defs, d)
	}
	wantIdx := []string{
		"CREATE UNIQUE INDEX audit_log_pkey ON ONLY public.audit_log USING btree (id, \"timestamp\")",
		"CREATE UNIQUE INDEX audit_log_request_key ON ONLY public.audit_log USING btree (request_id, \"timestamp\")",
		"CREATE INDEX audit_log_session_idx ON ONLY public.audit_log USING hash (((attributes ->> 'mcp.session.id'::text)))",
		"CREATE INDEX audit_log_status_time_idx ON ONLY public.audit_log USING btree (response_status, \"timestamp\") WHERE (response_status <> 'ok'::text)",
		"CREATE INDEX audit_log_subject_time_idx ON ONLY public.audit_log USING btree (client_subject, \"timestamp\")",
		"CREATE INDEX audit_log_time_tool_idx ON ONLY public.audit_log USING btree (\"timestamp\", tool_name)",
		"CREATE INDEX audit_log_trace_id_idx ON ONLY public.audit_log USING hash (trace_id)",
	}
	if len(defs) != len(wantIdx) {
		t.Fatalf("indexes = %q, want %q", defs, wantIdx)
	}
	for i := range defs {
		if defs[i] != wantIdx[i] {
			t.Errorf("index %d = %q, want %q", i, defs[i], wantIdx[i])
		}
	}
	var kind string
	if err := conn.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE relname = 'audit_log'`).Scan(&kind); err != nil || kind != "p" {
		t.Errorf("audit_log relkind = %q, %v; want p (partitioned)", kind, err)
	}

	// Up again: no change, no error.
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	var version int
	var dirty bool
	if err := conn.QueryRow(ctx, `SELECT version, dirty FROM audit_log_schema_migrations`).Scan(&version, &dirty); err != nil {
		t.Fatal(err)
	}
	if version != latestVersion || migrations.Latest() != latestVersion || dirty {
		t.Errorf("version = %d dirty = %v, want %d false", version, dirty, latestVersion)
	}
}

func TestUpConcurrent(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- migrations.Up(ctx, url)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Up: %v", err)
		}
	}
	if got := columns(t, url, "audit_log"); len(got) != auditColumns {
		t.Errorf("audit_log columns = %d, want %d", len(got), auditColumns)
	}
}

func TestWithTable(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, url, migrations.WithTable("mcp_audit")); err != nil {
		t.Fatal(err)
	}
	if got := columns(t, url, "mcp_audit"); len(got) != auditColumns {
		t.Errorf("mcp_audit columns = %d, want %d", len(got), auditColumns)
	}
	if got := columns(t, url, "mcp_audit_rejects"); len(got) != 5 {
		t.Errorf("mcp_audit_rejects columns = %d, want 5", len(got))
	}
	if got := columns(t, url, "audit_log"); len(got) != 0 {
		t.Errorf("audit_log exists although a custom table was asked for")
	}
	// The default table can live beside it: separate version tables.
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatal(err)
	}
	if got := columns(t, url, "audit_log"); len(got) != auditColumns {
		t.Errorf("audit_log columns = %d, want %d", len(got), auditColumns)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, name := range []string{"", "Audit", "a;drop", "x-y", "0abc", "user", "order", "select"} {
		if err := migrations.Up(ctx, pgtest.AdminURL(), migrations.WithTable(name)); err == nil {
			t.Errorf("WithTable(%q): no error", name)
		}
	}
	if err := migrations.Up(ctx, "postgres://%zz"); err == nil {
		t.Error("bad URL: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := migrations.Up(cctx, pgtest.NewDatabase(t)); err == nil {
		t.Error("cancelled context: no error")
	}
}

// auditColumns is how many columns audit_log has: the 16 of v1 and the four
// integrity columns of 000003.
const auditColumns = 20

// latestVersion is the newest migration's version.
const latestVersion = 5
