package instrumentation

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
)

type fixture struct {
	a     *Auditor
	rec   *audittest.Recorder
	spans *tracetest.SpanRecorder
	tp    *sdktrace.TracerProvider
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	f := &fixture{rec: &audittest.Recorder{}, spans: tracetest.NewSpanRecorder()}
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	opts = append([]Option{
		WithLoggerProvider(audittest.NewLoggerProvider(f.rec)),
		WithTracerProvider(f.tp),
	}, opts...)
	f.a = New(opts...)
	return f
}

// only returns the one record emitted, failing the test otherwise.
func (f *fixture) only(t *testing.T) (sdklog.Record, map[attribute.Key]attribute.Value) {
	t.Helper()
	recs := f.rec.Records()
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	return recs[0], audittest.Attrs(recs[0])
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

func auditAttrs(r sdklog.Record) map[attribute.Key]attribute.Value { return audittest.Attrs(r) }
