package instrumentation_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	gomcp "github.com/mark3labs/mcp-go/mcp"
	goserver "github.com/mark3labs/mcp-go/server"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	mcpgoclient "github.com/mark3labs/mcp-go/client"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpgo"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpsdk"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

const secret = "sk-live-e2e-5f0c1a"

// TestEndToEnd makes one call through each adapter and checks the rows the
// exporter wrote to a real PostgreSQL.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(
		sdklog.WithProcessor(exporter.NewProcessor(exp)),
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "e2e-gateway"))),
	)
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	spans := tracetest.NewSpanRecorder()
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(lp),
		instrumentation.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))),
		instrumentation.WithIdentity(func(context.Context) (string, string) { return "carol", "ops,admin" }),
	)
	args := map[string]any{"query": "status", "api_key": secret, "opts": map[string]any{"password": secret}}

	// go-sdk, in memory.
	s := mcp.NewServer(&mcp.Implementation{Name: "sdk", Version: "1"}, nil)
	s.AddReceivingMiddleware(mcpsdk.Middleware(a, mcpsdk.WithBackendName("sdk-backend")))
	s.AddTool(&mcp.Tool{Name: "sdk_tool", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "quota exceeded"}}}, nil
		})
	st, ct := mcp.NewInMemoryTransports()
	if _, err := s.Connect(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sdk_tool", Arguments: args}); err != nil {
		t.Fatal(err)
	}

	// mcp-go, in process.
	hooks := &goserver.Hooks{}
	mcpgo.AddHooks(hooks)
	gs := goserver.NewMCPServer("go", "1", goserver.WithHooks(hooks),
		goserver.WithToolHandlerMiddleware(mcpgo.Middleware(a, mcpgo.WithBackendName("go-backend"))))
	gs.AddTool(gomcp.NewTool("go_tool"), func(ctx context.Context, req gomcp.CallToolRequest) (*gomcp.CallToolResult, error) {
		time.Sleep(5 * time.Millisecond)
		return gomcp.NewToolResultText("done"), nil
	})
	gc, err := mcpgoclient.NewInProcessClient(gs)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if err := gc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := gomcp.InitializeRequest{}
	init.Params.ProtocolVersion = "2025-06-18"
	init.Params.ClientInfo = gomcp.Implementation{Name: "c", Version: "1"}
	if _, err := gc.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	req := gomcp.CallToolRequest{}
	req.Params.Name = "go_tool"
	req.Params.Arguments = args
	if _, err := gc.CallTool(ctx, req); err != nil {
		t.Fatal(err)
	}

	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, url)
	var total int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 2 {
		t.Fatalf("audit_log has %d rows, want 2", total)
	}
	spanByID := map[string]string{}
	for _, sp := range spans.Ended() {
		spanByID[sp.SpanContext().SpanID().String()] = sp.SpanContext().TraceID().String()
	}

	type row struct {
		requestID, subject, role, tool, backend, status string
		args                                            []byte
		errMsg, traceID, spanID, service                *string
		latency                                         int64
		ts                                              time.Time
		attrs                                           []byte
		whole                                           string
	}
	get := func(tool string) row {
		t.Helper()
		var r row
		err := conn.QueryRow(ctx, `SELECT request_id::text, client_subject, client_role, tool_name, backend_name,
			request_args, response_status, error_message, latency_ms, trace_id, span_id, service_name, timestamp,
			attributes, row_to_json(a)::text
			FROM audit_log a WHERE tool_name = $1`, tool).Scan(
			&r.requestID, &r.subject, &r.role, &r.tool, &r.backend, &r.args, &r.status, &r.errMsg,
			&r.latency, &r.traceID, &r.spanID, &r.service, &r.ts, &r.attrs, &r.whole)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return r
	}
	for _, tc := range []struct {
		tool, backend, status, errMsg, errType string
		minLatency                             int64
	}{
		{"sdk_tool", "sdk-backend", "error", "quota exceeded", "tool_error", 0},
		{"go_tool", "go-backend", "ok", "", "", 5},
	} {
		r := get(tc.tool)
		if strings.Contains(r.whole, secret) {
			t.Errorf("%s: the secret is in the row: %s", tc.tool, r.whole)
		}
		if r.subject != "carol" || r.role != "ops,admin" || r.backend != tc.backend || r.status != tc.status {
			t.Errorf("%s: subject %q role %q backend %q status %q", tc.tool, r.subject, r.role, r.backend, r.status)
		}
		if (r.errMsg == nil) != (tc.errMsg == "") || r.errMsg != nil && *r.errMsg != tc.errMsg {
			t.Errorf("%s: error_message %v, want %q", tc.tool, r.errMsg, tc.errMsg)
		}
		if r.latency < tc.minLatency || r.latency > 5000 {
			t.Errorf("%s: latency_ms %d", tc.tool, r.latency)
		}
		if time.Since(r.ts) > time.Minute || time.Since(r.ts) < 0 {
			t.Errorf("%s: timestamp %v", tc.tool, r.ts)
		}
		if len(r.requestID) != 36 || r.requestID[14] != '7' {
			t.Errorf("%s: request_id %q is not a UUIDv7", tc.tool, r.requestID)
		}
		if r.traceID == nil || r.spanID == nil || spanByID[*r.spanID] != *r.traceID {
			t.Errorf("%s: trace_id/span_id %v/%v are not those of its execute_tool span", tc.tool, r.traceID, r.spanID)
		}
		if r.service == nil || *r.service != "e2e-gateway" {
			t.Errorf("%s: service_name %v", tc.tool, r.service)
		}
		var gotArgs map[string]any
		if err := json.Unmarshal(r.args, &gotArgs); err != nil {
			t.Fatalf("%s: request_args %s: %v", tc.tool, r.args, err)
		}
		wantArgs := map[string]any{"query": "status", "api_key": instrumentation.RedactedValue,
			"opts": map[string]any{"password": instrumentation.RedactedValue}}
		if a, b := mustJSON(gotArgs), mustJSON(wantArgs); a != b {
			t.Errorf("%s: request_args %s, want %s", tc.tool, a, b)
		}
		var attrs map[string]any
		if err := json.Unmarshal(r.attrs, &attrs); err != nil {
			t.Fatalf("%s: attributes %s: %v", tc.tool, r.attrs, err)
		}
		if attrs["mcp.method.name"] != "tools/call" || attrs["gen_ai.operation.name"] != "execute_tool" ||
			attrs["jsonrpc.request.id"] == nil {
			t.Errorf("%s: attributes %s", tc.tool, r.attrs)
		}
		if et, _ := attrs["error.type"].(string); et != tc.errType {
			t.Errorf("%s: error.type %q, want %q", tc.tool, et, tc.errType)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
