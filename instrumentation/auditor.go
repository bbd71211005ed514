package instrumentation

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the Auditor's logger, tracer and
// meter.
const ScopeName = "github.com/sentinel-gateway/otelaudit/instrumentation"

// Version is the version of this instrumentation, reported as the scope
// version.
const Version = "0.1.0"

// An Auditor records tool calls as otelaudit audit events. It is safe for
// concurrent use. A nil *Auditor records nothing and lets every call through.
type Auditor struct {
	logger       log.Logger
	tracer       trace.Tracer
	identity     func(context.Context) (subject, role string)
	redactor     *redactor
	maxArgsBytes int
	// maxFieldBytes and maxErrorBytes bound the string fields and the
	// error text; errorText is false with WithErrorText(false).
	maxFieldBytes int
	maxErrorBytes int
	errorText     bool

	health  HealthChecker
	refused refusedList

	roles     sync.Map // role string -> attribute.Value (user.roles)
	rolesSize atomic.Int64

	refusedCount metric.Int64Counter
	droppedCount metric.Int64Counter
}

// New returns an Auditor configured by opts.
func New(opts ...Option) *Auditor {
	c := newConfig(opts)
	a := &Auditor{
		logger:        c.loggerProvider.Logger(ScopeName, log.WithInstrumentationVersion(Version)),
		tracer:        c.tracerProvider.Tracer(ScopeName, trace.WithInstrumentationVersion(Version)),
		identity:      c.identity,
		redactor:      newRedactor(c.redactKeys, c.hmacKey, c.secretPatterns()),
		maxArgsBytes:  c.maxArgsBytes,
		maxFieldBytes: c.maxFieldBytes,
		maxErrorBytes: c.maxErrorBytes,
		errorText:     !c.noErrorText,
		health:        c.health,
	}
	a.refused.max = c.maxRefused

	meter := c.meterProvider.Meter(ScopeName, metric.WithInstrumentationVersion(Version))
	var err error
	a.refusedCount, err = meter.Int64Counter("otelaudit.instrumentation.calls.refused",
		metric.WithDescription("Tool calls refused because the audit pipeline was unavailable (fail-closed mode)."),
		metric.WithUnit("{call}"))
	if err != nil {
		otel.Handle(err)
		a.refusedCount = metricnoop.Int64Counter{}
	}
	a.droppedCount, err = meter.Int64Counter("otelaudit.instrumentation.calls.refused.dropped",
		metric.WithDescription("Refused tool calls that could not be kept for the audit log because the in-memory list was full."),
		metric.WithUnit("{call}"))
	if err != nil {
		otel.Handle(err)
		a.droppedCount = metricnoop.Int64Counter{}
	}
	return a
}
