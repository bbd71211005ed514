package pgauditexporter // import "github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter"

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// partitionInterval is how often partitions are created ahead and
// retention is applied.
const partitionInterval = time.Hour

// partitionMaintenance runs the partition maintenance and retention of
// PartitionsAhead and Retention in the background while the component runs.
type partitionMaintenance struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (e *logsExporter) startPartitionMaintenance() {
	if e.cfg.PartitionsAhead <= 0 && e.cfg.Retention <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.maint = partitionMaintenance{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.maint.done)
		tick := time.NewTicker(partitionInterval)
		defer tick.Stop()
		for {
			e.maintainPartitions(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// maintainPartitions creates the coming partitions and drops the expired
// ones once; failures are logged and tried again at the next interval
// (rows never fail for a missing partition: they land in the default one).
func (e *logsExporter) maintainPartitions(ctx context.Context) {
	if !e.migrated.Load() {
		return // PostgreSQL was away at start: the migration runs before the first write
	}
	opt := migrations.WithTable(e.cfg.Table)
	if e.cfg.PartitionsAhead > 0 {
		if created, err := migrations.EnsurePartitions(ctx, e.pool, opt, migrations.WithAhead(e.cfg.PartitionsAhead)); err != nil {
			if ctx.Err() == nil {
				e.logger.Warn("creating the coming audit partitions failed; trying again in an hour", zap.Error(err))
			}
		} else if len(created) > 0 {
			e.logger.Info("created audit partitions", zap.Strings("partitions", created))
		}
	}
	if e.cfg.Retention > 0 {
		dropped, err := migrations.DropPartitions(ctx, e.pool, time.Now().Add(-e.cfg.Retention), opt)
		for _, p := range dropped {
			e.logger.Info("retention dropped audit rows", zap.String("partition", p.Name),
				zap.Time("from", p.From), zap.Time("to", p.To), zap.Bool("default_partition", p.Default))
		}
		if err != nil && ctx.Err() == nil {
			e.logger.Warn("retention failed; trying again in an hour", zap.Error(err))
		}
	}
}

func (e *logsExporter) stopPartitionMaintenance() {
	if e.maint.cancel == nil {
		return
	}
	e.maint.cancel()
	<-e.maint.done
}
