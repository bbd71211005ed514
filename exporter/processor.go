package exporter

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit"
)

// NewProcessor returns the processor to register the exporter with: an
// [sdklog.BatchProcessor] (configured by opts) behind a filter that admits
// only audit events, records whose EventName is [otelaudit.EventName].
// Application logs that share the LoggerProvider neither reach PostgreSQL
// nor take slots in the audit queue.
//
// The SDK's BatchProcessor silently overwrites its oldest record when its
// queue is full. This processor never lets that happen: it tracks how many
// admitted records have not reached the exporter yet and, when the queue
// could overflow, refuses the new record itself, so that every record lost
// is counted in otelaudit.records.dropped{reason="queue_full"} and reported
// through otel.Handle (in aggregate, at the next export). Records still
// queued when a Shutdown deadline passes are counted with reason "shutdown".
func NewProcessor(exp sdklog.Exporter, opts ...sdklog.BatchProcessorOption) sdklog.Processor {
	mp := otel.GetMeterProvider()
	if e, ok := exp.(*Exporter); ok {
		mp = e.cfg.meterProvider
	}
	p := &auditProcessor{}
	p.dropped, _ = mp.Meter(ScopeName).Int64Counter("otelaudit.records.dropped",
		metric.WithDescription("Audit records lost, by reason. Each drop is also reported through otel.Handle."),
		metric.WithUnit("{record}"))
	p.next = sdklog.NewBatchProcessor(&countingExporter{Exporter: exp, p: p}, opts...)
	p.capacity = queueCapacity(p.next)
	return p
}

type auditProcessor struct {
	next     *sdklog.BatchProcessor
	capacity int64
	inflight atomic.Int64 // admitted, not yet handed to the exporter
	pending  atomic.Int64 // dropped, not yet reported through otel.Handle
	total    atomic.Int64 // dropped in all
	dropped  metric.Int64Counter
}

func (p *auditProcessor) Enabled(ctx context.Context, param sdklog.EnabledParameters) bool {
	return param.EventName == otelaudit.EventName && p.next.Enabled(ctx, param)
}

func (p *auditProcessor) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if r.EventName() != otelaudit.EventName {
		return nil
	}
	if p.inflight.Add(1) > p.capacity {
		p.inflight.Add(-1)
		p.pending.Add(1)
		p.total.Add(1)
		p.dropped.Add(ctx, 1, metric.WithAttributes(reasonKey.String(DropQueueFull)))
		return nil
	}
	return p.next.OnEmit(ctx, r)
}

// report hands the drops counted since the last report to otel.Handle.
func (p *auditProcessor) report() {
	if n := p.pending.Swap(0); n > 0 {
		otel.Handle(fmt.Errorf("otelaudit: %d audit records dropped (%s): the exporter did not keep up", n, DropQueueFull))
	}
}

func (p *auditProcessor) ForceFlush(ctx context.Context) error {
	defer p.report()
	return p.next.ForceFlush(ctx)
}

func (p *auditProcessor) Shutdown(ctx context.Context) error {
	err := p.next.Shutdown(ctx)
	p.report()
	if n := p.inflight.Swap(0); n > 0 && err != nil {
		p.total.Add(n)
		p.dropped.Add(context.Background(), n, metric.WithAttributes(reasonKey.String(DropShutdown)))
		otel.Handle(fmt.Errorf("otelaudit: %d audit records dropped (%s): %w", n, DropShutdown, err))
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

// defaultQueueSize is the SDK's default BatchProcessor queue size.
const defaultQueueSize = 2048

// queueCapacity reads the queue size the BatchProcessor was configured with.
// The SDK does not expose it, so it is read by reflection (a test pins this
// to the SDK version in go.mod); failing that, the SDK's own default and
// environment variable apply.
func queueCapacity(b *sdklog.BatchProcessor) int64 {
	if q := reflect.ValueOf(b).Elem().FieldByName("q"); q.IsValid() && q.Kind() == reflect.Pointer && !q.IsNil() {
		if c := q.Elem().FieldByName("cap"); c.IsValid() && c.CanInt() && c.Int() > 0 {
			return c.Int()
		}
	}
	if n, err := strconv.Atoi(os.Getenv("OTEL_BLRP_MAX_QUEUE_SIZE")); err == nil && n > 0 {
		return int64(n)
	}
	return defaultQueueSize
}
