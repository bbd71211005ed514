package instrumentation

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
)

func TestWrap(t *testing.T) {
	f := newFixture(t)
	var sawState bool
	h := f.a.Wrap(func(ctx context.Context, req ToolRequest) (ToolResult, error) {
		sawState = SetBackend(ctx, "chosen")
		return ToolResult{Value: "result"}, nil
	})
	ctx := ContextWithIdentity(context.Background(), "alice", "admin")
	res, err := h(ctx, ToolRequest{Tool: "search", Backend: "configured", Args: map[string]any{"token": "t"}})
	if err != nil || res.Value != "result" {
		t.Fatalf("got %v, %v", res, err)
	}
	if !sawState {
		t.Errorf("SetBackend found no audited call in the handler's context")
	}
	rec, attrs := f.only(t)
	spans := f.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "execute_tool search" || s.SpanKind() != trace.SpanKindInternal {
		t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
	}
	if rec.TraceID() != s.SpanContext().TraceID() || rec.SpanID() != s.SpanContext().SpanID() {
		t.Errorf("record not in the execute_tool span")
	}
	spanAttrs := attribute.NewSet(s.Attributes()...)
	for k, want := range map[attribute.Key]string{
		otelaudit.GenAIOperationNameKey: otelaudit.OperationExecuteTool,
		otelaudit.ToolNameKey:           "search",
		otelaudit.RequestIDKey:          attrs[otelaudit.RequestIDKey].AsString(),
		otelaudit.BackendNameKey:        "chosen",
	} {
		if v, _ := spanAttrs.Value(k); v.AsString() != want {
			t.Errorf("span %s = %q, want %q", k, v.AsString(), want)
		}
	}
	if got := attrs[otelaudit.BackendNameKey].AsString(); got != "chosen" {
		t.Errorf("backend = %q, want the one set by the handler", got)
	}
	if got := attrs[otelaudit.UserIDKey].AsString(); got != "alice" {
		t.Errorf("user.id = %q", got)
	}
	if got := attrs[otelaudit.ToolCallArgumentsKey].AsMap()[0].Value.AsString(); got != RedactedValue {
		t.Errorf("token = %q", got)
	}
	if SetBackend(context.Background(), "x") {
		t.Errorf("SetBackend outside an audited call reported true")
	}
}

func TestWrapOutcomes(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		res     ToolResult
		err     error
		status  otelaudit.Status
		errType string
		msg     string
	}{
		{"ok", ToolResult{}, nil, otelaudit.StatusOK, "", ""},
		{"error", ToolResult{}, boom, otelaudit.StatusError, otelaudit.ErrorTypeOther, "boom"},
		{"timeout", ToolResult{}, context.DeadlineExceeded, otelaudit.StatusTimeout, otelaudit.ErrorTypeTimeout, "context deadline exceeded"},
		{"cancelled", ToolResult{}, context.Canceled, otelaudit.StatusCancelled, otelaudit.ErrorTypeCancelled, "context canceled"},
		{"tool error", ToolResult{IsError: true, ErrorMessage: "no such file"}, nil, otelaudit.StatusError, otelaudit.ErrorTypeToolError, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.a.Wrap(func(context.Context, ToolRequest) (ToolResult, error) { return tt.res, tt.err })(context.Background(), ToolRequest{Tool: "t"})
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v", err)
			}
			_, attrs := f.only(t)
			if attrs[otelaudit.ResponseStatusKey].AsString() != string(tt.status) ||
				attrs[otelaudit.ErrorTypeKey].AsString() != tt.errType ||
				attrs[otelaudit.ErrorMessageKey].AsString() != tt.msg {
				t.Errorf("status %q type %q msg %q", attrs[otelaudit.ResponseStatusKey].AsString(),
					attrs[otelaudit.ErrorTypeKey].AsString(), attrs[otelaudit.ErrorMessageKey].AsString())
			}
			s := f.spans.Ended()[0]
			if (s.Status().Code == codes.Error) != (tt.status != otelaudit.StatusOK) {
				t.Errorf("span status %v", s.Status())
			}
		})
	}
}

func TestWrapPanic(t *testing.T) {
	f := newFixture(t)
	h := f.a.Wrap(func(context.Context, ToolRequest) (ToolResult, error) { panic("tool exploded") })
	func() {
		defer func() {
			if p := recover(); p != "tool exploded" {
				t.Errorf("recovered %v, want the handler's panic", p)
			}
		}()
		_, _ = h(context.Background(), ToolRequest{Tool: "t"})
	}()
	_, attrs := f.only(t)
	if attrs[otelaudit.ResponseStatusKey].AsString() != string(otelaudit.StatusError) || attrs[otelaudit.ErrorTypeKey].AsString() != "panic" {
		t.Errorf("status %q error.type %q", attrs[otelaudit.ResponseStatusKey].AsString(), attrs[otelaudit.ErrorTypeKey].AsString())
	}
}

type health struct{ err atomic.Pointer[error] }

func (h *health) set(err error) {
	if err == nil {
		h.err.Store(nil)
		return
	}
	h.err.Store(&err)
}

func (h *health) Health(context.Context) error {
	if p := h.err.Load(); p != nil {
		return *p
	}
	return nil
}

func TestFailClosed(t *testing.T) {
	h := &health{}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	f := newFixture(t, WithFailClosed(h), WithMaxRefused(2), WithMeterProvider(mp))

	var mu sync.Mutex
	var handled []error
	nHandled := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
	t.Cleanup(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) })

	var calls atomic.Int64
	wrapped := f.a.Wrap(func(context.Context, ToolRequest) (ToolResult, error) {
		calls.Add(1)
		return ToolResult{}, nil
	})
	h.set(errors.New("postgres away"))
	for range 3 {
		_, err := wrapped(context.Background(), ToolRequest{Tool: "t", Args: map[string]any{"password": "p"}})
		if !errors.Is(err, ErrAuditUnavailable) || err.Error() != "instrumentation: audit unavailable" {
			t.Fatalf("err = %v, want ErrAuditUnavailable", err)
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("the backend was called %d times while the audit was unavailable", calls.Load())
	}
	if n := len(f.rec.Records()); n != 0 {
		t.Fatalf("%d records emitted while the audit was unavailable", n)
	}
	if nHandled() != 1 {
		t.Errorf("overflow reported %d times, want 1: %v", len(handled), handled)
	}
	if err := f.a.Allow(context.Background()); !errors.Is(err, ErrAuditUnavailable) {
		t.Errorf("Allow = %v", err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					sums[m.Name] += dp.Value
				}
			}
		}
	}
	if sums["otelaudit.instrumentation.calls.refused"] != 4 || sums["otelaudit.instrumentation.calls.refused.dropped"] != 1 {
		t.Errorf("metrics %v", sums)
	}

	// Healthy again: the next call goes through and the kept refusals are
	// recorded as denied.
	h.set(nil)
	if _, err := wrapped(context.Background(), ToolRequest{Tool: "t"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(f.rec.Records()) == 3 })
	denied := 0
	for _, r := range f.rec.Records() {
		a := auditAttrs(r)
		if a[otelaudit.ResponseStatusKey].AsString() == string(otelaudit.StatusDenied) {
			denied++
			if a[otelaudit.ErrorTypeKey].AsString() != otelaudit.ErrorTypeAuditUnavailable {
				t.Errorf("error.type = %q", a[otelaudit.ErrorTypeKey].AsString())
			}
			if !r.TraceID().IsValid() {
				t.Errorf("denied record lost its trace")
			}
		}
	}
	if denied != 2 {
		t.Errorf("%d denied records, want 2", denied)
	}
	waitFor(t, func() bool { return nHandled() == 2 })
}

func TestFailOpenByDefault(t *testing.T) {
	f := newFixture(t)
	if err := f.a.Allow(context.Background()); err != nil {
		t.Fatal(err)
	}
	var nilAuditor *Auditor
	if err := nilAuditor.Allow(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A handler that fails once its context is done fails because of it: the
// client's cancellation is cancelled, a passed deadline timeout, whatever
// error the handler made of it.
func TestWrapContextDone(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		res    ToolResult
		err    error
		status otelaudit.Status
	}{
		{"cancelled, own error", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			ToolResult{}, errors.New("backend: stream closed"), otelaudit.StatusCancelled},
		{"cancelled, tool error", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			ToolResult{IsError: true, ErrorMessage: "aborted", ErrorType: "-32800"}, nil, otelaudit.StatusCancelled},
		{"deadline, own error", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Millisecond)
		}, ToolResult{}, errors.New("backend: stream closed"), otelaudit.StatusTimeout},
		{"cancelled, success", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			ToolResult{}, nil, otelaudit.StatusOK},
		{"cancelled with a cause of its own", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(context.Background())
			return ctx, func() { cancel(errShutdown) }
		}, ToolResult{}, errors.New("backend: stream closed"), otelaudit.StatusError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx, cancel := tt.ctx()
			defer cancel()
			_, _ = f.a.Wrap(func(ctx context.Context, _ ToolRequest) (ToolResult, error) {
				if tt.status != otelaudit.StatusTimeout {
					cancel() // the client goes away
				}
				<-ctx.Done()
				return tt.res, tt.err
			})(ctx, ToolRequest{Tool: "t"})
			_, attrs := f.only(t)
			if got := attrs[otelaudit.ResponseStatusKey].AsString(); got != string(tt.status) {
				t.Errorf("status %q, want %q", got, tt.status)
			}
			wantType := map[otelaudit.Status]string{otelaudit.StatusCancelled: otelaudit.ErrorTypeCancelled, otelaudit.StatusTimeout: otelaudit.ErrorTypeTimeout, otelaudit.StatusError: "shutdown"}[tt.status]
			if got := attrs[otelaudit.ErrorTypeKey].AsString(); got != wantType {
				t.Errorf("error.type %q, want %q", got, wantType)
			}
		})
	}
}

// errShutdown is a cancellation cause of its own, as a gateway shutting down
// would use.
var errShutdown = shutdownError{}

type shutdownError struct{}

func (shutdownError) Error() string     { return "gateway shutting down" }
func (shutdownError) ErrorType() string { return "shutdown" }
