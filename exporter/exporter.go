package exporter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/dbmigrate"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/delivery"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/spool"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// ErrUnavailable is wrapped by the error [Exporter.Health] returns while
// audit records cannot be stored durably; the error names the cause.
var ErrUnavailable = delivery.ErrUnavailable

// Exporter is an [sdklog.Exporter] that writes audit records to PostgreSQL.
// Create it with [New] and register it through [NewProcessor].
//
// Export filters and maps the records; everything after (retry, spool,
// replay, health, accounting) is the delivery's.
type Exporter struct {
	cfg      config
	pool     *pgxpool.Pool
	ownsPool bool
	spool    *spool.Spool
	deliv    *delivery.Delivery
	maint    *maintenance
	sealing  *sealing  // integrity.go
	mappings sync.Pool // *mapping, one per Export running

	// mu guards only the handshake between Export and Shutdown: Export
	// checks stopped and registers in running under the read lock, so that
	// Shutdown, once it has set stopped under the write lock, can wait for
	// every Export that got in. No lock is held while a batch is written:
	// the SDK never calls Export concurrently, and the delivery is safe for
	// concurrent use when a caller does.
	mu      sync.RWMutex
	stopped atomic.Bool
	running sync.WaitGroup
}

var _ sdklog.Exporter = (*Exporter)(nil)

// New connects to PostgreSQL, applies the schema migrations unless
// WithMigrate(false) is given, opens the spool when WithSpool is given (and
// starts replaying what a previous process left in it), and returns an
// Exporter.
func New(ctx context.Context, opts ...Option) (*Exporter, error) {
	cfg := newConfig(opts)
	if err := migrations.ValidateTable(cfg.table); err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	e := &Exporter{cfg: cfg, pool: cfg.pool}
	e.mappings.New = func() any { return &mapping{mapper: auditrow.Mapper{MaxArgsBytes: cfg.maxArgsBytes}} }
	if e.pool == nil {
		pc, err := pgxpool.ParseConfig(cfg.databaseURL)
		if err != nil {
			return nil, fmt.Errorf("exporter: parse database URL: %w", err)
		}
		if e.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			return nil, fmt.Errorf("exporter: open pool: %w", err)
		}
		e.ownsPool = true
	}
	if cfg.migrate {
		if err := dbmigrate.Up(ctx, e.pool, migrations.WithTable(cfg.table)); err != nil {
			e.closePool()
			return nil, fmt.Errorf("exporter: %w", err)
		}
	}
	// The writer is made here, once; options that change how rows are
	// written (the integrity seals' stream id and signing key) append to
	// cfg.writerOptions; the sealing of integrity.go adds its own.
	sealing, err := newSealing(e.pool, cfg)
	if err != nil {
		e.closePool()
		return nil, err
	}
	e.sealing = sealing
	writer := pgwriter.New(e.pool, cfg.table, append(cfg.writerOptions, sealing.writerOptions()...)...)

	dc := delivery.Config{
		Writer:        writer,
		Probe:         insertProbe(e.pool, cfg.table),
		SpoolWait:     cfg.spoolWait,
		Retry:         delivery.Retry(cfg.retry),
		Concurrency:   cfg.writeConcurrency,
		ProbeInterval: cfg.probeInterval,
		Meter:         cfg.meterProvider.Meter(ScopeName),
	}
	var corrupt corruptSink
	if cfg.spoolDir != "" {
		sp, err := spool.Open(cfg.spoolDir, cfg.spoolMax, spool.WithOnCorrupt(corrupt.report))
		if err != nil {
			e.closePool()
			return nil, fmt.Errorf("exporter: %w", err)
		}
		e.spool, dc.Spool = sp, sp
	}
	d, err := delivery.New(dc)
	if err != nil {
		e.closeSpool()
		e.closePool()
		return nil, fmt.Errorf("exporter: %w", err)
	}
	e.deliv = d
	corrupt.attach(d)
	e.maint = startMaintenance(e.pool, append(partitionTasks(cfg), cfg.tasks...))
	e.sealing.start(writer)
	return e, nil
}

// Export maps the audit records of records to rows and hands them to the
// delivery, which writes them in one round trip. Records that are not audit
// events are skipped. Transient database errors are retried within ctx and
// the retry policy; then the batch goes to the spool if one is configured.
// A returned error means the batch was dropped; it says how many records,
// and they are counted in otelaudit.records.dropped. After Shutdown, Export
// returns [sdklog.ErrExporterShutdown] and counts the audit records it
// refuses with reason "shutdown".
func (e *Exporter) Export(ctx context.Context, records []sdklog.Record) error {
	e.mu.RLock()
	if e.stopped.Load() {
		e.mu.RUnlock()
		return e.refuse(ctx, records)
	}
	e.running.Add(1)
	e.mu.RUnlock()
	defer e.running.Done()

	m := e.mappings.Get().(*mapping)
	defer e.mappings.Put(m)
	rows, skipped := m.mapRecords(records)
	defer m.release()
	e.deliv.Skipped(ctx, skipped)
	return e.deliv.Deliver(ctx, rows)
}

// refuse counts the audit records of an Export after Shutdown.
func (e *Exporter) refuse(ctx context.Context, records []sdklog.Record) error {
	n := 0
	for i := range records {
		if auditrow.IsAuditEvent(records[i].EventName()) {
			n++
		}
	}
	if n == 0 {
		return sdklog.ErrExporterShutdown
	}
	e.deliv.Drop(ctx, n, telemetry.ReasonShutdown)
	return fmt.Errorf("exporter: %d records dropped (%s): %w", n, DropShutdown, sdklog.ErrExporterShutdown)
}

// Health reports whether the exporter can currently record audit events
// durably. It returns an error wrapping [ErrUnavailable], naming the cause,
// while any record is being lost or would be: the processor's queue is full
// (records refused), the last write failed with an error no retry can fix
// (a missing table, a missing privilege), the last spool append failed
// (spool full, ENOSPC, EFBIG, ...), or PostgreSQL is unreachable and there
// is no spool. Each cause clears by itself once it is gone; a background
// probe notices within a fraction of a second when PostgreSQL takes writes
// again. Health reads a few flags and never touches the network or the
// disk, so a gateway may call it on every tool call (see the fail-closed
// mode of the instrumentation package).
func (e *Exporter) Health(context.Context) error {
	if e.stopped.Load() {
		return fmt.Errorf("exporter: %w", sdklog.ErrExporterShutdown)
	}
	return e.deliv.Health()
}

// ForceFlush does nothing: the exporter holds no records between Exports
// (spooled batches are durable and replayed in the background).
func (e *Exporter) ForceFlush(ctx context.Context) error { return ctx.Err() }

// Shutdown stops the exporter: it stops the replayer and the maintenance
// tasks (what the spool still holds stays on disk for the next start), waits
// for a running Export, and closes the connection pool if the exporter
// opened it. Export returns [sdklog.ErrExporterShutdown] afterwards.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	already := e.stopped.Swap(true)
	e.mu.Unlock()
	if already {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		err := e.deliv.Close(context.WithoutCancel(ctx)) // ends waits for the spool
		e.maint.stop()
		e.running.Wait()
		e.sealing.close(ctx)
		e.closeSpool()
		e.closePool()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("exporter: shutdown: %w", ctx.Err())
	}
}

func (e *Exporter) closeSpool() {
	if e.spool != nil {
		_ = e.spool.Close()
	}
}

func (e *Exporter) closePool() {
	if e.ownsPool {
		e.pool.Close()
	}
}
