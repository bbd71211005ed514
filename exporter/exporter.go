// Package exporter writes otelaudit audit events to PostgreSQL. It provides
// an OpenTelemetry Logs SDK [sdklog.Exporter] that maps every audit record to
// one audit_log row and writes each batch in one round trip, and
// [NewProcessor], the batch processor that lets only audit events reach it.
package exporter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// Exporter is an [sdklog.Exporter] that writes audit records to PostgreSQL.
// Create it with [New] and register it through [NewProcessor].
type Exporter struct {
	pool     *pgxpool.Pool
	ownsPool bool
	writer   *pgwriter.Writer
	retry    RetryConfig

	mu     sync.Mutex // serialises Export's use of the scratch state below
	mapper auditrow.Mapper
	src    lazyRows
	attrs  []attribute.KeyValue
	res    *resource.Resource
	svc    string

	stopped atomic.Bool
	stats   stats
}

var _ sdklog.Exporter = (*Exporter)(nil)

// New connects to PostgreSQL, applies the schema migrations unless
// WithMigrate(false) is given, and returns an Exporter.
func New(ctx context.Context, opts ...Option) (*Exporter, error) {
	cfg := newConfig(opts)
	if err := migrations.ValidateTable(cfg.table); err != nil {
		return nil, fmt.Errorf("otelaudit exporter: %w", err)
	}
	e := &Exporter{pool: cfg.pool, retry: cfg.retry}
	e.mapper.MaxArgsBytes = cfg.maxArgsBytes
	if e.pool == nil {
		pc, err := pgxpool.ParseConfig(cfg.databaseURL)
		if err != nil {
			return nil, fmt.Errorf("otelaudit exporter: parse database URL: %w", err)
		}
		if e.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			return nil, fmt.Errorf("otelaudit exporter: open pool: %w", err)
		}
		e.ownsPool = true
	}
	if cfg.migrate {
		if err := migrateWithPool(ctx, e.pool, cfg.table); err != nil {
			e.closePool()
			return nil, fmt.Errorf("otelaudit exporter: %w", err)
		}
	}
	e.writer = pgwriter.New(e.pool, cfg.table)
	return e, nil
}

// Export maps the audit records of records to rows and writes them in one
// round trip. Records that are not audit events are skipped. Transient
// database errors are retried within ctx and the retry policy; a returned
// error means the batch was not written.
func (e *Exporter) Export(ctx context.Context, records []sdklog.Record) error {
	if e.stopped.Load() {
		return sdklog.ErrExporterShutdown
	}
	e.mu.Lock()
	defer e.mu.Unlock()

	// Map lazily: the COPY encodes and sends each row as soon as it is
	// mapped, so mapping overlaps with PostgreSQL ingesting the rows before.
	e.src.reset(e, records)
	e.stats.skipped.Add(int64(len(records) - len(e.src.audit)))
	res, err := e.write(ctx, &e.src)
	e.stats.add(res)
	n := len(e.src.audit)
	e.src.release()
	if err != nil {
		return fmt.Errorf("otelaudit exporter: %d records not written: %w", n, err)
	}
	return nil
}

// lazyRows is the pgwriter.Source of one Export: it maps the audit records
// of the batch in order, on first use.
type lazyRows struct {
	e       *Exporter
	records []sdklog.Record
	audit   []int // indexes of the audit events in records
	rows    []auditrow.Row
	rec     auditrow.Record
}

func (l *lazyRows) reset(e *Exporter, records []sdklog.Record) {
	l.e, l.records = e, records
	l.audit = l.audit[:0]
	for i := range records {
		if auditrow.IsAuditEvent(records[i].EventName()) {
			l.audit = append(l.audit, i)
		}
	}
	l.rows = l.rows[:0]
	e.mapper.Reset()
}

// release drops every reference to the SDK's records.
func (l *lazyRows) release() {
	l.records = nil
	l.rec = auditrow.Record{}
	clear(l.e.attrs)
}

func (l *lazyRows) Len() int { return len(l.audit) }

func (l *lazyRows) Row(i int) *auditrow.Row {
	for len(l.rows) <= i {
		l.e.attrs = l.e.attrs[:0]
		l.e.record(&l.records[l.audit[len(l.rows)]], &l.rec)
		l.rows = append(l.rows, l.e.mapper.Map(&l.rec))
	}
	return &l.rows[i]
}

// record copies what the mapping needs out of an SDK record into dst. The
// attributes go to one scratch slice: Map consumes them before the next.
func (e *Exporter) record(r *sdklog.Record, dst *auditrow.Record) {
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		e.attrs = append(e.attrs, kv)
		return true
	})
	*dst = auditrow.Record{
		Timestamp:         r.Timestamp(),
		ObservedTimestamp: r.ObservedTimestamp(),
		TraceID:           r.TraceID(),
		SpanID:            r.SpanID(),
		EventName:         r.EventName(),
		ServiceName:       e.serviceName(r.Resource()),
		Body:              r.Body(),
		Attributes:        e.attrs,
	}
}

func (e *Exporter) serviceName(res *resource.Resource) string {
	if res == nil {
		return ""
	}
	if res != e.res {
		e.res, e.svc = res, ""
		if v, ok := res.Set().Value("service.name"); ok {
			e.svc = v.Emit()
		}
	}
	return e.svc
}

func (e *Exporter) write(ctx context.Context, src pgwriter.Source) (pgwriter.Result, error) {
	if !e.retry.Enabled {
		return e.writer.WriteSource(ctx, src)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = e.retry.InitialInterval
	b.MaxInterval = e.retry.MaxInterval
	opts := []backoff.RetryOption{backoff.WithBackOff(b)}
	if e.retry.MaxElapsedTime > 0 {
		opts = append(opts, backoff.WithMaxElapsedTime(e.retry.MaxElapsedTime))
	}
	var res pgwriter.Result
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		var err error
		res, err = e.writer.WriteSource(ctx, src)
		if err != nil && !pgwriter.Retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, opts...)
	return res, err
}

// ForceFlush does nothing: the exporter holds no records between Exports.
func (e *Exporter) ForceFlush(ctx context.Context) error { return ctx.Err() }

// Shutdown stops the exporter. Export returns [sdklog.ErrExporterShutdown]
// afterwards. It closes the connection pool if the exporter opened it.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if e.stopped.Swap(true) {
		return nil
	}
	done := make(chan struct{})
	go func() {
		e.mu.Lock() // wait for a running Export
		e.mu.Unlock()
		e.closePool()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("otelaudit exporter: shutdown: %w", ctx.Err())
	}
}

func (e *Exporter) closePool() {
	if e.ownsPool {
		e.pool.Close()
	}
}

// Stats are the exporter's running totals.
type Stats struct {
	// Written rows were inserted into audit_log.
	Written int64
	// Duplicates were already stored (replays); nothing was written for them.
	Duplicates int64
	// Rejected rows were refused by PostgreSQL and stored in the reject table.
	Rejected int64
	// Skipped records were not audit events.
	Skipped int64
}

type stats struct {
	written, duplicates, rejected, skipped atomic.Int64
}

func (s *stats) add(r pgwriter.Result) {
	s.written.Add(int64(r.Inserted))
	s.duplicates.Add(int64(r.Duplicates))
	s.rejected.Add(int64(r.Rejected))
}

// Stats returns the exporter's running totals.
func (e *Exporter) Stats() Stats {
	return Stats{
		Written:    e.stats.written.Load(),
		Duplicates: e.stats.duplicates.Load(),
		Rejected:   e.stats.rejected.Load(),
		Skipped:    e.stats.skipped.Load(),
	}
}
