package instrumentation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"
)

// ErrAuditUnavailable is returned to the client for a call refused in
// fail-closed mode because the audit pipeline cannot record it.
var ErrAuditUnavailable = errors.New("instrumentation: audit unavailable")

// HealthChecker reports whether the audit pipeline can record calls durably.
// The otelaudit exporter implements it.
type HealthChecker interface {
	// Health returns nil while audit records can be stored. It must be cheap:
	// it is called once per tool call.
	Health(ctx context.Context) error
}

// HealthCheckerFunc adapts a function to a [HealthChecker].
type HealthCheckerFunc func(ctx context.Context) error

// Health calls f(ctx).
func (f HealthCheckerFunc) Health(ctx context.Context) error { return f(ctx) }

// Allow reports whether a tool call may proceed. It returns nil in the
// default fail-open mode and, in fail-closed mode (see [WithFailClosed]),
// while the audit pipeline is healthy; otherwise it counts the refusal and
// returns [ErrAuditUnavailable].
//
// A gateway that records calls with [Auditor.Record] itself refuses a call
// like this, and the refusal is recorded once the pipeline is back:
//
//	if err := a.Allow(ctx); err != nil {
//		a.Record(ctx, instrumentation.Call{Tool: tool, Args: args, Err: err})
//		return err
//	}
func (a *Auditor) Allow(ctx context.Context) error {
	if a == nil || a.health == nil {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := a.healthErr(ctx); err != nil {
		a.refusedCount.Add(ctx, 1)
		return ErrAuditUnavailable
	}
	if a.refused.pending.Load() > 0 {
		a.drainAsync()
	}
	return nil
}

// healthErr calls the HealthChecker, treating a panic as unhealthy.
func (a *Auditor) healthErr(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("instrumentation: health check panicked: %v", p)
		}
	}()
	return a.health.Health(ctx)
}

// refusedList keeps the records of refused calls until the audit pipeline is
// healthy again.
type refusedList struct {
	mu       sync.Mutex
	max      int
	recs     []refusedRecord
	dropped  int64 // since the last drain
	pending  atomic.Int64
	draining atomic.Bool
}

type refusedRecord struct {
	rec log.Record
	sc  trace.SpanContext
}

// keepRefused keeps the record of a refused call, or counts it as dropped
// when the list is full.
func (a *Auditor) keepRefused(ctx context.Context, rec log.Record) {
	l := &a.refused
	l.mu.Lock()
	if len(l.recs) >= l.max {
		l.dropped++
		first := l.dropped == 1
		l.mu.Unlock()
		a.droppedCount.Add(ctx, 1)
		if first {
			otel.Handle(fmt.Errorf("instrumentation: %d refused tool calls already kept while the audit pipeline is unavailable; further refusals are not recorded", l.max))
		}
		return
	}
	l.recs = append(l.recs, refusedRecord{rec: rec, sc: trace.SpanContextFromContext(ctx)})
	l.pending.Store(int64(len(l.recs)))
	l.mu.Unlock()
	// The pipeline may have come back between the health check and now.
	if a.healthErr(ctx) == nil {
		a.drainAsync()
	}
}

// drainAsync emits the kept refusals on a goroutine of its own, so the call
// that noticed the recovery does not wait for them.
func (a *Auditor) drainAsync() {
	if !a.refused.draining.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer a.refused.draining.Store(false)
		a.drainRefused()
	}()
}

// drainRefused emits the kept refusals while the pipeline stays healthy;
// those it could not emit stay kept.
func (a *Auditor) drainRefused() {
	defer func() {
		if p := recover(); p != nil {
			otel.Handle(fmt.Errorf("instrumentation: recovered from panic while recording refused calls: %v", p))
		}
	}()
	l := &a.refused
	ctx := context.Background()
	if a.healthErr(ctx) != nil {
		return
	}
	l.mu.Lock()
	recs, dropped := l.recs, l.dropped
	l.recs, l.dropped = nil, 0
	l.pending.Store(0)
	l.mu.Unlock()
	for i, r := range recs {
		// Health is asked again before every record: a pipeline that
		// stops taking records mid-drain (its queue is full) would drop the
		// rest. They are kept, ahead of newer refusals, for the next drain.
		if i > 0 && a.healthErr(ctx) != nil {
			l.mu.Lock()
			l.recs = append(recs[i:len(recs):len(recs)], l.recs...)
			l.pending.Store(int64(len(l.recs)))
			l.mu.Unlock()
			break
		}
		a.logger.Emit(trace.ContextWithSpanContext(ctx, r.sc), r.rec)
	}
	if dropped > 0 {
		otel.Handle(fmt.Errorf("instrumentation: %d refused tool calls were not recorded: the list of refusals (%d) was full", dropped, l.max))
	}
}
