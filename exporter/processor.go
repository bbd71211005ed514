package exporter

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
)

// DefaultQueueSize is the processor's queue size unless [WithQueueSize] or
// OTEL_BLRP_MAX_QUEUE_SIZE says otherwise (the SDK's own default).
const DefaultQueueSize = 2048

// envMaxQueueSize is the SDK's environment variable for the queue size.
const envMaxQueueSize = "OTEL_BLRP_MAX_QUEUE_SIZE"

// queueSizeOption is the option WithQueueSize returns: an
// sdklog.BatchProcessorOption that NewProcessor also reads.
type queueSizeOption struct {
	sdklog.BatchProcessorOption
	n int
}

// WithQueueSize sets the size of the processor's queue: how many audit
// records may wait for the exporter. Pass it to [NewProcessor] instead of
// sdklog.WithMaxQueueSize, so that the processor knows the capacity it
// guards; NewProcessor passes sdklog.WithMaxQueueSize to the SDK itself
// (after every other option: a sdklog.WithMaxQueueSize among them has no
// effect). Without it, OTEL_BLRP_MAX_QUEUE_SIZE applies as in the SDK, then
// DefaultQueueSize; values below one are ignored, as the SDK ignores them.
func WithQueueSize(n int) sdklog.BatchProcessorOption {
	return queueSizeOption{BatchProcessorOption: sdklog.WithMaxQueueSize(n), n: n}
}

// queueSize resolves the queue size the way the SDK resolves its own: the
// option if it is at least one, else the environment variable if it is an
// integer of at least one, else the default.
func queueSize(opts []sdklog.BatchProcessorOption) int {
	n := 0
	for _, o := range opts {
		if q, ok := o.(queueSizeOption); ok {
			n = q.n
		}
	}
	if n >= 1 {
		return n
	}
	if v := os.Getenv(envMaxQueueSize); v != "" {
		if k, err := strconv.Atoi(v); err == nil && k >= 1 {
			return k
		}
	}
	return DefaultQueueSize
}

// NewProcessor returns the processor to register the exporter with: an
// [sdklog.BatchProcessor] (configured by opts) behind a filter that admits
// only audit events, records whose EventName is [otelaudit.EventName].
// Application logs that share the LoggerProvider neither reach PostgreSQL
// nor take slots in the audit queue. Set the queue size with
// [WithQueueSize].
//
// The SDK's BatchProcessor silently overwrites its oldest record when its
// queue is full. This processor never lets that happen: it tracks how many
// admitted records have not reached the exporter yet and, when the queue
// would overflow, refuses the new record itself, so that every record lost
// is counted in otelaudit.records.dropped{reason="queue_full"} and reported
// through otel.Handle (in aggregate, at the next export); while it refuses,
// the exporter's Health fails. Records emitted after Shutdown, and records
// still queued when a Shutdown deadline passes, are counted with reason
// "shutdown".
func NewProcessor(exp sdklog.Exporter, opts ...sdklog.BatchProcessorOption) sdklog.Processor {
	mp := otel.GetMeterProvider()
	e, isOurs := exp.(*Exporter)
	if isOurs {
		mp = e.cfg.meterProvider
	}
	p := &auditProcessor{capacity: int64(queueSize(opts))}
	var err error
	if p.dropped, err = telemetry.RecordsDropped.Int64Counter(mp.Meter(ScopeName)); err != nil {
		otel.Handle(fmt.Errorf("exporter: processor metrics: %w", err))
	}
	opts = append(opts[:len(opts):len(opts)], sdklog.WithMaxQueueSize(int(p.capacity)))
	p.next = sdklog.NewBatchProcessor(&countingExporter{Exporter: exp, p: p}, opts...)
	if isOurs {
		e.deliv.SetQueueFull(p.full)
	}
	return p
}

type auditProcessor struct {
	next     *sdklog.BatchProcessor
	capacity int64
	inflight atomic.Int64 // admitted, not yet handed to the exporter
	pending  atomic.Int64 // dropped because the queue was full, not yet reported
	late     atomic.Int64 // emitted after Shutdown
	total    atomic.Int64 // dropped in all
	stopped  atomic.Bool
	dropped  metric.Int64Counter
}

// full reports whether the next record would be refused.
func (p *auditProcessor) full() bool { return p.inflight.Load() >= p.capacity }

func (p *auditProcessor) Enabled(ctx context.Context, param sdklog.EnabledParameters) bool {
	return param.EventName == otelaudit.EventName && p.next.Enabled(ctx, param)
}

func (p *auditProcessor) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if r.EventName() != otelaudit.EventName {
		return nil
	}
	if p.stopped.Load() {
		p.drop(ctx, 1, DropShutdown)
		// Report the first and then every 1,024th: a caller that keeps
		// emitting into a shut down pipeline must not flood the handler.
		if n := p.late.Add(1); n&(n-1) == 0 || n%1024 == 0 {
			otel.Handle(fmt.Errorf("exporter: %d audit records dropped (%s) so far: emitted after the processor shut down", n, DropShutdown))
		}
		return nil
	}
	if p.inflight.Add(1) > p.capacity {
		p.inflight.Add(-1)
		p.pending.Add(1)
		p.drop(ctx, 1, DropQueueFull)
		return nil
	}
	return p.next.OnEmit(ctx, r)
}

func (p *auditProcessor) drop(ctx context.Context, n int64, reason string) {
	p.total.Add(n)
	if p.dropped != nil {
		p.dropped.Add(ctx, n, telemetry.Dropped(reason))
	}
}

// report hands the drops counted since the last report to otel.Handle.
func (p *auditProcessor) report() {
	if n := p.pending.Swap(0); n > 0 {
		otel.Handle(fmt.Errorf("exporter: %d audit records dropped (%s): the exporter did not keep up", n, DropQueueFull))
	}
}

func (p *auditProcessor) ForceFlush(ctx context.Context) error {
	defer p.report()
	return p.next.ForceFlush(ctx)
}

func (p *auditProcessor) Shutdown(ctx context.Context) error {
	p.stopped.Store(true)
	err := p.next.Shutdown(ctx)
	p.report()
	if n := p.inflight.Swap(0); n > 0 && err != nil {
		p.drop(context.Background(), n, DropShutdown)
		otel.Handle(fmt.Errorf("exporter: %d audit records dropped (%s): %w", n, DropShutdown, err))
	}
	return err
}

// Dropped returns how many records the processor has dropped so far.
// It is meant for tests and diagnostics; the metric carries the same count.
func (p *auditProcessor) Dropped() int64 { return p.total.Load() }

// countingExporter tells the processor when records leave its queue.
type countingExporter struct {
	sdklog.Exporter
	p *auditProcessor
}

func (c *countingExporter) Export(ctx context.Context, records []sdklog.Record) error {
	c.p.inflight.Add(-int64(len(records)))
	c.p.report()
	return c.Exporter.Export(ctx, records)
}
