package exporter_test

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
)

// stuckExporter stands in for an exporter whose database hangs: Export
// blocks until released. It tests the processor's queue accounting, which
// must not depend on what the exporter is.
type stuckExporter struct {
	release  chan struct{}
	received atomic.Int64 // handed to Export
	exported atomic.Int64 // returned from Export successfully
}

func (s *stuckExporter) Export(ctx context.Context, recs []sdklog.Record) error {
	s.received.Add(int64(len(recs)))
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.exported.Add(int64(len(recs)))
	return nil
}
func (s *stuckExporter) Shutdown(context.Context) error   { return nil }
func (s *stuckExporter) ForceFlush(context.Context) error { return nil }

// handled collects what reaches otel.Handle. The handler is global, so the
// tests that use it do not run in parallel with each other.
type handled struct {
	mu   sync.Mutex
	errs []error
}

func (h *handled) Handle(err error) { h.mu.Lock(); h.errs = append(h.errs, err); h.mu.Unlock() }

var droppedRE = regexp.MustCompile(`(\d+) audit records dropped \(queue_full\)`)

func (h *handled) queueFullDrops() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	for _, err := range h.errs {
		if m := droppedRE.FindStringSubmatch(err.Error()); m != nil {
			k, _ := strconv.ParseInt(m[1], 10, 64)
			n += k
		}
	}
	return n
}

func TestProcessorCountsEveryQueueDrop(t *testing.T) {
	h := &handled{}
	otel.SetErrorHandler(h)
	defer otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	otel.SetMeterProvider(mp)

	stuck := &stuckExporter{release: make(chan struct{})}
	proc := exporter.NewProcessor(stuck, exporter.WithQueueSize(100), sdklog.WithExportMaxBatchSize(10))
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc))
	l := lp.Logger("test")

	const total = 10000
	for i := range total {
		var r log.Record
		r.SetEventName(otelaudit.EventName)
		r.AddAttributes(attribute.Int("i", i))
		l.Emit(context.Background(), r)
	}
	// An application log is not audited, not queued, not counted.
	var app log.Record
	app.SetBody(attribute.StringValue("app"))
	l.Emit(context.Background(), app)

	close(stuck.release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	dropped := proc.(interface{ Dropped() int64 }).Dropped()
	if exported := stuck.exported.Load(); exported+dropped != total || dropped == 0 {
		t.Fatalf("exported %d + dropped %d != %d (or nothing dropped)", exported, dropped, total)
	}
	if got := h.queueFullDrops(); got != dropped {
		t.Errorf("otel.Handle reported %d drops, want %d", got, dropped)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if got := sumCounter(rm, "otelaudit.records.dropped", exporter.DropQueueFull); got != dropped {
		t.Errorf("metric otelaudit.records.dropped{reason=queue_full} = %d, want %d", got, dropped)
	}
	t.Logf("queue 100, exporter stuck: %d exported, %d dropped and counted", stuck.exported.Load(), dropped)
}

func sumCounter(rm metricdata.ResourceMetrics, name, reason string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if v, ok := dp.Attributes.Value("reason"); reason == "" || (ok && v.AsString() == reason) {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func TestProcessorDoesNotDropBelowCapacity(t *testing.T) {
	t.Parallel()
	stuck := &stuckExporter{release: make(chan struct{})}
	proc := exporter.NewProcessor(stuck, exporter.WithQueueSize(100), sdklog.WithExportMaxBatchSize(10))
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc))
	for range 100 {
		var r log.Record
		r.SetEventName(otelaudit.EventName)
		lp.Logger("t").Emit(context.Background(), r)
	}
	close(stuck.release)
	if err := lp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := proc.(interface{ Dropped() int64 }).Dropped(); d != 0 || stuck.exported.Load() != 100 {
		t.Errorf("dropped %d exported %d, want 0 and 100", d, stuck.exported.Load())
	}
}

func TestProcessorCountsShutdownDrops(t *testing.T) {
	t.Parallel()
	stuck := &stuckExporter{release: make(chan struct{})} // never released
	proc := exporter.NewProcessor(stuck, exporter.WithQueueSize(50), sdklog.WithExportMaxBatchSize(10))
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc))
	for range 30 {
		var r log.Record
		r.SetEventName(otelaudit.EventName)
		lp.Logger("t").Emit(context.Background(), r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := lp.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	// What reached Export is the exporter's to count; the rest was still
	// queued at the deadline and is the processor's.
	if d, got := proc.(interface{ Dropped() int64 }).Dropped(), stuck.received.Load(); d+got != 30 || d == 0 {
		t.Errorf("dropped %d + handed to the exporter %d, want 30 with some dropped", d, got)
	}
}

// queueAdmits emits total audit records into a processor whose exporter is
// stuck and returns how many the processor dropped.
func queueAdmits(t *testing.T, total int, opts ...sdklog.BatchProcessorOption) int64 {
	t.Helper()
	stuck := &stuckExporter{release: make(chan struct{})}
	proc := exporter.NewProcessor(stuck, append(opts, sdklog.WithExportMaxBatchSize(10), sdklog.WithExportInterval(time.Hour))...)
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc))
	for range total {
		var r log.Record
		r.SetEventName(otelaudit.EventName)
		lp.Logger("t").Emit(context.Background(), r)
	}
	dropped := proc.(interface{ Dropped() int64 }).Dropped()
	close(stuck.release)
	if err := lp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stuck.exported.Load(); got+dropped != int64(total) {
		t.Errorf("exported %d + dropped %d != %d: records lost silently", got, dropped, total)
	}
	return dropped
}

// The queue size comes from WithQueueSize, else OTEL_BLRP_MAX_QUEUE_SIZE
// (as the SDK reads it), else the SDK's default; the processor and the
// SDK's queue always agree, so every record is exported or counted.
func TestProcessorQueueSize(t *testing.T) {
	// At most the queue plus the batches that left it (10 each, the
	// exporter takes one and blocks) are admitted.
	if d := queueAdmits(t, 1000, exporter.WithQueueSize(30)); d < 1000-30-20 {
		t.Errorf("WithQueueSize(30): dropped %d of 1000, want at least %d", d, 1000-30-20)
	}
	t.Setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "40")
	if d := queueAdmits(t, 1000); d < 1000-40-20 {
		t.Errorf("OTEL_BLRP_MAX_QUEUE_SIZE=40: dropped %d of 1000", d)
	}
	if d := queueAdmits(t, 1000, exporter.WithQueueSize(200)); d < 1000-200-20 || d > 1000-200 {
		t.Errorf("WithQueueSize(200) over the environment: dropped %d of 1000", d)
	}
	t.Setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "not-a-number")
	if d := queueAdmits(t, 1000); d != 0 {
		t.Errorf("default queue (2048): dropped %d of 1000", d)
	}
	// A sdklog.WithMaxQueueSize of its own would make the SDK's queue and
	// the processor's count disagree: NewProcessor's size wins.
	if d := queueAdmits(t, 1000, sdklog.WithMaxQueueSize(5)); d != 0 {
		t.Errorf("sdklog.WithMaxQueueSize(5) among the options: dropped %d of 1000, want the default queue", d)
	}
}

// Records emitted to a processor after its Shutdown are counted (reason
// shutdown) and reported, not lost silently.
func TestProcessorCountsRecordsAfterShutdown(t *testing.T) {
	h := &handled{}
	otel.SetErrorHandler(h)
	defer otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	reader := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))

	stuck := &stuckExporter{release: make(chan struct{})}
	close(stuck.release)
	proc := exporter.NewProcessor(stuck)
	if err := proc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		var r sdklog.Record
		r.SetEventName(otelaudit.EventName)
		if err := proc.OnEmit(context.Background(), &r); err != nil {
			t.Fatal(err)
		}
	}
	if d := proc.(interface{ Dropped() int64 }).Dropped(); d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if got := sumCounter(rm, "otelaudit.records.dropped", exporter.DropShutdown); got != 3 {
		t.Errorf("metric otelaudit.records.dropped{reason=shutdown} = %d, want 3", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) == 0 {
		t.Error("the drops were not reported through otel.Handle")
	}
}
