package pgauditexporter // import "github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter"

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/dbmigrate"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
	"github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter/internal/metadata"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// startMigrateTimeout bounds the schema migration tried on start; when it
// fails because PostgreSQL is unreachable, the migration is retried before
// the first write, so that a Collector can start (and drain its persistent
// queue later) while the database is away.
const startMigrateTimeout = 10 * time.Second

type logsExporter struct {
	cfg    *Config
	logger *zap.Logger

	pool   *pgxpool.Pool
	writer *pgwriter.Writer
	seal   *sealing // integrity.go

	migrateMu sync.Mutex
	migrated  atomic.Bool

	batches sync.Pool // *batch

	// telemetry holds the component's own metrics, declared in
	// metadata.yaml and generated into internal/metadata.
	telemetry *metadata.TelemetryBuilder
	// dropped is otelaudit.records.dropped, defined once for both front
	// ends in exporter/internal/telemetry: audit records this component
	// gave up on (a permanent write error), by reason.
	dropped metric.Int64Counter

	maint partitionMaintenance // partitions.go
}

// batch is the scratch state of one push; pushes run concurrently (one per
// sending_queue consumer), each with its own batch.
type batch struct {
	mapper auditrow.Mapper
	recs   []auditrow.Record
	attrs  []attribute.KeyValue
	rows   []auditrow.Row
}

func newLogsExporter(cfg *Config, set component.TelemetrySettings) (*logsExporter, error) {
	e := &logsExporter{cfg: cfg, logger: set.Logger}
	e.batches.New = func() any {
		b := &batch{}
		b.mapper.MaxArgsBytes = cfg.MaxArgsBytes
		return b
	}
	tb, err := metadata.NewTelemetryBuilder(set)
	if err != nil {
		return nil, fmt.Errorf("pgauditexporter: create metrics: %w", err)
	}
	e.telemetry = tb
	if e.dropped, err = telemetry.RecordsDropped.Int64Counter(metadata.Meter(set)); err != nil {
		return nil, fmt.Errorf("pgauditexporter: create metrics: %w", err)
	}
	return e, nil
}

// start opens the connection pool (which connects lazily) and applies the
// schema migrations when Migrate is set and PostgreSQL is reachable.
func (e *logsExporter) start(ctx context.Context, _ component.Host) error {
	pc, err := e.cfg.poolConfig()
	if err != nil {
		return fmt.Errorf("pgauditexporter: %w", err)
	}
	if e.pool, err = pgxpool.NewWithConfig(context.WithoutCancel(ctx), pc); err != nil {
		return fmt.Errorf("pgauditexporter: open pool: %w", err)
	}
	sealOpts, err := e.sealingOptions() // integrity.go
	if err != nil {
		e.pool.Close()
		return fmt.Errorf("pgauditexporter: %w", err)
	}
	e.writer = pgwriter.New(e.pool, e.cfg.Table, sealOpts...)
	e.startCheckpoints()
	// Partition maintenance and retention start once start returns (and
	// skip their round while the schema is not migrated yet).
	defer e.startPartitionMaintenance()
	if !e.cfg.Migrate {
		e.migrated.Store(true)
		return nil
	}
	mctx, cancel := context.WithTimeout(ctx, startMigrateTimeout)
	defer cancel()
	if err := e.pool.Ping(mctx); err != nil {
		e.logger.Warn("PostgreSQL is unreachable; the schema migration will run before the first write",
			zap.Error(err))
		return nil
	}
	if err := e.migrate(mctx); err != nil {
		return fmt.Errorf("pgauditexporter: %w", err)
	}
	return nil
}

// migrate applies the schema migrations once.
func (e *logsExporter) migrate(ctx context.Context) error {
	if e.migrated.Load() {
		return nil
	}
	e.migrateMu.Lock()
	defer e.migrateMu.Unlock()
	if e.migrated.Load() {
		return nil
	}
	if err := dbmigrate.Up(ctx, e.pool, migrations.WithTable(e.cfg.Table)); err != nil {
		return err
	}
	e.migrated.Store(true)
	return nil
}

func (e *logsExporter) shutdown(ctx context.Context) error {
	e.stopPartitionMaintenance()
	e.telemetry.Shutdown()
	e.closeSealing(ctx)
	if e.pool != nil {
		e.pool.Close()
	}
	return nil
}

// pushLogs maps the audit records of ld to rows and writes them in one round
// trip. Connection failures are returned as they are, so that the
// exporterhelper retries the batch (from the persistent queue, when one is
// configured); errors that no retry can fix are permanent. Rows PostgreSQL
// refuses are not errors: the writer isolates them, writes the rest of the
// batch and stores each refused row in the reject table; they are counted in
// otelcol_exporter_pgaudit_rows_rejected and logged.
func (e *logsExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	b := e.batches.Get().(*batch)
	defer e.batches.Put(b)

	skipped := b.collect(ld)
	b.mapper.Reset()
	var notAudit int
	b.rows, notAudit = b.mapper.MapAll(b.rows[:0], b.recs)
	skipped += notAudit
	clear(b.recs) // drop references into ld
	clear(b.attrs)
	if skipped > 0 {
		e.telemetry.ExporterPgauditRecordsSkipped.Add(ctx, int64(skipped))
		e.logger.Debug("Skipped log records that are not audit events", zap.Int("skipped", skipped))
	}
	if len(b.rows) == 0 {
		return nil
	}
	defer clear(b.rows)

	if err := e.migrate(ctx); err != nil {
		// The queue keeps the batch; the migration is tried again.
		return fmt.Errorf("pgauditexporter: apply schema migrations: %w", err)
	}
	res, err := e.writer.Write(ctx, b.rows)
	if res.Inserted > 0 {
		e.telemetry.ExporterPgauditRowsInserted.Add(ctx, int64(res.Inserted))
	}
	if res.Duplicates > 0 {
		e.telemetry.ExporterPgauditRowsDuplicate.Add(ctx, int64(res.Duplicates))
	}
	if res.Rejected > 0 {
		e.telemetry.ExporterPgauditRowsRejected.Add(ctx, int64(res.Rejected))
		e.logger.Warn("PostgreSQL refused audit rows; they were stored in the reject table",
			zap.Int("rejected", res.Rejected), zap.String("reject_table", e.cfg.Table+"_rejects"))
	}
	if err == nil {
		return nil
	}
	if pgwriter.Retryable(err) {
		return err
	}
	// No retry can fix it: the exporterhelper drops the batch. Count its
	// audit rows as lost, with the reason, and say so.
	lost := len(b.rows) - res.Inserted - res.Duplicates - res.Rejected
	if lost > 0 {
		e.dropped.Add(ctx, int64(lost), telemetry.Dropped(telemetry.ReasonExportFailed))
		e.logger.Error("Audit rows lost: PostgreSQL refused the batch with an error no retry can fix",
			zap.Int("dropped", lost), zap.String("reason", telemetry.ReasonExportFailed), zap.Error(err))
	}
	return consumererror.NewPermanent(err)
}

// collect converts the log records of ld to auditrow.Records. Records that
// are not audit events are counted and left out.
func (b *batch) collect(ld plog.Logs) (skipped int) {
	b.recs, b.attrs = b.recs[:0], b.attrs[:0]
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		service := ""
		if v, ok := rl.Resource().Attributes().Get("service.name"); ok {
			service = toAttr(v).String()
		}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				if !auditrow.IsAuditEvent(lr.EventName()) {
					skipped++
					continue
				}
				b.recs = append(b.recs, b.record(lr, service))
			}
		}
	}
	return skipped
}

// record converts one log record. Its attributes share the batch's scratch
// slice.
func (b *batch) record(lr plog.LogRecord, service string) auditrow.Record {
	start := len(b.attrs)
	lr.Attributes().Range(func(k string, v pcommon.Value) bool {
		b.attrs = append(b.attrs, attribute.KeyValue{Key: attribute.Key(k), Value: toAttr(v)})
		return true
	})
	return auditrow.Record{
		Timestamp:         toTime(lr.Timestamp()),
		ObservedTimestamp: toTime(lr.ObservedTimestamp()),
		TraceID:           trace.TraceID(lr.TraceID()),
		SpanID:            trace.SpanID(lr.SpanID()),
		EventName:         lr.EventName(),
		ServiceName:       service,
		Body:              toAttr(lr.Body()),
		Attributes:        b.attrs[start:len(b.attrs):len(b.attrs)],
	}
}

// toTime converts an OTLP timestamp; zero (unset) is the zero time.
func toTime(ts pcommon.Timestamp) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	return ts.AsTime()
}

// toAttr converts a pdata value to the equivalent attribute value, keeping
// its kind: Str, Int, Double, Bool, Bytes, Slice, Map and Empty.
func toAttr(v pcommon.Value) attribute.Value {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return attribute.StringValue(v.Str())
	case pcommon.ValueTypeInt:
		return attribute.Int64Value(v.Int())
	case pcommon.ValueTypeDouble:
		return attribute.Float64Value(v.Double())
	case pcommon.ValueTypeBool:
		return attribute.BoolValue(v.Bool())
	case pcommon.ValueTypeBytes:
		return attribute.ByteSliceValue(v.Bytes().AsRaw())
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		vals := make([]attribute.Value, s.Len())
		for i := range vals {
			vals[i] = toAttr(s.At(i))
		}
		return attribute.SliceValue(vals...)
	case pcommon.ValueTypeMap:
		m := v.Map()
		kvs := make([]attribute.KeyValue, 0, m.Len())
		m.Range(func(k string, v pcommon.Value) bool {
			kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(k), Value: toAttr(v)})
			return true
		})
		return attribute.MapValue(kvs...)
	}
	return attribute.Value{}
}
