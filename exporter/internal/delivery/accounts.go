package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
)

// Stats are the running totals; every figure is the value of the metric
// instrument of the same name, counted in the same call.
type Stats struct {
	Written, Duplicates, Rejected, Skipped, Spooled, Replayed int64
	// Dropped is the sum of DroppedByReason.
	Dropped         int64
	DroppedByReason map[string]int64
	// WriteErrors are writes that failed with an error no retry can fix;
	// ReplayErrors are failed replays of spooled batches; SpoolErrors are
	// spool appends that failed for another reason than a full spool.
	WriteErrors, ReplayErrors, SpoolErrors int64
	// SpoolBacklog is the number of batches in the spool not yet replayed
	// (read from the spool, not counted).
	SpoolBacklog int
}

// counter is one figure: an atomic total and its instrument, added together.
type counter struct {
	n    atomic.Int64
	inst metric.Int64Counter
	opt  metric.AddOption // attributes of this figure, or nil
}

func (c *counter) add(ctx context.Context, n int64) {
	if n == 0 {
		return
	}
	c.n.Add(n)
	if c.opt != nil {
		c.inst.Add(ctx, n, c.opt)
	} else {
		c.inst.Add(ctx, n)
	}
}

// dropReasons are the reasons the delivery (and the exporter in front of
// it) drops records for.
var dropReasons = []string{
	telemetry.ReasonSpoolFull, telemetry.ReasonSpoolError, telemetry.ReasonExportFailed,
	telemetry.ReasonShutdown, telemetry.ReasonSpoolCorrupt, telemetry.ReasonQueueFull,
}

// errorKinds are the values of the kind attribute of the errors counter.
var errorKinds = []string{"write", "replay", "spool_append"}

// accounts are the instruments of the delivery, each with its total.
type accounts struct {
	written, duplicates, rejected, skipped, spooled, replayed counter
	dropped                                                   map[string]*counter
	errors                                                    map[string]*counter
	duration                                                  metric.Float64Histogram
	reg                                                       metric.Registration
	onDrop                                                    func(n int, reason string) // see GapRecorder
}

func newAccounts(m metric.Meter, spoolBytes func() int64) (*accounts, error) {
	a := &accounts{dropped: map[string]*counter{}, errors: map[string]*counter{}}
	var err error
	mk := func(c *counter, name, desc string) {
		var e error
		c.inst, e = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{record}"))
		err = errors.Join(err, e)
	}
	mk(&a.written, "otelaudit.exporter.rows.written", "Rows inserted into the audit table.")
	mk(&a.duplicates, "otelaudit.exporter.rows.duplicate", "Rows already stored (replays); nothing was written for them.")
	mk(&a.spooled, "otelaudit.exporter.rows.spooled", "Rows written to the local spool while PostgreSQL was unreachable.")
	mk(&a.replayed, "otelaudit.exporter.rows.replayed", "Spooled rows written to PostgreSQL.")
	mk(&a.rejected, "otelaudit.exporter.rows.rejected", "Rows PostgreSQL refused, isolated and stored in the reject table.")
	mk(&a.skipped, "otelaudit.exporter.records.skipped", "Records that were not audit events.")
	dropped, e := telemetry.RecordsDropped.Int64Counter(m)
	err = errors.Join(err, e)
	for _, r := range dropReasons {
		a.dropped[r] = &counter{inst: dropped, opt: telemetry.Dropped(r)}
	}
	failures, e := m.Int64Counter("otelaudit.exporter.errors",
		metric.WithDescription("Failures that Health reports, by kind: writes no retry can fix, failed replays, failed spool appends. Each is also reported through otel.Handle (rate-limited)."),
		metric.WithUnit("{error}"))
	err = errors.Join(err, e)
	for _, k := range errorKinds {
		a.errors[k] = &counter{inst: failures, opt: metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", k)))}
	}
	a.duration, e = m.Float64Histogram("otelaudit.exporter.export.duration",
		metric.WithDescription("Duration of the delivery of one batch (write, retries, spool)."), metric.WithUnit("s"))
	err = errors.Join(err, e)
	if spoolBytes != nil {
		g, e := m.Int64ObservableGauge("otelaudit.exporter.spool.bytes",
			metric.WithDescription("Bytes held in the local spool."), metric.WithUnit("By"))
		err = errors.Join(err, e)
		if e == nil {
			a.reg, e = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
				o.ObserveInt64(g, spoolBytes())
				return nil
			}, g)
			err = errors.Join(err, e)
		}
	}
	return a, err
}

func (a *accounts) close() {
	if a.reg != nil {
		_ = a.reg.Unregister()
	}
}

func (a *accounts) result(ctx context.Context, r pgwriter.Result) {
	a.written.add(ctx, int64(r.Inserted))
	a.duplicates.add(ctx, int64(r.Duplicates))
	a.rejected.add(ctx, int64(r.Rejected))
}

func (a *accounts) drop(ctx context.Context, n int, reason string) {
	c, ok := a.dropped[reason]
	if !ok { // never: every caller passes one of dropReasons
		otel.Handle(fmt.Errorf("delivery: unknown drop reason %q, counted as %s", reason, telemetry.ReasonExportFailed))
		c = a.dropped[telemetry.ReasonExportFailed]
	}
	c.add(ctx, int64(n))
	if a.onDrop != nil {
		a.onDrop(n, reason) // a gap seal in the writer's chain
	}
}

func (a *accounts) failed(ctx context.Context, kind string) { a.errors[kind].add(ctx, 1) }

// Stats returns the running totals.
func (d *Delivery) Stats() Stats {
	a := d.acct
	s := Stats{
		Written: a.written.n.Load(), Duplicates: a.duplicates.n.Load(), Rejected: a.rejected.n.Load(),
		Skipped: a.skipped.n.Load(), Spooled: a.spooled.n.Load(), Replayed: a.replayed.n.Load(),
		DroppedByReason: make(map[string]int64, len(a.dropped)),
		WriteErrors:     a.errors["write"].n.Load(),
		ReplayErrors:    a.errors["replay"].n.Load(),
		SpoolErrors:     a.errors["spool_append"].n.Load(),
	}
	if d.cfg.Spool != nil {
		s.SpoolBacklog = d.cfg.Spool.Len()
	}
	for r, c := range a.dropped {
		if n := c.n.Load(); n > 0 {
			s.DroppedByReason[r] = n
			s.Dropped += n
		}
	}
	return s
}

// reporter hands errors to otel.Handle at most once per interval; the ones
// in between are summed into the next report (the counters have them all).
type reporter struct {
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *reporter) report(err error) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		err = fmt.Errorf("%w (and %d more reports like it suppressed in the %v before)", err, n, r.every)
	}
	otel.Handle(err)
}
