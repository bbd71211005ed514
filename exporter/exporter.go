// Package exporter writes otelaudit audit events to PostgreSQL. It provides
// an OpenTelemetry Logs SDK [sdklog.Exporter] that maps every audit record to
// one audit_log row and writes each batch in one round trip, and
// [NewProcessor], the batch processor that lets only audit events reach it.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/spool"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// ErrUnavailable is returned by [Exporter.Health] while the exporter cannot
// record audit events durably: PostgreSQL is unreachable and there is no
// spool, or the spool is full.
var ErrUnavailable = errors.New("otelaudit exporter: audit unavailable")

// Exporter is an [sdklog.Exporter] that writes audit records to PostgreSQL.
// Create it with [New] and register it through [NewProcessor].
type Exporter struct {
	cfg      config
	pool     *pgxpool.Pool
	ownsPool bool
	writer   *pgwriter.Writer
	tel      *telemetry

	mu    sync.Mutex // serialises Export's use of the scratch state below
	batch batch
	enc   []byte

	spool     *spool.Spool
	down      atomic.Bool     // the last write to PostgreSQL failed
	spoolFull atomic.Bool     // the last append found the spool full
	life      context.Context // ends at Shutdown
	stop      context.CancelFunc
	done      chan struct{} // closed when maintain returns

	stopped atomic.Bool
	stats   stats
}

var _ sdklog.Exporter = (*Exporter)(nil)

// New connects to PostgreSQL, applies the schema migrations unless
// WithMigrate(false) is given, opens the spool when WithSpool is given (and
// starts replaying what a previous process left in it), and returns an
// Exporter.
func New(ctx context.Context, opts ...Option) (*Exporter, error) {
	cfg := newConfig(opts)
	if err := migrations.ValidateTable(cfg.table); err != nil {
		return nil, fmt.Errorf("otelaudit exporter: %w", err)
	}
	e := &Exporter{cfg: cfg, pool: cfg.pool, done: make(chan struct{})}
	e.batch = newBatch(cfg.writeConcurrency, cfg.maxArgsBytes)
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

	var spoolBytes func() int64
	if cfg.spoolDir != "" {
		sp, err := spool.Open(cfg.spoolDir, cfg.spoolMax)
		if err != nil {
			e.closePool()
			return nil, fmt.Errorf("otelaudit exporter: %w", err)
		}
		e.spool = sp
		spoolBytes = sp.Bytes
	}
	tel, err := newTelemetry(cfg.meterProvider, spoolBytes)
	if err != nil {
		e.closePool()
		if e.spool != nil {
			_ = e.spool.Close()
		}
		return nil, fmt.Errorf("otelaudit exporter: metrics: %w", err)
	}
	e.tel = tel
	e.life, e.stop = context.WithCancel(context.Background())
	go e.maintain()
	return e, nil
}

// Export maps the audit records of records to rows and writes them in one
// round trip. Records that are not audit events are skipped. Transient
// database errors are retried within ctx and the retry policy; then the
// batch goes to the spool if one is configured. A returned error means the
// batch was dropped; it says how many records, and is counted in
// otelaudit.records.dropped.
func (e *Exporter) Export(ctx context.Context, records []sdklog.Record) error {
	if e.stopped.Load() {
		return sdklog.ErrExporterShutdown
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()

	// Map lazily: the COPY encodes and sends each row as soon as it is
	// mapped, so mapping overlaps with PostgreSQL ingesting the rows before.
	e.batch.reset(records)
	defer e.batch.release()
	if skipped := len(records) - e.batch.Len(); skipped > 0 {
		e.stats.skipped.Add(int64(skipped))
		e.tel.skipped.Add(ctx, int64(skipped))
	}
	if e.batch.Len() == 0 {
		return nil
	}
	err := e.deliver(ctx, &e.batch)
	e.tel.duration.Record(ctx, time.Since(start).Seconds())
	return err
}

// deliver writes the batch, or spools it, or drops and reports it.
func (e *Exporter) deliver(ctx context.Context, src *batch) error {
	n := src.Len()
	if e.spool != nil && (e.down.Load() || e.spool.Len() > 0) {
		// PostgreSQL is away or the spool is still draining: keep the
		// order and do not make the queue wait.
		return e.toSpool(ctx, src, nil)
	}
	res, err := e.write(ctx, src)
	e.count(ctx, res)
	if err == nil {
		e.down.Store(false)
		return nil
	}
	e.down.Store(true)
	if e.spool != nil {
		return e.toSpool(ctx, src, err)
	}
	e.drop(ctx, n, DropExportFailed)
	return fmt.Errorf("otelaudit exporter: %d records dropped (%s): %w", n, DropExportFailed, err)
}

func (e *Exporter) count(ctx context.Context, r pgwriter.Result) {
	e.stats.written.Add(int64(r.Inserted))
	e.stats.duplicates.Add(int64(r.Duplicates))
	e.stats.rejected.Add(int64(r.Rejected))
	e.tel.written.Add(ctx, int64(r.Inserted))
	e.tel.duplicate.Add(ctx, int64(r.Duplicates))
	e.tel.rejected.Add(ctx, int64(r.Rejected))
}

func (e *Exporter) drop(ctx context.Context, n int, reason string) {
	e.stats.dropped.Add(int64(n))
	e.tel.drop(ctx, n, reason)
}

// toSpool appends the batch to the spool. writeErr is why it is not in
// PostgreSQL, for the report when the spool cannot take it either.
func (e *Exporter) toSpool(ctx context.Context, src *batch, writeErr error) error {
	n := src.Len()
	e.enc = auditrow.AppendRows(e.enc[:0], src.rows())
	for {
		err := e.spool.Append(e.enc)
		if err == nil {
			e.stats.spooled.Add(int64(n))
			e.tel.spooled.Add(ctx, int64(n))
			return nil
		}
		if !errors.Is(err, spool.ErrFull) {
			e.drop(ctx, n, DropSpoolFull)
			return fmt.Errorf("otelaudit exporter: %d records dropped: spool: %w (write: %v)", n, err, writeErr)
		}
		e.spoolFull.Store(true)
		if !e.cfg.spoolWait {
			e.drop(ctx, n, DropSpoolFull)
			return fmt.Errorf("otelaudit exporter: %d records dropped (%s): PostgreSQL unreachable and spool full (%d bytes)", n, DropSpoolFull, e.spool.Bytes())
		}
		select {
		case <-ctx.Done():
			e.drop(ctx, n, DropSpoolFull)
			return fmt.Errorf("otelaudit exporter: %d records dropped (%s): waited for room in the spool: %w", n, DropSpoolFull, ctx.Err())
		case <-e.life.Done():
			e.drop(ctx, n, DropShutdown)
			return fmt.Errorf("otelaudit exporter: %d records dropped (%s): shut down while waiting for room in the spool", n, DropShutdown)
		case <-time.After(e.cfg.probeInterval):
		}
	}
}

// write writes to PostgreSQL, retrying transient errors per the policy.
func (e *Exporter) write(ctx context.Context, b *batch) (pgwriter.Result, error) {
	var res pgwriter.Result
	op := func() (struct{}, error) {
		r, err := e.writeParts(ctx, b)
		res.Add(r)
		if err != nil && !pgwriter.Retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	rc := e.cfg.retry
	if !rc.Enabled {
		_, err := op()
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			err = perm.Unwrap()
		}
		return res, err
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = rc.InitialInterval
	bo.MaxInterval = rc.MaxInterval
	opts := []backoff.RetryOption{backoff.WithBackOff(bo)}
	if rc.MaxElapsedTime > 0 {
		opts = append(opts, backoff.WithMaxElapsedTime(rc.MaxElapsedTime))
	}
	_, err := backoff.Retry(ctx, op, opts...)
	return res, err
}

// writeParts writes the parts of the batch, each on its own connection.
func (e *Exporter) writeParts(ctx context.Context, b *batch) (pgwriter.Result, error) {
	if b.used == 1 {
		return e.writer.Write(ctx, b.parts[0].mapAll())
	}
	results := make([]pgwriter.Result, b.used)
	errs := make([]error, b.used)
	var wg sync.WaitGroup
	for i := range b.used {
		wg.Go(func() { results[i], errs[i] = e.writer.Write(ctx, b.parts[i].mapAll()) })
	}
	wg.Wait()
	var res pgwriter.Result
	for _, r := range results {
		res.Add(r)
	}
	for _, err := range errs {
		if err != nil && !pgwriter.Retryable(err) {
			return res, err // a permanent failure decides
		}
	}
	return res, errors.Join(errs...)
}

// Health reports whether the exporter can currently record audit events
// durably: nil while PostgreSQL accepts writes, or while it does not but the
// spool has room; ErrUnavailable otherwise. It reads two flags and never
// touches the network, so a gateway may call it on every tool call (see the
// fail-closed mode of the instrumentation package). A background probe
// notices within a fraction of a second when PostgreSQL is back.
func (e *Exporter) Health(context.Context) error {
	if e.stopped.Load() {
		return sdklog.ErrExporterShutdown
	}
	if !e.down.Load() {
		return nil
	}
	if e.spool == nil {
		return fmt.Errorf("%w: PostgreSQL unreachable and no spool configured", ErrUnavailable)
	}
	if e.spoolFull.Load() {
		return fmt.Errorf("%w: PostgreSQL unreachable and spool full", ErrUnavailable)
	}
	return nil
}

// ForceFlush does nothing: the exporter holds no records between Exports
// (spooled batches are durable and replayed in the background).
func (e *Exporter) ForceFlush(ctx context.Context) error { return ctx.Err() }

// Shutdown stops the exporter: it waits for a running Export, stops the
// replayer (what the spool still holds stays on disk for the next start),
// and closes the connection pool if the exporter opened it. Export returns
// [sdklog.ErrExporterShutdown] afterwards.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if e.stopped.Swap(true) {
		return nil
	}
	e.stop()
	done := make(chan struct{})
	go func() {
		<-e.done
		e.mu.Lock() // wait for a running Export
		e.mu.Unlock()
		if e.tel.reg != nil {
			_ = e.tel.reg.Unregister()
		}
		if e.spool != nil {
			_ = e.spool.Close()
		}
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

// Stats are the exporter's running totals, the same figures as its metrics.
type Stats struct {
	// Written rows were inserted into audit_log (directly or replayed).
	Written int64
	// Duplicates were already stored (replays); nothing was written for them.
	Duplicates int64
	// Rejected rows were refused by PostgreSQL and stored in the reject table.
	Rejected int64
	// Skipped records were not audit events.
	Skipped int64
	// Spooled rows went to the spool; Replayed rows came back out of it
	// into PostgreSQL (written or found already there).
	Spooled, Replayed int64
	// Dropped records were lost, and reported.
	Dropped int64
}

type stats struct {
	written, duplicates, rejected, skipped, spooled, replayed, dropped atomic.Int64
}

// Stats returns the exporter's running totals.
func (e *Exporter) Stats() Stats {
	return Stats{
		Written:    e.stats.written.Load(),
		Duplicates: e.stats.duplicates.Load(),
		Rejected:   e.stats.rejected.Load(),
		Skipped:    e.stats.skipped.Load(),
		Spooled:    e.stats.spooled.Load(),
		Replayed:   e.stats.replayed.Load(),
		Dropped:    e.stats.dropped.Load(),
	}
}
