package exporter

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

func migrateWithPool(ctx context.Context, pool *pgxpool.Pool, table string) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return migrations.UpDB(ctx, db, migrations.WithTable(table))
}
