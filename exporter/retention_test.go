package exporter_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	neturl "net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// TestRetentionAndPartitionMaintenance: the exporter creates the coming
// partitions and drops the expired ones in the background, from the start.
func TestRetentionAndPartitionMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := pgtest.NewMigratedPool(t)
	old := time.Now().UTC().Truncate(24 * time.Hour).Add(-40 * 24 * time.Hour)
	if _, err := migrations.EnsurePartitionsRange(ctx, pool, old, old.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name, response_status, latency_ms)
		VALUES (gen_random_uuid(), $1, 's', 'r', 't', 'b', 'ok', 1), (gen_random_uuid(), now(), 's', 'r', 't', 'b', 'ok', 1)`, old.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	exp, err := exporter.New(ctx, exporter.WithPool(pool), exporter.WithRetention(30*24*time.Hour),
		exporter.WithPartitionsAhead(10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(ctx) }()

	far := "audit_log_p" + time.Now().UTC().Add(9*24*time.Hour).Format("20060102")
	gone := "audit_log_p" + old.Format("20060102")
	pgtest.WaitForPartitions(t, pool, far, gone)
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows = %d, %v; want today's 1", n, err)
	}
}

// TestWriterRoleExports runs the exporter as a login in otelaudit_writer
// with WithMigrate(false), the least-privilege set-up the README shows: its
// rows land, and UPDATE, DELETE and TRUNCATE are refused to it.
func TestWriterRoleExports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewMigratedDatabase(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	role := "otelaudit_t_" + hex.EncodeToString(b[:])
	admin := pgtest.Connect(t, pgtest.AdminURL())
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN IN ROLE otelaudit_writer`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), pgtest.AdminURL()); err == nil {
			_, _ = c.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
			_ = c.Close(context.Background())
		}
	})
	u, _ := neturl.Parse(url)
	u.User = neturl.User(role)

	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(u.String()), exporter.WithMigrate(false))
	if err != nil {
		t.Fatal(err)
	}
	provider := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	logger := provider.Logger("test")
	for i := range 10 {
		emit(ctx, logger, time.Now(), call(uuid.Must(uuid.NewV7()), fmt.Sprintf("tool-%d", i)))
	}
	if err := provider.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	owner := pgtest.Connect(t, url)
	var n int
	if err := owner.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 10 {
		t.Errorf("rows written as the writer = %d, %v; want 10", n, err)
	}
	writer := pgtest.Connect(t, u.String())
	for _, q := range []string{`UPDATE audit_log SET tool_name = 'x'`, `DELETE FROM audit_log`, `TRUNCATE audit_log`} {
		if _, err := writer.Exec(ctx, q); err == nil {
			t.Errorf("writer: %s succeeded", q)
		}
	}
}
