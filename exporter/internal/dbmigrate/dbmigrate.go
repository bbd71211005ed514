// Package dbmigrate applies the schema migrations over a pgx connection
// pool. The SDK exporter and the pgaudit Collector component both open a
// pgxpool.Pool and migrate through it; this is the one place that does it.
package dbmigrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// Up applies the embedded schema migrations (see [migrations.UpDB]) through
// pool, which stays open.
func Up(ctx context.Context, pool *pgxpool.Pool, opts ...migrations.Option) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if err := migrations.UpDB(ctx, db, opts...); err != nil {
		return fmt.Errorf("dbmigrate: %w", err)
	}
	return nil
}
