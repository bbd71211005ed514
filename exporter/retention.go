package exporter

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// partitionInterval is how often the exporter creates the coming partitions
// and applies its retention.
const partitionInterval = time.Hour

// partitionConfig holds the partition maintenance and retention settings.
type partitionConfig struct {
	ahead      time.Duration // 0: no partition maintenance
	aheadSet   bool
	retention  time.Duration // 0: keep everything
	beforeDrop migrations.DropHook
}

// WithPartitionsAhead sets how far ahead of now the exporter creates the
// audit table's partitions, at start and every hour (default
// migrations.DefaultAhead, 72h; 0 turns it off, for a deployment where
// `otelaudit migrate` or another process does it). Rows never fail for a
// missing partition — they land in the default partition — but a day's
// rows belong in the day's partition, for retention and for the indexes.
// It needs only the otelaudit_writer role, and many exporters may do it at
// once (an advisory lock serialises them).
func WithPartitionsAhead(d time.Duration) Option {
	return optionFunc(func(c config) config {
		c.partitions.ahead, c.partitions.aheadSet = d, true
		return c
	})
}

// WithRetention makes the exporter drop, at start and every hour, the audit
// table's partitions whose whole range is older than d (and delete the
// default partition's rows older than d): O(1) in the data dropped, no dead
// rows. Off by default (d = 0). As otelaudit_writer it may only drop data
// older than the database's min_retention (7 days unless the table's owner
// changes it); a refused drop is reported through otel.Handle.
func WithRetention(d time.Duration) Option {
	return optionFunc(func(c config) config { c.partitions.retention = d; return c })
}

// partitionTasks returns the maintenance tasks the partition options ask
// for.
func partitionTasks(c config) []task {
	opt := migrations.WithTable(c.table)
	ahead := c.partitions.ahead
	if !c.partitions.aheadSet {
		ahead = migrations.DefaultAhead
	}
	var tasks []task
	if ahead > 0 {
		tasks = append(tasks, task{name: "partition maintenance", interval: partitionInterval,
			run: func(ctx context.Context, pool *pgxpool.Pool) error {
				_, err := migrations.EnsurePartitions(ctx, pool, opt, migrations.WithAhead(ahead))
				if isV1(err) {
					return nil // a v1 schema (WithMigrate(false)) has no partitions to keep
				}
				return err
			}})
	}
	if d := c.partitions.retention; d > 0 {
		hook := c.partitions.beforeDrop
		tasks = append(tasks, task{name: "retention", interval: partitionInterval,
			run: func(ctx context.Context, pool *pgxpool.Pool) error {
				_, err := migrations.DropPartitions(ctx, pool, time.Now().Add(-d), opt, migrations.WithBeforeDrop(hook))
				return err
			}})
	}
	return tasks
}

// isV1 reports whether err says the partition functions do not exist.
func isV1(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42883"
}
