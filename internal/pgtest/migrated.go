package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// NewMigratedDatabase is [NewDatabase] with the otelaudit schema applied
// (migrations.Up with the default table name). It returns the database's URL.
func NewMigratedDatabase(tb testing.TB) string {
	tb.Helper()
	url := NewDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, url); err != nil {
		tb.Fatalf("pgtest: migrate: %v", err)
	}
	return url
}

// NewMigratedPool is [NewMigratedDatabase] with a pool on the database,
// closed when the test ends.
func NewMigratedPool(tb testing.TB) (url string, pool *pgxpool.Pool) {
	tb.Helper()
	url = NewMigratedDatabase(tb)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		tb.Fatalf("pgtest: pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return url, pool
}

// WaitForPartitions waits up to 30 s until audit_log has the partition
// named present and not the one named absent (a writer's maintenance
// creating and dropping them in the background), failing the test
// otherwise.
func WaitForPartitions(tb testing.TB, db migrations.DB, present, absent string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		parts, err := migrations.Partitions(context.Background(), db)
		if err != nil {
			tb.Fatal(err)
		}
		var havePresent, haveAbsent bool
		for _, p := range parts {
			havePresent = havePresent || p.Name == present
			haveAbsent = haveAbsent || p.Name == absent
		}
		if havePresent && !haveAbsent {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after 30 s: partition %s there = %v (want true), %s there = %v (want false)", present, havePresent, absent, haveAbsent)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
