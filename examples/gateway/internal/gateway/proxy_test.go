package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// envServerVar makes the test binary an MCP stdio server whose one tool,
// env, returns its environment (see TestMain).
const envServerVar = "GATEWAY_TEST_ENV_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(envServerVar) == "1" {
		s := mcp.NewServer(&mcp.Implementation{Name: "env", Version: "1"}, nil)
		s.AddTool(&mcp.Tool{Name: "env", InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return text(strings.Join(os.Environ(), "\n")), nil
			})
		_ = s.Run(context.Background(), &mcp.StdioTransport{})
		return
	}
	os.Exit(m.Run())
}

// upstream is a downstream MCP server over streamable HTTP with tools that
// show what the proxy forwards: progress (three notifications, then the
// traceparent it was given), block (waits until cancelled).
type upstream struct {
	url       string
	started   chan struct{}
	cancelled chan struct{}
}

func startUpstream(t *testing.T) *upstream {
	u := &upstream{started: make(chan struct{}, 10), cancelled: make(chan struct{}, 10)}
	s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	obj := map[string]any{"type": "object"}
	s.AddTool(&mcp.Tool{Name: "progress", InputSchema: obj}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		tok := req.Params.GetProgressToken()
		for i := range 3 {
			if tok != nil {
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i + 1), Total: 3, Message: fmt.Sprint("step ", i+1)})
			}
		}
		tp, _ := req.Params.Meta["traceparent"].(string)
		return text(tp), nil
	})
	s.AddTool(&mcp.Tool{Name: "block", InputSchema: obj}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		u.started <- struct{}{}
		<-ctx.Done()
		u.cancelled <- struct{}{}
		return nil, ctx.Err()
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// TestProxyIsFaithful: _meta (progress token, traceparent) reaches the
// backend, its progress notifications reach the caller, the caller's
// cancellation reaches the backend and is audited as cancelled, a timeout
// reaches the caller as -32001 and is audited as timeout with its message
// once, and builtin tools refuse calls without their required arguments.
func TestProxyIsFaithful(t *testing.T) {
	up := startUpstream(t)
	cfg := demoConfig()
	cfg.CallTimeout = time.Second
	cfg.Backends = append(cfg.Backends, BackendConfig{Name: "up", Type: BackendHTTP, URL: up.url, ToolPrefix: "up_"})
	tg := startGateway(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var mu sync.Mutex
	var notes []string
	s := tg.connect(ctx, testToken, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			notes = append(notes, fmt.Sprintf("%v %v/%v %s", r.Params.ProgressToken, r.Params.Progress, r.Params.Total, r.Params.Message))
			mu.Unlock()
		},
	})

	// Progress and trace context.
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "up_progress", Meta: mcp.Meta{"progressToken": "tok-1"}})
	if err != nil || res.IsError {
		t.Fatalf("up_progress: %v %+v", err, res)
	}
	traceparent := res.Content[0].(*mcp.TextContent).Text
	waitFor(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(notes) >= 3 })
	mu.Lock()
	if got := strings.Join(notes, "; "); got != "tok-1 1/3 step 1; tok-1 2/3 step 2; tok-1 3/3 step 3" {
		t.Errorf("progress notifications through the proxy: %q", got)
	}
	mu.Unlock()

	// The caller cancels: the backend's handler sees it.
	cctx, ccancel := context.WithCancel(ctx)
	callErr := make(chan error, 1)
	go func() {
		_, err := s.CallTool(cctx, &mcp.CallToolParams{Name: "up_block"})
		callErr <- err
	}()
	<-up.started
	ccancel()
	select {
	case <-up.cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the backend never saw the caller's cancellation")
	}
	<-callErr

	// Timeouts: proxied and builtin.
	for _, name := range []string{"up_block", "sleep"} {
		_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{"ms": 5000}})
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != CodeRequestTimeout {
			t.Errorf("%s past call_timeout: %v, want JSON-RPC code %d", name, err, CodeRequestTimeout)
		}
	}
	// Required arguments of the builtin tools.
	for _, c := range []struct {
		name string
		args map[string]any
	}{{"echo", nil}, {"add", map[string]any{"a": 1}}, {"sleep", map[string]any{"ms": "soon"}}, {"sleep", map[string]any{"ms": -1}}} {
		_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: c.name, Arguments: c.args})
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("%s %v: %v, want JSON-RPC code %d", c.name, c.args, err, jsonrpc.CodeInvalidParams)
		}
	}
	tg.finish()

	var got []string
	for _, r := range tg.rows() {
		got = append(got, fmt.Sprintf("%s@%s %s %s", r.Tool, r.Backend, r.Status, r.ErrorType))
		if strings.Contains(r.ErrorMessage, "\n") {
			t.Errorf("%s: error message with a line break: %q", r.Tool, r.ErrorMessage)
		}
		if r.Tool == "up_progress" && !strings.Contains(traceparent, r.TraceID) {
			t.Errorf("the backend got traceparent %q, the row has trace id %s", traceparent, r.TraceID)
		}
	}
	want := []string{
		"up_progress@up ok ",
		"up_block@up cancelled cancelled",
		"up_block@up timeout timeout",
		"sleep@demo timeout timeout",
		"echo@demo error -32602",
		"add@demo error -32602",
		"sleep@demo error -32602",
		"sleep@demo error -32602",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStdioBackendEnvironment: a stdio backend sees PATH, HOME, LANG and
// its own env, none of the gateway's secrets (a token_env variable, the
// database URL).
func TestStdioBackendEnvironment(t *testing.T) {
	const carol = "carol-secret-token-0003"
	t.Setenv("NC_CAROL_TOKEN", carol)
	t.Setenv(EnvDatabaseURL, "postgres://u:dbpassword-xyz@127.0.0.1/x")
	cfg, err := Parse([]byte(`
clients:
  - {subject: alice, role: admin, token: ` + testToken + `}
  - {subject: carol, role: admin, token_env: NC_CAROL_TOKEN}
roles: {admin: ["*"]}
backends:
  - {name: demo, type: builtin}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, set := os.LookupEnv("NC_CAROL_TOKEN"); set {
		t.Error("NC_CAROL_TOKEN is still set after the config was loaded")
	}
	cfg.Backends = append(cfg.Backends, BackendConfig{Name: "kid", Type: BackendStdio, ToolPrefix: "kid_",
		Command: os.Args[0], Args: []string{"-test.run=^$"}, Env: map[string]string{envServerVar: "1"}})
	tg := startGateway(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := tg.connect(ctx, testToken, nil).CallTool(ctx, &mcp.CallToolParams{Name: "kid_env"})
	if err != nil || res.IsError {
		t.Fatalf("kid_env: %v", err)
	}
	env := res.Content[0].(*mcp.TextContent).Text
	for _, bad := range []string{carol, "dbpassword-xyz", EnvDatabaseURL, "NC_CAROL_TOKEN"} {
		if strings.Contains(env, bad) {
			t.Errorf("the backend's environment holds %q:\n%s", bad, env)
		}
	}
	if !strings.Contains(env, envServerVar+"=1") || !strings.Contains(env, "PATH=") {
		t.Errorf("the backend's own env or PATH is missing:\n%s", env)
	}
	if n := len(strings.Split(env, "\n")); n > 4 {
		t.Errorf("the backend got %d variables, want PATH, HOME, LANG and its own:\n%s", n, env)
	}
	if s := fmt.Sprintf("%+v", cfg); strings.Contains(s, carol) || strings.Contains(s, testToken) {
		t.Errorf("the running gateway's config holds a token in the clear")
	}
}

// TestHTTPBackendHeadersStayWithTheOrigin: a backend that redirects to
// another host is refused, and that host never sees its Authorization.
func TestHTTPBackendHeadersStayWithTheOrigin(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer other.Close()
	// 127.0.0.1 vs localhost: another origin, as another host would be.
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+"/mcp", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := startBackend(ctx, BackendConfig{Name: "r", Type: BackendHTTP, URL: redirector.URL + "/mcp",
		Headers: map[string]string{"Authorization": "Bearer downstream-secret-token"}}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("connect through a cross-origin redirect: %v, want refused", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h != "" {
			t.Errorf("the other origin received Authorization %q", h)
		}
	}
	if len(seen) != 0 {
		t.Errorf("the other origin received %d requests", len(seen))
	}
}

// TestForwardMeta: the caller's own _meta keys are forwarded, the
// protocol's reserved ones are not, and traceparent is the gateway's span.
func TestForwardMeta(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("t").Start(context.Background(), "execute_tool echo")
	defer span.End()
	out := forwardMeta(ctx, mcp.Meta{
		"com.example/tenant":                      "t1",
		"traceparent":                             "00-11111111111111111111111111111111-2222222222222222-01",
		mcp.MetaKeyProtocolVersion:                "2026-07-28",
		"io.modelcontextprotocol/clientInfo":      map[string]any{"name": "caller"},
		"modelcontextprotocol.io/something-later": true,
	})
	want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
	if out["traceparent"] != want || out["com.example/tenant"] != "t1" || len(out) != 2 {
		t.Errorf("forwarded _meta %v, want the tenant and traceparent %s only", out, want)
	}
}
