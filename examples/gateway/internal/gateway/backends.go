package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// connectTimeout bounds connecting to a downstream server and listing its
// tools at start-up.
const connectTimeout = 30 * time.Second

// registeredTool is one tool as the gateway serves it.
type registeredTool struct {
	tool    *mcp.Tool
	handler mcp.ToolHandler
}

// backend is a started backend: its tools and how to stop it.
type backend struct {
	name  string
	tools []registeredTool
	// session is the client session of a proxied backend, nil for builtin.
	session *mcp.ClientSession
	logger  *slog.Logger
}

// close ends the session with a proxied backend (and stops its process).
func (b *backend) close() error {
	if b.session == nil {
		return nil
	}
	err := b.session.Close()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		// A stdio backend still busy (a call that timed out keeps running
		// in it) is terminated after its grace period: expected when
		// stopping, not a failure of the gateway's shutdown.
		if b.logger != nil {
			b.logger.Warn("stdio backend did not exit on its own; terminated", "backend", b.name, "exit", exit.String())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("backend %s: close: %w", b.name, err)
	}
	return nil
}

// startBackend starts the backend bc and lists its tools, named as the
// gateway serves them (with bc.ToolPrefix).
func startBackend(ctx context.Context, bc BackendConfig, logger *slog.Logger) (*backend, error) {
	b := &backend{name: bc.Name, logger: logger}
	relay := newProgressRelay()
	if bc.Type == BackendBuiltin {
		b.tools = builtinTools(bc.Name)
	} else {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		session, err := connectDownstream(cctx, bc, relay, logger)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", bc.Name, err)
		}
		b.session = session
		for t, err := range session.Tools(cctx, nil) {
			if err != nil {
				_ = session.Close()
				return nil, fmt.Errorf("backend %s: list tools: %w", bc.Name, err)
			}
			b.tools = append(b.tools, proxyTool(bc.Name, session, relay, t))
		}
	}
	if bc.ToolPrefix != "" {
		for i, rt := range b.tools {
			t := *rt.tool
			t.Name = bc.ToolPrefix + t.Name
			b.tools[i].tool = &t
		}
	}
	return b, nil
}

// connectDownstream opens an MCP client session with a stdio or http
// backend.
func connectDownstream(ctx context.Context, bc BackendConfig, relay *progressRelay, logger *slog.Logger) (*mcp.ClientSession, error) {
	var transport mcp.Transport
	switch bc.Type {
	case BackendStdio:
		cmd := exec.Command(bc.Command, bc.Args...)
		cmd.Dir = bc.Dir
		// Never the gateway's own environment: it may hold the database
		// URL, OTLP credentials or client tokens.
		cmd.Env = ChildEnvironment(bc.Env)
		// The server's own diagnostics go to the gateway's stderr.
		cmd.Stderr = os.Stderr
		transport = &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}
	case BackendHTTP:
		hc, err := backendHTTPClient(bc)
		if err != nil {
			return nil, err
		}
		transport = &mcp.StreamableClientTransport{Endpoint: bc.URL, HTTPClient: hc}
	default:
		return nil, fmt.Errorf("cannot proxy a backend of type %q", bc.Type)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "otelaudit-gateway", Version: Version}, &mcp.ClientOptions{
		ProgressNotificationHandler: relay.relay,
	})
	session, err := client.Connect(ctx, transport, nil)
	if err != nil {
		return nil, fmt.Errorf("connect over %s: %w", bc.Type, err)
	}
	logger.Info("connected to downstream MCP server", "backend", bc.Name, "type", bc.Type)
	return session, nil
}

// ChildEnvironment is the environment of a stdio backend: PATH, HOME and
// LANG from the gateway's environment (when set), then the backend's own
// env, which may override them. Nothing else of the gateway's environment
// reaches the child.
func ChildEnvironment(env map[string]string) []string {
	out := make([]string, 0, len(childEnvAllowed)+len(env))
	for _, k := range childEnvAllowed {
		if _, own := env[k]; own {
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// childEnvAllowed are the gateway's variables a stdio backend inherits.
var childEnvAllowed = []string{"PATH", "HOME", "LANG"}

// backendHTTPClient returns the HTTP client of an http backend: its headers
// are set only on requests to the backend's own origin, and a redirect to
// another origin is refused (net/http would follow it, and the header
// transport would send the headers there).
func backendHTTPClient(bc BackendConfig) (*http.Client, error) {
	u, err := url.Parse(bc.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	origin := originOf(u)
	return &http.Client{
		Transport: headerTransport{origin: origin, headers: bc.Headers, next: http.DefaultTransport},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if o := originOf(req.URL); o != origin {
				return fmt.Errorf("redirect from %s to another origin (%s) refused: its headers are only for %s", origin, o, origin)
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}, nil
}

// originOf returns scheme://host:port of u, with the default port made
// explicit.
func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// progressRelay relays a backend's notifications/progress to the caller
// whose call they belong to. Each proxied call with a progress token gets a
// token of the gateway's own for the backend (callers' tokens may collide),
// mapped back to the caller's token when a notification arrives.
//
// The go-sdk client hands a call's response to the caller at once but queues
// incoming notifications for a handler goroutine, so a backend's last
// notifications can still be queued when its result arrives: [relayCall.drain]
// waits for them (briefly) before the proxied call returns, since the
// caller's response stream ends with it.
type progressRelay struct {
	mu    sync.Mutex
	next  uint64
	calls map[string]*relayCall
}

// relayCall is one proxied call's progress.
type relayCall struct {
	send func(*mcp.ProgressNotificationParams)
	seen chan struct{} // a notification was relayed

	mu              sync.Mutex
	progress, total float64
}

func newProgressRelay() *progressRelay {
	return &progressRelay{calls: map[string]*relayCall{}}
}

// register returns a fresh token whose notifications go to send, and a
// func that forgets it.
func (p *progressRelay) register(send func(*mcp.ProgressNotificationParams)) (token string, rc *relayCall, release func()) {
	rc = &relayCall{send: send, seen: make(chan struct{}, 1)}
	p.mu.Lock()
	p.next++
	token = "otelaudit-gateway-" + strconv.FormatUint(p.next, 10)
	p.calls[token] = rc
	p.mu.Unlock()
	return token, rc, func() {
		p.mu.Lock()
		delete(p.calls, token)
		p.mu.Unlock()
	}
}

// relay is the backend client's ProgressNotificationHandler.
func (p *progressRelay) relay(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
	if req == nil || req.Params == nil {
		return
	}
	tok, _ := req.Params.ProgressToken.(string)
	p.mu.Lock()
	rc := p.calls[tok]
	p.mu.Unlock()
	if rc == nil {
		return
	}
	rc.send(req.Params)
	rc.mu.Lock()
	rc.progress, rc.total = req.Params.Progress, req.Params.Total
	rc.mu.Unlock()
	select {
	case rc.seen <- struct{}{}:
	default:
	}
}

// Bounds of the wait for a call's last progress notifications.
const (
	progressQuiet   = 250 * time.Millisecond
	progressMaxWait = 2 * time.Second
)

// drain waits until the call's progress reached its total, or no
// notification came for progressQuiet, at most progressMaxWait.
func (rc *relayCall) drain() {
	limit := time.NewTimer(progressMaxWait)
	defer limit.Stop()
	for {
		rc.mu.Lock()
		complete := rc.total > 0 && rc.progress >= rc.total
		rc.mu.Unlock()
		if complete {
			return
		}
		quiet := time.NewTimer(progressQuiet)
		select {
		case <-rc.seen:
			quiet.Stop()
		case <-quiet.C:
			return
		case <-limit.C:
			quiet.Stop()
			return
		}
	}
}

// forwardMeta returns the _meta sent to the backend: the caller's, with the
// trace context of the gateway's execute_tool span as params._meta
// traceparent/tracestate (the MCP semantic conventions' propagation), so the
// backend's spans join the trace of the audit row. Keys in the namespaces
// MCP reserves for the protocol (io.modelcontextprotocol/...,
// modelcontextprotocol.io/...) describe the caller's connection to the
// gateway, not the gateway's to the backend, and are not forwarded.
func forwardMeta(ctx context.Context, in mcp.Meta) mcp.Meta {
	out := make(mcp.Meta, len(in)+2)
	for k, v := range in {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") || strings.HasPrefix(k, "modelcontextprotocol.io/") {
			continue
		}
		out[k] = v
	}
	delete(out, "traceparent")
	delete(out, "tracestate")
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	for k, v := range carrier {
		out[k] = v
	}
	return out
}

// proxyTool returns the gateway's version of a downstream tool: same
// description and schemas, a handler that forwards the call.
//
// The caller's _meta is forwarded (with the gateway's trace context), its
// progress notifications are relayed back, and a call the caller cancels is
// cancelled at the backend too: the go-sdk client sends
// notifications/cancelled when the call's context ends.
func proxyTool(backendName string, session *mcp.ClientSession, relay *progressRelay, t *mcp.Tool) registeredTool {
	own := *t
	if own.InputSchema == nil {
		own.InputSchema = json.RawMessage(`{"type": "object"}`)
	}
	remote := t.Name
	return registeredTool{
		tool: &own,
		handler: func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			instrumentation.SetBackend(ctx, backendName)
			p := &mcp.CallToolParams{Name: remote, Meta: forwardMeta(ctx, req.Params.Meta)}
			if len(req.Params.Arguments) > 0 {
				p.Arguments = req.Params.Arguments
			}
			if tok := req.Params.GetProgressToken(); tok != nil && req.Session != nil {
				caller := req.Session
				own, rc, release := relay.register(func(n *mcp.ProgressNotificationParams) {
					_ = caller.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
						ProgressToken: tok, Progress: n.Progress, Total: n.Total, Message: n.Message,
					})
				})
				defer release()
				defer rc.drain() // before release: the last notifications may still be queued
				p.Meta["progressToken"] = own
			}
			res, err := session.CallTool(ctx, p)
			if err != nil {
				if ctx.Err() != nil {
					// The call's own end (deadline, the caller's
					// cancellation, shutdown), once: the client error
					// is the same context error.
					return nil, fmt.Errorf("backend %s: %w", backendName, context.Cause(ctx))
				}
				return nil, fmt.Errorf("backend %s: %w", backendName, err)
			}
			return res, nil
		},
	}
}

// headerTransport adds fixed headers to every request to origin.
type headerTransport struct {
	origin  string
	headers map[string]string
	next    http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(h.headers) == 0 || originOf(r.URL) != h.origin {
		return h.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}
