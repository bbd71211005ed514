// Package gateway is the example otelaudit MCP gateway: MCP over streamable
// HTTP at /mcp with bearer-token authentication, per-role tool allow-lists,
// a builtin demo backend and proxied downstream MCP servers, and one audit
// row per tool call.
//
// The command in examples/gateway runs it from a YAML file; the demo, the
// load generator and the tests start it in-process with [New] and
// [Gateway.Serve].
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/metric"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpsdk"
)

// Version is the gateway's version, reported to MCP clients and as
// service.version.
const Version = "0.1.0"

// streamGrace is how long shutdown waits between the last answered call and
// ending the clients' event streams.
const streamGrace = 250 * time.Millisecond

// errShuttingDown cancels calls still running when the shutdown deadline
// passes.
var errShuttingDown = errors.New("gateway shutting down: shutdown deadline passed")

// Gateway is a configured MCP gateway. Create it with [New], run it with
// [Gateway.Serve] and release it with [Gateway.Close].
type Gateway struct {
	cfg       *Config
	logger    *slog.Logger
	telemetry *Telemetry
	auditor   *instrumentation.Auditor
	server    *mcp.Server
	backends  []*backend
	routes    map[string]string // tool name as served -> backend name
	handler   http.Handler
	authn     *authenticator
	conns     atomic.Pointer[connLimiter]
	// metricsReg publishes AnonymousStats as metrics.
	metricsReg metric.Registration

	// inflight counts requests other than GET (which holds a long-lived
	// event stream open): POSTs carrying tool calls, DELETEs ending sessions.
	inflight   sync.WaitGroup
	calls      atomic.Int64 // tool calls in progress
	shutting   atomic.Bool
	hardStop   context.Context // cancelled when the shutdown deadline passes
	cancelHard context.CancelCauseFunc
	baseCtx    context.Context // parent of every request context
	cancelBase context.CancelFunc
	closeOnce  sync.Once
	closeErr   error
}

// New builds the gateway for cfg: it sets up telemetry (connecting to
// PostgreSQL and applying the migrations unless audit goes over OTLP or is
// off), starts the backends and lists their tools. cfg must have been
// checked by [Load], [Parse] or [Config.Finish].
func New(ctx context.Context, cfg *Config, logger *slog.Logger) (*Gateway, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: cfg, logger: logger, routes: map[string]string{}}
	g.hardStop, g.cancelHard = context.WithCancelCause(context.Background())
	g.baseCtx, g.cancelBase = context.WithCancel(context.Background())

	tel, err := NewTelemetry(ctx, cfg)
	if err != nil {
		return nil, err
	}
	g.telemetry = tel
	tracer := tel.TracerProvider.Tracer("github.com/sentinel-gateway/otelaudit/examples/gateway")
	if cfg.Audit.IsEnabled() {
		opts := []instrumentation.Option{
			instrumentation.WithLoggerProvider(tel.LoggerProvider),
			instrumentation.WithTracerProvider(tel.TracerProvider),
			instrumentation.WithRedactKeys(cfg.Audit.RedactKeys...),
		}
		if cfg.Audit.FailClosed {
			opts = append(opts, instrumentation.WithFailClosed(tel.Health))
		}
		g.auditor = instrumentation.New(opts...)
	}

	g.server = mcp.NewServer(&mcp.Implementation{Name: "otelaudit-gateway", Version: Version}, &mcp.ServerOptions{Logger: quiet(logger)})
	if err := g.startBackends(ctx); err != nil {
		g.Close(ctx)
		return nil, err
	}

	authz := &authorizer{roles: cfg.Roles}
	// The first middleware runs first: track the call and bound it, audit
	// it, then refuse what the role does not allow. A refusal wraps
	// instrumentation.ErrDenied, so the audit middleware records it as
	// denied, like every other call, with its JSON-RPC id and span.
	g.server.AddReceivingMiddleware(g.bound, mcpsdk.Middleware(g.auditor, mcpsdk.WithBackend(g.route)), authz.middleware)

	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return g.server }, &mcp.StreamableHTTPOptions{Logger: quiet(logger)})
	g.authn = newAuthenticator(cfg, g.auditor, tracer, g.route)
	mux := http.NewServeMux()
	mux.Handle("/mcp", g.track(g.authn.middleware(streamable)))
	mux.HandleFunc("GET /healthz", g.healthz)
	g.handler = mux
	if err := g.registerMetrics(); err != nil {
		logger.Warn("gateway metrics not published", "err", err)
	}

	logger.Info("gateway ready", "audit", tel.Mode, "spool_dir", cfg.Audit.SpoolDir, "fail_closed", cfg.Audit.FailClosed,
		"tools", len(g.routes), "backends", len(g.backends))
	return g, nil
}

// startBackends starts every configured backend and registers its tools.
func (g *Gateway) startBackends(ctx context.Context) error {
	for _, bc := range g.cfg.Backends {
		b, err := startBackend(ctx, bc, g.logger)
		if err != nil {
			return err
		}
		g.backends = append(g.backends, b)
		for _, rt := range b.tools {
			if other, dup := g.routes[rt.tool.Name]; dup {
				return fmt.Errorf("backends: tool %q is served by both %s and %s; set tool_prefix on one of them", rt.tool.Name, other, b.name)
			}
			g.routes[rt.tool.Name] = b.name
			g.server.AddTool(rt.tool, rt.handler)
		}
		g.logger.Info("backend started", "backend", b.name, "type", bc.Type, "tools", len(b.tools))
	}
	return nil
}

// GatewayBackend is the backend_name of calls the gateway answers itself
// because no backend serves the tool (unknown tools, unauthenticated
// requests that are not tool calls).
const GatewayBackend = "gateway"

// route returns the backend serving tool, or [GatewayBackend] for a tool no
// backend serves.
func (g *Gateway) route(tool string) string {
	if b, ok := g.routes[tool]; ok {
		return b
	}
	return GatewayBackend
}

// Tools returns the names of every tool the gateway serves, with their
// backends.
func (g *Gateway) Tools() map[string]string {
	out := make(map[string]string, len(g.routes))
	for k, v := range g.routes {
		out[k] = v
	}
	return out
}

// Handler returns the gateway's HTTP handler: /mcp and /healthz.
func (g *Gateway) Handler() http.Handler { return g.handler }

// CodeRequestTimeout is the JSON-RPC error code a caller gets for a tool
// call that ran past call_timeout: the code the MCP SDKs use for a request
// timeout (the TypeScript SDK's ErrorCode.RequestTimeout).
const CodeRequestTimeout = -32001

// bound is the outermost MCP middleware: it bounds each tool call by the
// call timeout and cancels it when the shutdown deadline passes. A call
// that runs past its deadline reaches the caller as JSON-RPC error
// [CodeRequestTimeout]; the audit middleware inside sees the call's own
// error and records it as a timeout.
func (g *Gateway) bound(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "tools/call" {
			return next(ctx, method, req)
		}
		g.calls.Add(1)
		defer g.calls.Add(-1)
		ctx, cancelCause := context.WithCancelCause(ctx)
		defer cancelCause(nil)
		ctx, cancel := context.WithTimeout(ctx, g.cfg.CallTimeout)
		defer cancel()
		stop := context.AfterFunc(g.hardStop, func() { cancelCause(errShuttingDown) })
		defer stop()
		res, err := next(ctx, method, req)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &jsonrpc.Error{Code: CodeRequestTimeout,
				Message: fmt.Sprintf("request timed out: the tool call ran longer than the gateway's call_timeout (%s)", g.cfg.CallTimeout)}
		}
		return res, err
	}
}

// track counts requests in flight so that shutdown can wait for them.
func (g *Gateway) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		g.inflight.Add(1)
		defer g.inflight.Done()
		next.ServeHTTP(w, r)
	})
}

// healthz reports 200 while the gateway serves and 503 once it is shutting
// down.
func (g *Gateway) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	status, code := "ok", http.StatusOK
	if g.shutting.Load() {
		status, code = "shutting down", http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "audit": g.telemetry.Mode, "tools": len(g.routes),
		"calls_in_progress": g.calls.Load(), "anonymous": g.AnonymousStats()})
}

// AnonymousStats returns the running totals of requests refused for want of
// a valid token, and of connections refused by the per-client cap.
func (g *Gateway) AnonymousStats() AnonymousStats {
	var s AnonymousStats
	if g.authn != nil {
		s = g.authn.anon.stats()
	}
	if cl := g.conns.Load(); cl != nil {
		s.ConnsRefused = cl.refused.Load()
	}
	return s
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting connections, lets in-flight calls finish for up to the shutdown
// timeout, cancels those still running after it (they are audited too), and
// ends the remaining event streams. Call [Gateway.Close] afterwards to flush
// the audit records. Serve returns nil after a graceful shutdown.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	sc := g.cfg.Server
	if sc.MaxConnsPerClient > 0 {
		cl := newConnLimiter(ln, sc.MaxConnsPerClient)
		g.conns.Store(cl)
		ln = cl
	}
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		ReadTimeout:       sc.ReadTimeout,
		IdleTimeout:       sc.IdleTimeout,
		MaxHeaderBytes:    sc.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return g.baseCtx },
		ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	g.logger.Info("gateway listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	g.shutting.Store(true)
	g.logger.Info("shutting down: waiting for in-flight calls", "timeout", g.cfg.ShutdownTimeout)
	deadline, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	// Shutdown closes the listener at once and waits for active connections.
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.WithoutCancel(deadline)) }()

	drained := make(chan struct{})
	go func() { g.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-deadline.Done():
		g.logger.Warn("shutdown deadline passed: cancelling calls still running")
		g.cancelHard(errShuttingDown)
		// Cancelled calls return at once; give them a moment to answer.
		select {
		case <-drained:
		case <-time.After(5 * time.Second):
		}
	}
	// Every call has been answered. The handlers have returned, but the
	// server may still be finishing their responses and the clients
	// reading them: ending the event streams at once can make a client tear
	// its session down before it has read its last results. Give them a
	// moment, then end the long-lived event streams.
	time.Sleep(streamGrace)
	g.cancelBase()
	select {
	case err := <-shut:
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
	case <-time.After(5 * time.Second):
		_ = srv.Close()
	}
	g.logger.Info("stopped serving")
	return nil
}

// Close stops the backends and then the telemetry providers, flushing every
// audit record already emitted to PostgreSQL. ctx bounds the flush.
func (g *Gateway) Close(ctx context.Context) error {
	g.closeOnce.Do(func() {
		var errs []error
		g.cancelHard(errShuttingDown)
		g.cancelBase()
		if g.authn != nil {
			// The refusals still being aggregated become rows now.
			g.authn.anon.close()
		}
		g.unregisterMetrics()
		for _, b := range g.backends {
			if err := b.close(); err != nil {
				errs = append(errs, err)
			}
		}
		if g.telemetry != nil {
			if err := g.telemetry.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

// quiet returns logger restricted to warnings and errors, for the MCP SDK,
// which logs every session at info level.
func quiet(logger *slog.Logger) *slog.Logger {
	return slog.New(minLevel{Handler: logger.Handler(), min: slog.LevelWarn})
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(a), min: h.min}
}

func (h minLevel) WithGroup(n string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(n), min: h.min}
}
