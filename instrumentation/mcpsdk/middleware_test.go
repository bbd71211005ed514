package mcpsdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpsdk"
)

var schema = json.RawMessage(`{"type":"object"}`)

// newServer returns an MCP server with the audit middleware and three tools:
// echo (ok), fail (isError) and route (names its backend).
func newServer(a *instrumentation.Auditor, opts ...mcpsdk.Option) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	s.AddReceivingMiddleware(mcpsdk.Middleware(a, opts...))
	s.AddTool(&mcp.Tool{Name: "echo", InputSchema: schema}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(req.Params.Arguments)}}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "fail", InputSchema: schema}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "disk full"}}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "route", InputSchema: schema}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		instrumentation.SetBackend(ctx, "backend-b")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "routed"}}}, nil
	})
	return s
}

// connect serves s over streamable HTTP behind bearer authentication and
// returns a connected client session using token.
func connect(t *testing.T, s *mcp.Server, token string) *mcp.ClientSession {
	t.Helper()
	verify := func(ctx context.Context, tok string, _ *http.Request) (*auth.TokenInfo, error) {
		switch tok {
		case "alice-token":
			return &auth.TokenInfo{UserID: "alice", Extra: map[string]any{"role": "admin"}, Expiration: time.Now().Add(time.Hour)}, nil
		case "bob-token":
			return &auth.TokenInfo{UserID: "bob", Scopes: []string{"read", "write"}, Expiration: time.Now().Add(time.Hour)}, nil
		}
		return nil, auth.ErrInvalidToken
	}
	h := auth.RequireBearerToken(verify, nil)(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	c := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: srv.URL, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func TestMiddleware(t *testing.T) {
	rec := &audittest.Recorder{}
	spans := tracetest.NewSpanRecorder()
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)),
		instrumentation.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))),
	)
	s := newServer(a, mcpsdk.WithBackend(func(tool string) string { return "backend-of-" + tool }))
	cs := connect(t, s, "alice-token")
	ctx := context.Background()

	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Records()); n != 0 {
		t.Fatalf("tools/list produced %d records", n)
	}

	args := map[string]any{"q": "otel", "api_key": "sk-live-123", "nested": map[string]any{"password": "hunter2"}}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("echo: %v %v", res, err)
	}
	// The tool itself got the real arguments.
	if txt := res.Content[0].(*mcp.TextContent).Text; !strings.Contains(txt, "sk-live-123") {
		t.Errorf("tool saw %s", txt)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fail", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "route"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "missing"}); err == nil {
		t.Fatal("call of a missing tool succeeded")
	}

	recs := rec.Records()
	if len(recs) != 4 {
		t.Fatalf("got %d records, want 4", len(recs))
	}
	ids := map[string]bool{}
	for i, r := range recs {
		at := audittest.Attrs(r)
		if at[otelaudit.MCPMethodNameKey].AsString() != otelaudit.MethodToolsCall {
			t.Errorf("record %d: mcp.method.name = %q", i, at[otelaudit.MCPMethodNameKey].AsString())
		}
		if sid := at[otelaudit.MCPSessionIDKey].AsString(); sid == "" || sid != cs.ID() {
			t.Errorf("record %d: mcp.session.id = %q, want %q", i, sid, cs.ID())
		}
		id := at[otelaudit.JSONRPCRequestIDKey].AsString()
		if _, err := strconv.Atoi(id); err != nil || ids[id] {
			t.Errorf("record %d: jsonrpc.request.id = %q (not a fresh number)", i, id)
		}
		ids[id] = true
		if at[otelaudit.UserIDKey].AsString() != "alice" || strings.Join(at[otelaudit.UserRolesKey].AsStringSlice(), ",") != "admin" {
			t.Errorf("record %d: identity %q %v", i, at[otelaudit.UserIDKey].AsString(), at[otelaudit.UserRolesKey].AsStringSlice())
		}
		if at[otelaudit.GenAIOperationNameKey].AsString() != otelaudit.OperationExecuteTool {
			t.Errorf("record %d: operation %q", i, at[otelaudit.GenAIOperationNameKey].AsString())
		}
		if !r.TraceID().IsValid() {
			t.Errorf("record %d: no trace id", i)
		}
	}

	echo := audittest.Attrs(recs[0])
	want := map[string]any{"q": "otel", "api_key": instrumentation.RedactedValue, "nested": map[string]any{"password": instrumentation.RedactedValue}}
	if got := audittest.JSON(echo[otelaudit.ToolCallArgumentsKey]); !equalJSON(got, want) {
		t.Errorf("echo arguments %v, want %v", got, want)
	}
	check := func(at map[attribute.Key]attribute.Value, tool, backend, status, errType, msg string) {
		t.Helper()
		for k, w := range map[attribute.Key]string{
			otelaudit.ToolNameKey: tool, otelaudit.BackendNameKey: backend, otelaudit.ResponseStatusKey: status,
			otelaudit.ErrorTypeKey: errType,
		} {
			if got := at[k].AsString(); got != w {
				t.Errorf("%s: %s = %q, want %q", tool, k, got, w)
			}
		}
		if got := at[otelaudit.ErrorMessageKey].AsString(); (msg == "") != (got == "") || !strings.Contains(got, msg) {
			t.Errorf("%s: error.message = %q, want it to contain %q", tool, got, msg)
		}
	}
	check(echo, "echo", "backend-of-echo", "ok", "", "")
	check(audittest.Attrs(recs[1]), "fail", "backend-of-fail", "error", otelaudit.ErrorTypeToolError, "disk full")
	check(audittest.Attrs(recs[2]), "route", "backend-b", "ok", "", "")
	check(audittest.Attrs(recs[3]), "missing", "backend-of-missing", "error", "-32602", "missing")
	if len(spans.Ended()) != 4 {
		t.Errorf("got %d spans, want 4", len(spans.Ended()))
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestRoleFromScopesAndOption(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []mcpsdk.Option
		role string
	}{
		{"scopes", nil, "read,write"},
		{"option", []mcpsdk.Option{mcpsdk.WithRoleFromTokenInfo(func(ti *auth.TokenInfo) string { return "custom-" + ti.UserID })}, "custom-bob"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &audittest.Recorder{}
			a := instrumentation.New(instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)))
			cs := connect(t, newServer(a, tt.opts...), "bob-token")
			if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo"}); err != nil {
				t.Fatal(err)
			}
			recs := rec.Records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			at := audittest.Attrs(recs[0])
			if at[otelaudit.UserIDKey].AsString() != "bob" || strings.Join(at[otelaudit.UserRolesKey].AsStringSlice(), ",") != tt.role {
				t.Errorf("identity %q %v, want bob %q", at[otelaudit.UserIDKey].AsString(), at[otelaudit.UserRolesKey].AsStringSlice(), tt.role)
			}
			if v, ok := at[otelaudit.ToolCallArgumentsKey]; ok && len(v.AsMap()) != 0 {
				t.Errorf("arguments %v recorded for a call without any", v.String())
			}
		})
	}
}

func TestIdentityHookWithoutToken(t *testing.T) {
	rec := &audittest.Recorder{}
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)),
		instrumentation.WithIdentity(func(context.Context) (string, string) { return "svc", "robot" }),
	)
	st, ct := mcp.NewInMemoryTransports()
	s := newServer(a, mcpsdk.WithBackendName("one"))
	if _, err := s.Connect(context.Background(), st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	at := audittest.Attrs(rec.Records()[0])
	if at[otelaudit.UserIDKey].AsString() != "svc" || at[otelaudit.BackendNameKey].AsString() != "one" {
		t.Errorf("user %q backend %q", at[otelaudit.UserIDKey].AsString(), at[otelaudit.BackendNameKey].AsString())
	}
	if at[otelaudit.JSONRPCRequestIDKey].AsString() == "" {
		t.Errorf("no jsonrpc.request.id over the in-memory transport")
	}
}

type unhealthy struct{}

func (unhealthy) Health(context.Context) error { return errors.New("down") }

func TestFailClosedRefuses(t *testing.T) {
	rec := &audittest.Recorder{}
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)),
		instrumentation.WithFailClosed(unhealthy{}),
	)
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	s.AddReceivingMiddleware(mcpsdk.Middleware(a))
	called := false
	s.AddTool(&mcp.Tool{Name: "echo", InputSchema: schema}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		called = true
		return &mcp.CallToolResult{}, nil
	})
	cs := connect(t, s, "alice-token")
	_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo"})
	if err == nil || !strings.Contains(err.Error(), "audit unavailable") {
		t.Fatalf("err = %v, want audit unavailable", err)
	}
	if called {
		t.Errorf("the tool ran although the audit was unavailable")
	}
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Errorf("tools/list refused: %v", err)
	}
}

// A gateway's own policy middleware, behind the audit middleware, refuses a
// call with an error wrapping instrumentation.ErrDenied: the row is denied.
func TestDeniedByInnerMiddleware(t *testing.T) {
	rec := &audittest.Recorder{}
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)),
		instrumentation.WithIdentity(func(context.Context) (string, string) { return "eve", "guest" }),
	)
	// Middleware added later wraps the earlier: the policy goes in first so
	// that the audit middleware sees its refusal.
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if call, ok := req.(*mcp.CallToolRequest); ok && call.Params.Name == "secret_tool" {
				return nil, fmt.Errorf("role guest may not call secret_tool: %w", instrumentation.ErrDenied)
			}
			return next(ctx, method, req)
		}
	})
	s.AddReceivingMiddleware(mcpsdk.Middleware(a, mcpsdk.WithBackendName("one")))
	var backendCalled bool
	s.AddTool(&mcp.Tool{Name: "secret_tool", InputSchema: schema}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		backendCalled = true
		return &mcp.CallToolResult{}, nil
	})
	st, ct := mcp.NewInMemoryTransports()
	if _, err := s.Connect(context.Background(), st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "secret_tool"}); err == nil {
		t.Fatal("the denied call succeeded")
	}
	if backendCalled {
		t.Fatal("the denied call reached the tool")
	}
	recs := rec.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	at := audittest.Attrs(recs[0])
	if st := at[otelaudit.ResponseStatusKey].AsString(); st != string(otelaudit.StatusDenied) {
		t.Errorf("status = %q, want denied", st)
	}
	if msg := at[otelaudit.ErrorMessageKey].AsString(); !strings.Contains(msg, "may not call secret_tool") {
		t.Errorf("error.message = %q", msg)
	}
	if at[otelaudit.JSONRPCRequestIDKey].AsString() == "" {
		t.Error("no jsonrpc.request.id")
	}
}
