package mcpgo_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpgo"
)

// newServer returns an MCP server with the audit middleware and hook and
// three tools: echo (ok, reports whether it saw the carried id), fail
// (isError) and route (names its backend).
func newServer(a *instrumentation.Auditor, opts ...mcpgo.Option) *server.MCPServer {
	hooks := &server.Hooks{}
	mcpgo.AddHooks(hooks)
	s := server.NewMCPServer("test", "1",
		server.WithHooks(hooks),
		server.WithToolHandlerMiddleware(mcpgo.Middleware(a, opts...)))
	s.AddTool(mcp.NewTool("echo"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		meta, _ := json.Marshal(req.Params.Meta)
		return mcp.NewToolResultText(string(req.Params.RawArguments) + " meta=" + string(meta)), nil
	})
	s.AddTool(mcp.NewTool("fail"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultError("disk full"), nil
	})
	s.AddTool(mcp.NewTool("route"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		instrumentation.SetBackend(ctx, "backend-b")
		return mcp.NewToolResultText("routed"), nil
	})
	s.AddTool(mcp.NewTool("broken"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, errors.New("backend unreachable")
	})
	return s
}

// connect serves s over streamable HTTP, with the caller's identity taken
// from a header into the context, and returns an initialised client.
func connect(t *testing.T, s *server.MCPServer, user string) *client.Client {
	t.Helper()
	h := server.NewStreamableHTTPServer(s, server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
		return instrumentation.ContextWithIdentity(ctx, r.Header.Get("X-User"), "user")
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.NewStreamableHttpClient(srv.URL, transport.WithHTTPHeaders(map[string]string{"X-User": user}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = "2025-06-18" // a version with sessions
	init.Params.ClientInfo = mcp.Implementation{Name: "client", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	return c
}

func call(t *testing.T, c *client.Client, name string, args any) (*mcp.CallToolResult, error) {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(context.Background(), req)
}

func TestMiddleware(t *testing.T) {
	rec := &audittest.Recorder{}
	a := instrumentation.New(instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)))
	c := connect(t, newServer(a, mcpgo.WithBackend(func(tool string) string { return "backend-of-" + tool })), "alice")

	args := map[string]any{"q": "otel", "Authorization": "Bearer sk-live-123", "list": []any{map[string]any{"cookie": "c"}}}
	res, err := call(t, c, "echo", args)
	if err != nil {
		t.Fatal(err)
	}
	txt := res.Content[0].(mcp.TextContent).Text
	if !strings.Contains(txt, "sk-live-123") {
		t.Errorf("tool saw %s", txt)
	}
	if strings.Contains(txt, "otelaudit") {
		t.Errorf("the id carried from the hook reached the tool: %s", txt)
	}
	if _, err := call(t, c, "fail", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, c, "route", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, c, "broken", nil); err == nil {
		t.Fatal("broken tool succeeded")
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
		if sid := at[otelaudit.MCPSessionIDKey].AsString(); sid == "" || sid != c.GetSessionId() {
			t.Errorf("record %d: mcp.session.id = %q, want %q", i, sid, c.GetSessionId())
		}
		id := at[otelaudit.JSONRPCRequestIDKey].AsString()
		if _, err := strconv.Atoi(id); err != nil || ids[id] {
			t.Errorf("record %d: jsonrpc.request.id = %q (not a fresh number)", i, id)
		}
		ids[id] = true
		if at[otelaudit.UserIDKey].AsString() != "alice" {
			t.Errorf("record %d: user.id %q", i, at[otelaudit.UserIDKey].AsString())
		}
	}
	echo := audittest.Attrs(recs[0])
	want := `{"Authorization":"[REDACTED]","list":[{"cookie":"[REDACTED]"}],"q":"otel"}`
	if got, _ := json.Marshal(audittest.JSON(echo[otelaudit.ToolCallArgumentsKey])); string(got) != want {
		t.Errorf("arguments %s, want %s", got, want)
	}
	check := func(at map[attribute.Key]attribute.Value, tool, backend, status, errType, msg string) {
		t.Helper()
		for k, w := range map[attribute.Key]string{
			otelaudit.ToolNameKey: tool, otelaudit.BackendNameKey: backend, otelaudit.ResponseStatusKey: status,
			otelaudit.ErrorTypeKey: errType, otelaudit.ErrorMessageKey: msg,
		} {
			if got := at[k].AsString(); got != w {
				t.Errorf("%s: %s = %q, want %q", tool, k, got, w)
			}
		}
	}
	check(echo, "echo", "backend-of-echo", "ok", "", "")
	check(audittest.Attrs(recs[1]), "fail", "backend-of-fail", "error", otelaudit.ErrorTypeToolError, "disk full")
	check(audittest.Attrs(recs[2]), "route", "backend-b", "ok", "", "")
	check(audittest.Attrs(recs[3]), "broken", "backend-of-broken", "error", otelaudit.ErrorTypeOther, "backend unreachable")
}

type unhealthy struct{}

func (unhealthy) Health(context.Context) error { return errors.New("down") }

func TestFailClosedRefuses(t *testing.T) {
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(&audittest.Recorder{})),
		instrumentation.WithFailClosed(unhealthy{}),
	)
	s := server.NewMCPServer("test", "1", server.WithToolHandlerMiddleware(mcpgo.Middleware(a)))
	called := false
	s.AddTool(mcp.NewTool("echo"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		called = true
		return mcp.NewToolResultText("x"), nil
	})
	c := connect(t, s, "alice")
	_, err := call(t, c, "echo", nil)
	if err == nil || !strings.Contains(err.Error(), "audit unavailable") {
		t.Fatalf("err = %v, want audit unavailable", err)
	}
	if called {
		t.Errorf("the tool ran although the audit was unavailable")
	}
}
