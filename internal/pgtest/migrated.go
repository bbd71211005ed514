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
