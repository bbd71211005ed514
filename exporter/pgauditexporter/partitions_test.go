package pgauditexporter

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// TestRetentionAndPartitionsAhead: with retention and partitions_ahead set,
// the component creates the coming partitions and drops the expired ones
// from its start.
func TestRetentionAndPartitionsAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, pool := pgtest.NewMigratedPool(t)
	old := time.Now().UTC().Truncate(24 * time.Hour).Add(-40 * 24 * time.Hour)
	if _, err := migrations.EnsurePartitionsRange(ctx, pool, old, old.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(url)
	cfg.Retention = 30 * 24 * time.Hour
	cfg.PartitionsAhead = 10 * 24 * time.Hour
	newTestExporter(t, cfg)

	far := "audit_log_p" + time.Now().UTC().Add(9*24*time.Hour).Format("20060102")
	gone := "audit_log_p" + old.Format("20060102")
	pgtest.WaitForPartitions(t, pool, far, gone)
}

func TestRetentionValidate(t *testing.T) {
	cfg := testConfig("postgres://localhost/x")
	cfg.Retention = -time.Hour
	cfg.PartitionsAhead = -time.Hour
	err := cfg.Validate()
	if err == nil {
		t.Fatal("negative retention and partitions_ahead: no error")
	}
	for _, want := range []string{"retention -1h0m0s", "partitions_ahead -1h0m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
