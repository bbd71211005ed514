package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel/metric"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/spool"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// ErrUnavailable is returned by [Delivery.Health] while records cannot be
// stored durably. The exporter package exports it as exporter.ErrUnavailable,
// hence its prefix.
var ErrUnavailable = errors.New("exporter: audit unavailable")

// Writer stores rows in PostgreSQL; *pgwriter.Writer is one. A returned
// error means the rows may or may not be stored: writing them again must be
// safe.
type Writer interface {
	Write(ctx context.Context, rows []auditrow.Row) (pgwriter.Result, error)
}

// GapRecorder is a Writer that records counted losses in its seal chain
// (*pgwriter.Writer with sealing): every record the delivery drops, for any
// reason, is also passed to RecordGap, which must not block.
type GapRecorder interface {
	RecordGap(n int, reason string)
}

// Spool is the durable FIFO of encoded batches; *spool.Spool is one.
type Spool interface {
	// AppendRecords appends batch, which holds records audit records (the
	// number a damaged copy of it is counted with).
	AppendRecords(batch []byte, records int) error
	Oldest() (spool.Batch, bool, error)
	Ack(spool.Batch) error
	Len() int
	Bytes() int64
	Appended() <-chan struct{}
}

// Retry configures the retries of a write that failed with a transient error.
type Retry struct {
	Enabled         bool
	InitialInterval time.Duration
	MaxInterval     time.Duration
	// MaxElapsedTime gives up after this long; zero: only the context does.
	MaxElapsedTime time.Duration
}

// Config configures a [Delivery]. Writer and Meter are required.
type Config struct {
	// Writer writes rows to PostgreSQL.
	Writer Writer
	// Retryable classifies write errors; default pgwriter.Retryable.
	Retryable func(error) bool
	// Probe checks, cheaply, that PostgreSQL accepts writes again. It runs
	// in the background while the last write failed. Nil: no probe, the next
	// replay or write finds out.
	Probe func(context.Context) error
	// Spool keeps batches while PostgreSQL is away; nil: no spool.
	Spool Spool
	// SpoolWait makes Deliver wait for room in a full spool instead of
	// dropping the batch.
	SpoolWait bool
	// Retry is the retry policy of a write.
	Retry Retry
	// Concurrency splits a batch of at least 2×MinPartRows rows into up to
	// this many parts written at once.
	Concurrency int
	// ProbeInterval is the period of the background loop (probe, replay)
	// and of waiting for a spool that refused a batch. Default 250 ms.
	ProbeInterval time.Duration
	// ReportInterval is the shortest time between two otel.Handle reports of
	// the same kind of failure. Default 10 s.
	ReportInterval time.Duration
	// ReplayTimeout bounds the write of one spooled batch. Default 30 s.
	ReplayTimeout time.Duration
	// Meter makes the instruments.
	Meter metric.Meter
}

// MinPartRows is the smallest part of a batch worth a connection of its own.
const MinPartRows = 256

// failure boxes an error for an atomic.Pointer.
type failure struct{ err error }

// Delivery takes batches of rows to PostgreSQL or the spool; see the package
// documentation. Its methods are safe for concurrent use; none holds a lock
// while writing.
type Delivery struct {
	cfg       Config
	retryable func(error) bool
	acct      *accounts

	down      atomic.Bool             // the last write failed with a transient error
	permanent atomic.Pointer[failure] // the last write failed with an error no retry fixes
	spoolErr  atomic.Pointer[failure] // the last spool append failed
	queueFull atomic.Pointer[func() bool]
	waiting   atomic.Int32 // Delivers waiting for a spool that refused their batch

	writeRep, replayRep, spoolRep, corruptRep reporter

	bufs sync.Pool // *[]byte encoding scratch, one per concurrent Deliver

	life context.Context // ends at Close
	stop context.CancelFunc
	done chan struct{} // closed when the background loop returns
}

// New returns a Delivery and starts its background loop (probe, replay).
func New(cfg Config) (*Delivery, error) {
	if cfg.Writer == nil || cfg.Meter == nil {
		return nil, errors.New("delivery: Writer and Meter are required")
	}
	if cfg.Retryable == nil {
		cfg.Retryable = pgwriter.Retryable
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 250 * time.Millisecond
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 10 * time.Second
	}
	if cfg.ReplayTimeout <= 0 {
		cfg.ReplayTimeout = 30 * time.Second
	}
	var spoolBytes func() int64
	if cfg.Spool != nil {
		spoolBytes = cfg.Spool.Bytes
	}
	acct, err := newAccounts(cfg.Meter, spoolBytes)
	if err != nil {
		return nil, fmt.Errorf("delivery: metrics: %w", err)
	}
	d := &Delivery{cfg: cfg, retryable: cfg.Retryable, acct: acct, done: make(chan struct{})}
	if g, ok := cfg.Writer.(GapRecorder); ok {
		acct.onDrop = g.RecordGap
	}
	for _, r := range []*reporter{&d.writeRep, &d.replayRep, &d.spoolRep, &d.corruptRep} {
		r.every = cfg.ReportInterval
	}
	d.bufs.New = func() any { return new([]byte) }
	d.life, d.stop = context.WithCancel(context.Background())
	go d.maintain()
	return d, nil
}

// Close stops the background loop and makes every Deliver still waiting
// for the spool give up (its batch counted as dropped, reason shutdown). The
// spool itself belongs to the caller. Close is idempotent.
func (d *Delivery) Close(ctx context.Context) error {
	d.stop()
	select {
	case <-d.done:
	case <-ctx.Done():
		return fmt.Errorf("delivery: close: %w", ctx.Err())
	}
	d.acct.close()
	return nil
}

// SetQueueFull registers the check of the processor in front: while full
// returns true, records are being refused, and Health fails.
func (d *Delivery) SetQueueFull(full func() bool) { d.queueFull.Store(&full) }

// Health returns nil while records can be stored durably, and an error
// wrapping [ErrUnavailable] that names the cause otherwise. It reads a few
// atomics and never touches the network or the disk.
func (d *Delivery) Health() error {
	if f := d.queueFull.Load(); f != nil && (*f)() {
		return fmt.Errorf("%w: the processor's queue is full and records are being refused", ErrUnavailable)
	}
	if f := d.permanent.Load(); f != nil {
		return fmt.Errorf("%w: writes fail with an error no retry can fix: %v", ErrUnavailable, f.err)
	}
	if f := d.spoolErr.Load(); f != nil {
		return fmt.Errorf("%w: PostgreSQL unreachable and the spool refused a batch: %v", ErrUnavailable, f.err)
	}
	if d.down.Load() && d.cfg.Spool == nil {
		return fmt.Errorf("%w: PostgreSQL unreachable and no spool configured", ErrUnavailable)
	}
	return nil
}

// Deliver writes rows to PostgreSQL, retrying transient errors within ctx
// and the retry policy, or appends them to the spool; rows must stay valid
// until it returns. A returned error means the rows were dropped: it says
// how many and why, and they are counted in otelaudit.records.dropped.
func (d *Delivery) Deliver(ctx context.Context, rows []auditrow.Row) error {
	if len(rows) == 0 {
		return nil
	}
	start := time.Now()
	defer func() { d.acct.duration.Record(ctx, time.Since(start).Seconds()) }()
	if d.cfg.Spool != nil && (d.down.Load() || d.cfg.Spool.Len() > 0) {
		// PostgreSQL is away or the spool is still draining: keep the
		// order, and do not make the queue wait for retries.
		return d.toSpool(ctx, rows, nil)
	}
	res, err := d.write(ctx, rows)
	d.acct.result(ctx, res)
	if err == nil {
		d.wrote()
		return nil
	}
	d.writeFailed(ctx, err, &d.writeRep, "write")
	if d.cfg.Spool != nil {
		return d.toSpool(ctx, rows, err)
	}
	return d.dropErr(ctx, len(rows), telemetry.ReasonExportFailed, err)
}

// Skipped counts records that were not audit events.
func (d *Delivery) Skipped(ctx context.Context, n int) { d.acct.skipped.add(ctx, int64(n)) }

// Drop counts n records lost for reason; the caller reports them.
func (d *Delivery) Drop(ctx context.Context, n int, reason string) { d.acct.drop(ctx, n, reason) }

// dropErr counts n dropped records and returns the error that reports them.
func (d *Delivery) dropErr(ctx context.Context, n int, reason string, cause error) error {
	d.acct.drop(ctx, n, reason)
	return fmt.Errorf("exporter: %d records dropped (%s): %w", n, reason, cause)
}

// wrote records that PostgreSQL took a write: nothing is failing now.
func (d *Delivery) wrote() {
	d.down.Store(false)
	d.permanent.Store(nil)
	d.spoolErr.Store(nil)
}

// writeFailed classifies a failed write, reports and counts one that no
// retry can fix, and returns whether it was transient.
func (d *Delivery) writeFailed(ctx context.Context, err error, rep *reporter, op string) (transient bool) {
	if d.transient(ctx, err) {
		d.down.Store(true)
		return true
	}
	d.permanent.Store(&failure{err})
	d.acct.failed(ctx, op)
	rep.report(fmt.Errorf("exporter: %s failed with an error no retry can fix (Health fails until a write succeeds): %w", op, err))
	return false
}

// transient reports whether err may go away by itself: a retryable error,
// or the end of the caller's patience rather than a verdict of the server.
func (d *Delivery) transient(ctx context.Context, err error) bool {
	return d.retryable(err) || ctx.Err() != nil ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// toSpool appends rows to the spool. writeErr is why they are not in
// PostgreSQL, for the report when the spool cannot take them either.
//
// A full spool drops the batch at once unless SpoolWait is set. Any other
// append failure (ENOSPC, EFBIG, ...) makes Deliver wait and try again,
// within ctx, while Health fails: the processor in front then refuses new
// records (counted), and a fail-closed gateway refuses calls, instead of
// every batch being lost while the disk is unusable.
func (d *Delivery) toSpool(ctx context.Context, rows []auditrow.Row, writeErr error) error {
	n := len(rows)
	buf := d.bufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) > 4<<20 {
			*buf = nil // do not pin a huge buffer
		}
		d.bufs.Put(buf)
	}()
	*buf = auditrow.AppendRows((*buf)[:0], rows)
	d.waiting.Add(1)
	defer d.waiting.Add(-1)
	for {
		err := d.cfg.Spool.AppendRecords(*buf, n)
		if err == nil {
			d.spoolErr.Store(nil)
			d.acct.spooled.add(ctx, int64(n))
			return nil
		}
		d.spoolErr.Store(&failure{err})
		full := errors.Is(err, spool.ErrFull)
		reason := telemetry.ReasonSpoolError
		if full {
			reason = telemetry.ReasonSpoolFull
		} else {
			d.acct.failed(ctx, "spool_append")
			d.spoolRep.report(fmt.Errorf("exporter: spool append failed; %d records wait, Health fails: %w (write: %v)", n, err, writeErr))
		}
		if full && !d.cfg.SpoolWait {
			return d.dropErr(ctx, n, reason, fmt.Errorf("PostgreSQL unreachable and spool full (%d bytes): %w", d.cfg.Spool.Bytes(), err))
		}
		t := time.NewTimer(d.cfg.ProbeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return d.dropErr(ctx, n, reason, fmt.Errorf("waited for the spool: %w (append: %v)", ctx.Err(), err))
		case <-d.life.Done():
			t.Stop()
			return d.dropErr(ctx, n, telemetry.ReasonShutdown, fmt.Errorf("shut down while waiting for the spool (append: %v)", err))
		case <-t.C:
		}
		if !d.down.Load() && d.permanent.Load() == nil && d.cfg.Spool.Len() == 0 {
			// PostgreSQL came back while we waited: write directly.
			if res, err := d.writeParts(ctx, rows); err == nil {
				d.acct.result(ctx, res)
				d.wrote()
				return nil
			} else {
				d.acct.result(ctx, res)
				d.writeFailed(ctx, err, &d.writeRep, "write")
			}
		}
	}
}

// write writes to PostgreSQL, retrying transient errors per the policy.
func (d *Delivery) write(ctx context.Context, rows []auditrow.Row) (pgwriter.Result, error) {
	var res pgwriter.Result
	op := func() (struct{}, error) {
		r, err := d.writeParts(ctx, rows)
		res.Add(r)
		if err != nil && !d.retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	rc := d.cfg.Retry
	if !rc.Enabled {
		_, err := op()
		return res, unwrapPermanent(err)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = rc.InitialInterval
	bo.MaxInterval = rc.MaxInterval
	opts := []backoff.RetryOption{backoff.WithBackOff(bo)}
	if rc.MaxElapsedTime > 0 {
		opts = append(opts, backoff.WithMaxElapsedTime(rc.MaxElapsedTime))
	}
	_, err := backoff.Retry(ctx, op, opts...)
	return res, unwrapPermanent(err)
}

func unwrapPermanent(err error) error {
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		return perm.Unwrap()
	}
	return err
}

// writeParts writes rows once, split into parts written at once when the
// configured concurrency and the batch size allow.
func (d *Delivery) writeParts(ctx context.Context, rows []auditrow.Row) (pgwriter.Result, error) {
	parts := min(max(d.cfg.Concurrency, 1), max(len(rows)/MinPartRows, 1))
	if parts == 1 {
		return d.cfg.Writer.Write(ctx, rows)
	}
	results := make([]pgwriter.Result, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	n := len(rows)
	for i := range parts {
		wg.Go(func() { results[i], errs[i] = d.cfg.Writer.Write(ctx, rows[i*n/parts:(i+1)*n/parts]) })
	}
	wg.Wait()
	var res pgwriter.Result
	for _, r := range results {
		res.Add(r)
	}
	for _, err := range errs {
		if err != nil && !d.retryable(err) {
			return res, err // a permanent failure decides
		}
	}
	return res, errors.Join(errs...)
}
