package instrumentation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
)

func TestStatusClassification(t *testing.T) {
	other := errors.New("boom")
	tests := []struct {
		name     string
		call     Call
		status   otelaudit.Status
		errType  string
		errorMsg string
	}{
		{"nil error", Call{}, otelaudit.StatusOK, "", ""},
		{"error", Call{Err: other}, otelaudit.StatusError, otelaudit.ErrorTypeOther, "boom"},
		{"wrapped error", Call{Err: fmt.Errorf("call: %w", other)}, otelaudit.StatusError, otelaudit.ErrorTypeOther, "call: boom"},
		{"deadline", Call{Err: context.DeadlineExceeded}, otelaudit.StatusTimeout, otelaudit.ErrorTypeTimeout, "context deadline exceeded"},
		{"wrapped deadline", Call{Err: fmt.Errorf("x: %w", context.DeadlineExceeded)}, otelaudit.StatusTimeout, otelaudit.ErrorTypeTimeout, "x: context deadline exceeded"},
		{"path error", Call{Err: &os.PathError{Op: "open", Path: "/x", Err: os.ErrNotExist}}, otelaudit.StatusError, otelaudit.ErrorTypeOther, "open /x: file does not exist"},
		{"error typer", Call{Err: fmt.Errorf("x: %w", quotaError{})}, otelaudit.StatusError, "quota_exceeded", "x: quota"},
		{"canceled", Call{Err: context.Canceled}, otelaudit.StatusCancelled, otelaudit.ErrorTypeCancelled, "context canceled"},
		{"wrapped canceled", Call{Err: fmt.Errorf("backend: %w", context.Canceled)}, otelaudit.StatusCancelled, otelaudit.ErrorTypeCancelled, "backend: context canceled"},
		{"explicit error, canceled", Call{Status: otelaudit.StatusError, Err: context.Canceled}, otelaudit.StatusError, otelaudit.ErrorTypeCancelled, "context canceled"},
		{"audit unavailable", Call{Err: ErrAuditUnavailable}, otelaudit.StatusDenied, otelaudit.ErrorTypeAuditUnavailable, "instrumentation: audit unavailable"},
		{"denied by the gateway", Call{Err: fmt.Errorf("role %q may not call it: %w", "guest", ErrDenied)}, otelaudit.StatusDenied, "denied", `role "guest" may not call it: instrumentation: denied`},
		{"denied with its own type", Call{Err: ErrDenied, ErrorType: "forbidden"}, otelaudit.StatusDenied, "forbidden", "instrumentation: denied"},
		{"explicit denied", Call{Status: otelaudit.StatusDenied, ErrorMessage: "role"}, otelaudit.StatusDenied, "denied", "role"},
		{"explicit status wins", Call{Status: otelaudit.StatusOK, Err: other}, otelaudit.StatusOK, "", ""},
		{"invalid status is derived", Call{Status: "weird", Err: other}, otelaudit.StatusError, otelaudit.ErrorTypeOther, "boom"},
		{"explicit error type", Call{Err: other, ErrorType: otelaudit.ErrorTypeToolError}, otelaudit.StatusError, otelaudit.ErrorTypeToolError, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.call.Tool = "t"
			f.a.Record(context.Background(), tt.call)
			_, attrs := f.only(t)
			if got := attrs[otelaudit.ResponseStatusKey].AsString(); got != string(tt.status) {
				t.Errorf("status = %q, want %q", got, tt.status)
			}
			if got := attrs[otelaudit.ErrorTypeKey].AsString(); got != tt.errType {
				t.Errorf("error.type = %q, want %q", got, tt.errType)
			}
			if got := attrs[otelaudit.ErrorMessageKey].AsString(); got != tt.errorMsg {
				t.Errorf("error.message = %q, want %q", got, tt.errorMsg)
			}
		})
	}
}

type quotaError struct{}

func (quotaError) Error() string     { return "quota" }
func (quotaError) ErrorType() string { return "quota_exceeded" }

func TestRecordAttributes(t *testing.T) {
	f := newFixture(t)
	tid, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
	sid, _ := trace.SpanIDFromHex("0102030405060708")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	id := uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057")
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.a.Record(ctx, Call{
		RequestID: id,
		Start:     start,
		Subject:   "alice",
		Role:      "admin, auditor",
		Tool:      "search",
		Backend:   "docs",
		Args:      map[string]any{"q": "otel", "n": 3, "password": "hunter2"},
		Latency:   1500 * time.Millisecond,
		Method:    otelaudit.MethodToolsCall,
		SessionID: "sess-1",
		JSONRPCID: "7",
	})
	rec, attrs := f.only(t)
	if rec.EventName() != otelaudit.EventName {
		t.Errorf("event name = %q", rec.EventName())
	}
	if !rec.Timestamp().Equal(start) {
		t.Errorf("timestamp = %v, want %v", rec.Timestamp(), start)
	}
	if rec.TraceID() != tid || rec.SpanID() != sid {
		t.Errorf("trace/span = %v/%v", rec.TraceID(), rec.SpanID())
	}
	if rec.Severity() != log.SeverityInfo {
		t.Errorf("severity = %v", rec.Severity())
	}
	want := map[attribute.Key]any{
		otelaudit.RequestIDKey:          id.String(),
		otelaudit.GenAIOperationNameKey: otelaudit.OperationExecuteTool,
		otelaudit.ToolNameKey:           "search",
		otelaudit.BackendNameKey:        "docs",
		otelaudit.UserIDKey:             "alice",
		otelaudit.UserRolesKey:          []any{"admin", "auditor"},
		otelaudit.ResponseStatusKey:     "ok",
		otelaudit.LatencyMSKey:          float64(1500),
		otelaudit.ToolCallArgumentsKey:  map[string]any{"q": "otel", "n": float64(3), "password": RedactedValue},
		otelaudit.MCPMethodNameKey:      otelaudit.MethodToolsCall,
		otelaudit.MCPSessionIDKey:       "sess-1",
		otelaudit.JSONRPCRequestIDKey:   "7",
	}
	if len(attrs) != len(want) {
		t.Errorf("got %d attributes, want %d: %v", len(attrs), len(want), attrs)
	}
	for k, w := range want {
		v, ok := attrs[k]
		if !ok {
			t.Errorf("missing %s", k)
			continue
		}
		if got := audittest.JSON(v); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", k, got, w)
		}
	}
	if attrs[otelaudit.ToolCallArgumentsKey].Type() != attribute.MAP {
		t.Errorf("arguments are %v, want a map value", attrs[otelaudit.ToolCallArgumentsKey].Type())
	}
}

func TestRecordDefaults(t *testing.T) {
	f := newFixture(t)
	before := time.Now()
	f.a.Record(context.Background(), Call{Tool: "t", Latency: time.Second})
	rec, attrs := f.only(t)
	id, err := uuid.Parse(attrs[otelaudit.RequestIDKey].AsString())
	if err != nil || id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		t.Fatalf("request id %v (err %v) is not a UUIDv7", id, err)
	}
	ts := rec.Timestamp()
	if ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(-time.Second)) {
		t.Errorf("timestamp %v is not now minus latency (%v)", ts, before)
	}
	// The id is made when the call is recorded, its end.
	if sec, _ := id.Time().UnixTime(); sec < before.Unix() || sec > time.Now().Unix() {
		t.Errorf("UUIDv7 time %d is not the time of recording (%d)", sec, before.Unix())
	}
	if _, ok := attrs[otelaudit.ToolCallArgumentsKey]; ok {
		t.Errorf("arguments recorded for a call without arguments")
	}
	if _, ok := attrs[otelaudit.MCPMethodNameKey]; ok {
		t.Errorf("mcp.method.name recorded for a call not over MCP")
	}
	if got := attrs[otelaudit.UserRolesKey]; got.Type() != attribute.STRINGSLICE || len(got.AsStringSlice()) != 0 {
		t.Errorf("user.roles = %v, want an empty string slice", got.String())
	}
}

func TestRequestIDsUnique(t *testing.T) {
	seen := map[uuid.UUID]bool{}
	for range 100000 {
		id := newRequestID()
		if id.Version() != 7 {
			t.Fatalf("request id %v is version %d, want 7", id, id.Version())
		}
		if seen[id] {
			t.Fatalf("duplicate request id %v", id)
		}
		seen[id] = true
	}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name         string
		opts         []Option
		ctx          context.Context
		call         Call
		subject, rol string
	}{
		{"context", nil, ContextWithIdentity(context.Background(), "bob", "dev"), Call{}, "bob", "dev"},
		{"none", nil, context.Background(), Call{}, "", ""},
		{"call wins", nil, ContextWithIdentity(context.Background(), "bob", "dev"), Call{Subject: "carol"}, "carol", ""},
		{"hook", []Option{WithIdentity(func(ctx context.Context) (string, string) { return "svc", "robot" })},
			ContextWithIdentity(context.Background(), "bob", "dev"), Call{}, "svc", "robot"},
		{"panicking hook", []Option{WithIdentity(func(ctx context.Context) (string, string) { panic("x") })},
			context.Background(), Call{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts...)
			tt.call.Tool = "t"
			f.a.Record(tt.ctx, tt.call)
			_, attrs := f.only(t)
			if got := attrs[otelaudit.UserIDKey].AsString(); got != tt.subject {
				t.Errorf("user.id = %q, want %q", got, tt.subject)
			}
			roles := attrs[otelaudit.UserRolesKey].AsStringSlice()
			if got := fmt.Sprint(roles); tt.rol != "" && got != "["+tt.rol+"]" || tt.rol == "" && len(roles) != 0 {
				t.Errorf("user.roles = %v, want %q", roles, tt.rol)
			}
		})
	}
}

func TestNeverPanics(t *testing.T) {
	f := newFixture(t)
	var nilAuditor *Auditor
	nilAuditor.Record(context.Background(), Call{})
	//lint:ignore SA1012 a nil context must not panic either
	f.a.Record(nil, Call{Tool: "t", Args: map[string]any{"c": make(chan int)}})
	f.a.Record(context.Background(), Call{Tool: "t", Args: panicker{}})
	f.a.Record(context.Background(), Call{Tool: "t", Args: func() {}})
	var nilPtr *panicker
	f.a.Record(context.Background(), Call{Tool: "t", Args: nilPtr})
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	f.a.Record(context.Background(), Call{Tool: "t", Args: cyclic})
	if n := len(f.rec.Records()); n != 5 {
		t.Fatalf("got %d records, want 5", n)
	}
}

type panicker struct{}

func (panicker) MarshalJSON() ([]byte, error) { panic("marshal") }
