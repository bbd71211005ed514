package instrumentation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/sentinel-gateway/otelaudit"
)

// discard is an sdk/log Exporter that drops everything.
type discard struct{}

func (discard) Export(context.Context, []sdklog.Record) error { return nil }
func (discard) Shutdown(context.Context) error                { return nil }
func (discard) ForceFlush(context.Context) error              { return nil }

func benchProvider(b *testing.B, opts ...sdklog.LoggerProviderOption) *sdklog.LoggerProvider {
	lp := sdklog.NewLoggerProvider(append([]sdklog.LoggerProviderOption{
		sdklog.WithProcessor(sdklog.NewBatchProcessor(discard{})),
	}, opts...)...)
	b.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	return lp
}

func benchCtx() context.Context {
	tid, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
	sid, _ := trace.SpanIDFromHex("0102030405060708")
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
}

var benchArgs = map[string]any{"query": "opentelemetry audit", "limit": 10, "lang": "en"}

const benchRequestID = "01890a5d-ac96-774b-bcce-b302099a8057"

// sdkEmit emits, with the SDK alone, the record Record makes of benchCall:
// same event name, timestamp, severity and attributes.
func sdkEmit(ctx context.Context, l log.Logger, start time.Time) {
	var r log.Record
	r.SetEventName(otelaudit.EventName)
	r.SetTimestamp(start)
	r.SetSeverity(log.SeverityInfo)
	r.AddAttributes(
		otelaudit.RequestIDKey.String(benchRequestID),
		otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool),
		otelaudit.ToolNameKey.String("search"),
		otelaudit.BackendNameKey.String("docs"),
		otelaudit.UserIDKey.String("alice"),
		otelaudit.UserRolesKey.StringSlice([]string{"admin"}),
		otelaudit.ResponseStatusKey.String("ok"),
		otelaudit.LatencyMSKey.Int64(12),
		attribute.KeyValue{Key: otelaudit.ToolCallArgumentsKey, Value: attribute.MapValue(
			attribute.String("query", "opentelemetry audit"),
			attribute.Int("limit", 10),
			attribute.String("lang", "en"),
		)},
		otelaudit.MCPMethodNameKey.String(otelaudit.MethodToolsCall),
		otelaudit.MCPSessionIDKey.String("sess-1"),
		otelaudit.JSONRPCRequestIDKey.String("42"),
	)
	l.Emit(ctx, r)
}

func benchCall(start time.Time) Call {
	return Call{
		Start: start, Subject: "alice", Role: "admin", Tool: "search", Backend: "docs",
		Args: benchArgs, Latency: 12 * time.Millisecond,
		Method: otelaudit.MethodToolsCall, SessionID: "sess-1", JSONRPCID: "42",
	}
}

func benchEmitAndRecord(b *testing.B, opts ...sdklog.LoggerProviderOption) {
	ctx := benchCtx()
	start := time.Now()
	b.Run("SDKEmit", func(b *testing.B) {
		l := benchProvider(b, opts...).Logger(ScopeName)
		b.ReportAllocs()
		for b.Loop() {
			sdkEmit(ctx, l, start)
		}
	})
	b.Run("Record", func(b *testing.B) {
		a := New(WithLoggerProvider(benchProvider(b, opts...)), WithTracerProvider(tracenoop.NewTracerProvider()))
		c := benchCall(start)
		b.ReportAllocs()
		for b.Loop() {
			a.Record(ctx, c)
		}
	})
	b.Run("RecordErrorScrubbed", func(b *testing.B) {
		// Not part of the bar: a failed call whose error text quotes a
		// secret argument, scrubbed.
		a := New(WithLoggerProvider(benchProvider(b, opts...)), WithTracerProvider(tracenoop.NewTracerProvider()))
		c := benchCall(start)
		c.Args = map[string]any{"query": "opentelemetry audit", "limit": 10, "api_key": "sk-live-123"}
		c.Err = errBench
		b.ReportAllocs()
		for b.Loop() {
			a.Record(ctx, c)
		}
	})
	b.Run("RecordExtraAttributes", func(b *testing.B) {
		// Not part of the bar: a call with the four extra attributes of
		// the example gateway's anonymous rows.
		a := New(WithLoggerProvider(benchProvider(b, opts...)), WithTracerProvider(tracenoop.NewTracerProvider()))
		c := benchCall(start)
		c.Attributes = []attribute.KeyValue{
			otelaudit.AggregateCountKey.Int(3),
			otelaudit.AggregateFirstTimeKey.String("2026-12-01T19:00:00.123456789Z"),
			otelaudit.AggregateLastTimeKey.String("2026-12-01T19:00:09.987654321Z"),
			otelaudit.ClientAddressKey.String("192.0.2.7"),
		}
		b.ReportAllocs()
		for b.Loop() {
			a.Record(ctx, c)
		}
	})
	b.Run("RecordOversizedRaw", func(b *testing.B) {
		// Not part of the bar: arguments of 100 KiB given as JSON, over
		// the 64 KiB limit: replaced by a marker, read for their secrets.
		a := New(WithLoggerProvider(benchProvider(b, opts...)), WithTracerProvider(tracenoop.NewTracerProvider()))
		c := benchCall(start)
		c.Args = benchOversizedRaw
		b.SetBytes(int64(len(benchOversizedRaw)))
		b.ReportAllocs()
		for b.Loop() {
			a.Record(ctx, c)
		}
	})
	b.Run("RecordSecret", func(b *testing.B) {
		a := New(WithLoggerProvider(benchProvider(b, opts...)), WithTracerProvider(tracenoop.NewTracerProvider()))
		c := benchCall(start)
		c.Args = map[string]any{"query": "opentelemetry audit", "limit": 10, "api_key": "sk-live-123"}
		b.ReportAllocs()
		for b.Loop() {
			a.Record(ctx, c)
		}
	})
}

// benchOversizedRaw is 100 KiB of arguments as JSON: 400 documents of a
// file listing, one of them with a token.
var benchOversizedRaw = func() json.RawMessage {
	var sb strings.Builder
	sb.WriteString(`{"path":"/srv/data","entries":[`)
	for i := 0; sb.Len() < 100<<10; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"name":"report-%04d.csv","size":%d,"owner":"analytics","tags":["q3","finance","draft"],"note":"generated by the nightly job"}`, i, 1000+i)
	}
	sb.WriteString(`],"auth":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"}`)
	return json.RawMessage(sb.String())
}()

// BenchmarkDecodeOversizedRaw is the baseline of RecordOversizedRaw: what
// decoding the same arguments costs (an MCP SDK decodes a request's params
// once before the handler sees them).
func BenchmarkDecodeOversizedRaw(b *testing.B) {
	b.SetBytes(int64(len(benchOversizedRaw)))
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := json.Unmarshal(benchOversizedRaw, &v); err != nil {
			b.Fatal(err)
		}
	}
}

var errBench = errors.New(`backend refused {"query":"opentelemetry audit","api_key":"sk-live-123"}: quota`)

// BenchmarkRecord compares the SDK's own Emit of an audit record with Record
// of the same call, with the SDK's default attribute de-duplication.
func BenchmarkRecord(b *testing.B) { benchEmitAndRecord(b) }

// BenchmarkRecordAllowDup is BenchmarkRecord with
// sdklog.WithAllowKeyDuplication: the Auditor never emits duplicate keys.
func BenchmarkRecordAllowDup(b *testing.B) { benchEmitAndRecord(b, sdklog.WithAllowKeyDuplication()) }

func bareHandler(_ context.Context, req ToolRequest) (ToolResult, error) {
	return ToolResult{Value: req.Tool}, nil
}

// BenchmarkHandler compares a bare tool handler with the same handler
// wrapped by Wrap (which also starts and ends the execute_tool span, here
// with the SDK's tracer provider of the global default: no-op).
func BenchmarkHandler(b *testing.B) {
	ctx := ContextWithIdentity(context.Background(), "alice", "admin")
	req := ToolRequest{Tool: "search", Backend: "docs", Args: benchArgs,
		Method: otelaudit.MethodToolsCall, SessionID: "sess-1", JSONRPCID: "42"}
	b.Run("Bare", func(b *testing.B) {
		var h ToolHandler = bareHandler
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h(ctx, req)
		}
	})
	b.Run("Wrap", func(b *testing.B) {
		a := New(WithLoggerProvider(benchProvider(b)), WithTracerProvider(tracenoop.NewTracerProvider()))
		h := a.Wrap(bareHandler)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h(ctx, req)
		}
	})
}

// BenchmarkBuild isolates what Record adds to Emit: building the log.Record
// of a call (request id, identity, redacted arguments) against building the
// equivalent record by hand.
func BenchmarkBuild(b *testing.B) {
	ctx := benchCtx()
	start := time.Now()
	b.Run("ByHand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sdkEmit(ctx, nopLogger{}, start)
		}
	})
	b.Run("Auditor", func(b *testing.B) {
		a := New(WithLoggerProvider(benchProvider(b)), WithTracerProvider(tracenoop.NewTracerProvider()))
		c := benchCall(start)
		b.ReportAllocs()
		for b.Loop() {
			r, _ := a.build(ctx, &c)
			nopLogger{}.Emit(ctx, r)
		}
	})
}

type nopLogger struct{ log.Logger }

//go:noinline
func (nopLogger) Emit(context.Context, log.Record) {}
