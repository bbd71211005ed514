package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// AnonymousSubject is the client_subject of requests without a valid token.
const AnonymousSubject = "anonymous"

// NoRole is the client_role of requests without a valid token.
const NoRole = "none"

// maxPeekBytes bounds how much of an unauthenticated request's body is read
// to find the tool it tried to call.
const maxPeekBytes = 16 << 10

// maxAuthPeekBytes bounds how much of an authenticated request's body the
// gateway reads itself to audit a tools/call the MCP layer would refuse
// before it reaches the tool (no session yet, unknown session).
const maxAuthPeekBytes = 1 << 20

// identity is who a token belongs to.
type identity struct{ subject, role string }

// authenticator checks bearer tokens against the configured clients and
// audits the requests it turns away.
type authenticator struct {
	// byHash maps the SHA-256 of a token to its owner, so the gateway keeps
	// no token in memory in the clear after start-up and a lookup does not
	// compare token bytes with an early exit.
	byHash      map[[sha256.Size]byte]identity
	auditor     *instrumentation.Auditor
	tracer      trace.Tracer
	route       func(tool string) string
	anon        *anonAuditor
	peekTimeout time.Duration
	// peekSlots bounds the unauthenticated bodies being read at once.
	peekSlots chan struct{}
}

func newAuthenticator(cfg *Config, a *instrumentation.Auditor, tracer trace.Tracer, route func(string) string) *authenticator {
	m := make(map[[sha256.Size]byte]identity, len(cfg.Clients))
	for _, c := range cfg.Clients {
		m[c.tokenHash] = identity{subject: c.Subject, role: c.Role}
	}
	return &authenticator{
		byHash: m, auditor: a, tracer: tracer, route: route,
		anon:        newAnonAuditor(cfg.Anonymous, a, tracer, route),
		peekTimeout: cfg.Server.UnauthenticatedTimeout,
		peekSlots:   make(chan struct{}, cfg.Anonymous.MaxInFlight),
	}
}

// verify is the auth.TokenVerifier: it maps a known token to TokenInfo with
// the subject as UserID and the role as Extra["role"], which is where the
// mcpsdk audit middleware and the authorizer read them.
func (a *authenticator) verify(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	id, ok := a.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return nil, fmt.Errorf("unknown bearer token: %w", auth.ErrInvalidToken)
	}
	return &auth.TokenInfo{UserID: id.subject, Extra: map[string]any{"role": id.role}}, nil
}

// middleware requires a valid bearer token on every request. A request
// without one gets 401 from auth.RequireBearerToken and is counted by the
// anonymous auditor (one row per client address, reason and window), since
// it never reaches the MCP server. Its body is read for at most
// server.unauthenticated_timeout and the connection is closed after the 401.
// The token itself is never logged or audited.
func (a *authenticator) middleware(next http.Handler) http.Handler {
	protected := auth.RequireBearerToken(a.verify, &auth.RequireBearerTokenOptions{
		// The configured tokens are static; they carry no expiry.
		AllowMissingExpiration: true,
	})(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := a.identify(r); ok {
			// The common case: RequireBearerToken will let it through.
			liftReadDeadline(w, r)
			a.serveAuthenticated(protected, w, r, id)
			return
		}
		// The request will be refused: keep the start of its body to
		// audit which tool it tried to call, reading for a bounded time.
		start := time.Now()
		var body []byte
		select {
		case a.peekSlots <- struct{}{}:
			if a.peekTimeout > 0 {
				_ = http.NewResponseController(w).SetReadDeadline(start.Add(a.peekTimeout))
			}
			body, _ = io.ReadAll(io.LimitReader(r.Body, maxPeekBytes))
			<-a.peekSlots
		default:
			a.anon.unread.Add(1)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		w.Header().Set("Connection", "close")
		rec := &statusRecorder{ResponseWriter: w}
		protected.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			reason := reasonMissingToken
			if r.Header.Get("Authorization") != "" {
				reason = reasonInvalidToken
			}
			var peek rpcPeek
			if p := peekRPC(body); len(p) > 0 {
				peek = p[0]
			}
			a.anon.refused(clientKey(r.RemoteAddr), reason, r.Method, peek, time.Since(start))
		}
	})
}

// identify returns the owner of the request's bearer token, parsing the
// Authorization header as auth.RequireBearerToken does.
func (a *authenticator) identify(r *http.Request) (identity, bool) {
	fields := strings.Fields(r.Header.Get("Authorization"))
	if len(fields) != 2 || !strings.EqualFold(fields[0], "bearer") {
		return identity{}, false
	}
	id, ok := a.byHash[sha256.Sum256([]byte(fields[1]))]
	return id, ok
}

// serveAuthenticated passes an authenticated request on, and audits the
// tool calls in it that the MCP layer refuses before they reach the audit
// middleware: a tools/call without a session (before initialize) is
// answered here with JSON-RPC error -32600 and HTTP 400; one naming an
// unknown session (404) or another caller's (403) is audited after the
// MCP handler refused it. Each such call is one denied row.
func (a *authenticator) serveAuthenticated(protected http.Handler, w http.ResponseWriter, r *http.Request, id identity) {
	if r.Method != http.MethodPost {
		protected.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	if r.Header.Get(sessionIDHeader) == "" {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAuthPeekBytes))
		if err != nil {
			http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		var calls []rpcPeek
		for _, p := range peekRPC(body) {
			if p.method == otelaudit.MethodToolsCall && !p.newProtocol {
				calls = append(calls, p)
			}
		}
		if len(calls) > 0 {
			const msg = "session not initialized: send initialize first, then use the Mcp-Session-Id it returns"
			for _, p := range calls {
				a.auditRefused(r, id, p, "session_not_initialized", msg, time.Since(start))
			}
			writeJSONRPCError(w, http.StatusBadRequest, calls[0].rawID, jsonrpc.CodeInvalidRequest, msg)
			return
		}
		protected.ServeHTTP(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	counted := &countingBody{ReadCloser: r.Body}
	r.Body = counted
	protected.ServeHTTP(rec, r)
	if rec.status < 400 || counted.n > 0 {
		// Served, or refused after the MCP layer read the request (and
		// found no tool call it could run).
		return
	}
	var errType, msg string
	switch rec.status {
	case http.StatusNotFound:
		errType, msg = "session_not_found", "HTTP 404: session not found"
	case http.StatusForbidden:
		errType, msg = "session_user_mismatch", "HTTP 403: the session belongs to another caller"
	default:
		// Content-Type or Accept the streamable transport refuses, ...
		errType = fmt.Sprintf("http_%d", rec.status)
		msg = fmt.Sprintf("HTTP %d: %s", rec.status, http.StatusText(rec.status))
	}
	// The MCP handler refused the request before reading its body.
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxAuthPeekBytes))
	for _, p := range peekRPC(body) {
		if p.method == otelaudit.MethodToolsCall {
			a.auditRefused(r, id, p, errType, msg, time.Since(start))
		}
	}
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// auditRefused records an authenticated tool call refused before it reached
// the MCP server's handlers. The session id the client sent is not stored:
// it names no session the gateway knows.
func (a *authenticator) auditRefused(r *http.Request, id identity, p rpcPeek, errType, msg string, latency time.Duration) {
	if a.auditor == nil {
		return
	}
	ctx, span := a.tracer.Start(r.Context(), otelaudit.OperationExecuteTool+" "+p.tool,
		trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	c := instrumentation.Call{
		Subject:      id.subject,
		Role:         id.role,
		Tool:         p.tool,
		Status:       otelaudit.StatusDenied,
		ErrorType:    errType,
		ErrorMessage: msg,
		Latency:      latency,
		Method:       p.method,
		JSONRPCID:    p.id,
	}
	if len(p.args) > 0 {
		c.Args = p.args
	}
	if a.route != nil {
		c.Backend = a.route(p.tool)
	}
	a.auditor.Record(ctx, c)
}

// writeJSONRPCError answers a request with a JSON-RPC error.
func writeJSONRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int64, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error":   map[string]any{"code": code, "message": msg},
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// sessionlessProtocol is the first MCP protocol version whose requests
// need no session (SEP-2575).
const sessionlessProtocol = "2026-07-28"

// sessionIDHeader is the MCP streamable HTTP session header.
const sessionIDHeader = "Mcp-Session-Id"

// rpcPeek is what a request tried to do.
type rpcPeek struct {
	method, tool, id string
	rawID            json.RawMessage
	args             json.RawMessage
	// newProtocol is set when the request carries the protocol version in
	// _meta (the sessionless protocol of SEP-2575), which needs no session.
	newProtocol bool
}

// peekRPC reads the JSON-RPC method, tool name, id and arguments of each
// request in body: a single request or a batch.
func peekRPC(body []byte) []rpcPeek {
	type msg struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
		Params struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Meta      map[string]any  `json:"_meta"`
		} `json:"params"`
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	var msgs []msg
	if body[0] == '[' {
		if json.Unmarshal(body, &msgs) != nil {
			return nil
		}
	} else {
		var m msg
		if json.Unmarshal(body, &m) != nil {
			return nil
		}
		msgs = []msg{m}
	}
	out := make([]rpcPeek, 0, len(msgs))
	for _, m := range msgs {
		p := rpcPeek{method: m.Method, rawID: m.ID}
		if len(m.ID) > 0 {
			var s string
			if json.Unmarshal(m.ID, &s) == nil {
				p.id = s
			} else if m.ID[0] == '-' || (m.ID[0] >= '0' && m.ID[0] <= '9') {
				p.id = string(m.ID)
			} else {
				// Not a string or a number, as JSON-RPC requires: keep
				// nothing of it.
				p.rawID = nil
			}
		}
		// As the go-sdk decides (validateRequestMeta): versions are dates.
		if v, ok := m.Params.Meta[mcp.MetaKeyProtocolVersion].(string); ok && v >= sessionlessProtocol {
			p.newProtocol = true
		}
		if m.Method == otelaudit.MethodToolsCall {
			p.tool = m.Params.Name
			if len(m.Params.Arguments) > 0 && string(m.Params.Arguments) != "null" {
				p.args = m.Params.Arguments
			}
		}
		out = append(out, p)
	}
	return out
}

// statusRecorder remembers the status code written through it. It passes
// Flush through so that streamed (SSE) responses keep working.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
