package migrations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sentinel-gateway/otelaudit/internal/integrity"
)

// recordRetention keeps retention verifiable (see the README's "Tamper
// evidence"): before p's rows disappear, each stream's last seal in p's
// range is recorded in the retention table, in the dropping transaction.
// [DropPartitions] calls it before the caller's [DropHook].
func recordRetention(ctx context.Context, tx pgx.Tx, cfg config, p Partition) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{cfg.table + "_retention"}.Sanitize()).Scan(&exists); err != nil {
		return fmt.Errorf("migrations: record retention: %w", err)
	}
	if !exists {
		return nil // schema before 000003: nothing is sealed
	}
	if _, err := integrity.RecordRetention(ctx, tx, integrity.TablesFor(cfg.table), p.Name, p.From, p.To); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}
