package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
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
const maxPeekBytes = 64 << 10

// identity is who a token belongs to.
type identity struct{ subject, role string }

// authenticator checks bearer tokens against the configured clients and
// audits the requests it turns away.
type authenticator struct {
	// byHash maps the SHA-256 of a token to its owner, so the gateway keeps
	// no token in memory in the clear after start-up and a lookup does not
	// compare token bytes with an early exit.
	byHash  map[[sha256.Size]byte]identity
	auditor *instrumentation.Auditor
	tracer  trace.Tracer
	route   func(tool string) string
}

func newAuthenticator(clients []ClientConfig, a *instrumentation.Auditor, tracer trace.Tracer, route func(string) string) *authenticator {
	m := make(map[[sha256.Size]byte]identity, len(clients))
	for _, c := range clients {
		m[sha256.Sum256([]byte(c.Token))] = identity{subject: c.Subject, role: c.Role}
	}
	return &authenticator{byHash: m, auditor: a, tracer: tracer, route: route}
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
// without one gets 401 from auth.RequireBearerToken and is audited here with
// status denied and subject anonymous, since it never reaches the MCP
// server. The token itself is never logged or audited.
func (a *authenticator) middleware(next http.Handler) http.Handler {
	protected := auth.RequireBearerToken(a.verify, &auth.RequireBearerTokenOptions{
		// The configured tokens are static; they carry no expiry.
		AllowMissingExpiration: true,
	})(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.known(r) {
			// The common case: RequireBearerToken will let it through.
			protected.ServeHTTP(w, r)
			return
		}
		// The request will most likely be refused: keep the start of its
		// body to audit which tool it tried to call.
		start := time.Now()
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxPeekBytes))
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		rec := &statusRecorder{ResponseWriter: w}
		protected.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			a.auditDenied(r, body, time.Since(start))
		}
	})
}

// known reports whether the request carries a known bearer token.
func (a *authenticator) known(r *http.Request) bool {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) {
		return false
	}
	_, ok := a.byHash[sha256.Sum256([]byte(h[len(prefix):]))]
	return ok
}

// auditDenied records a request refused for want of a valid token.
func (a *authenticator) auditDenied(r *http.Request, body []byte, latency time.Duration) {
	if a.auditor == nil {
		return
	}
	msg := peekRPC(body)
	reason := "missing bearer token"
	if r.Header.Get("Authorization") != "" {
		reason = "invalid bearer token"
	}
	ctx, span := a.tracer.Start(r.Context(), otelaudit.OperationExecuteTool+" "+msg.tool,
		trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	c := instrumentation.Call{
		Subject:      AnonymousSubject,
		Role:         NoRole,
		Tool:         msg.tool,
		Status:       otelaudit.StatusDenied,
		ErrorType:    "unauthenticated",
		ErrorMessage: fmt.Sprintf("HTTP 401: %s (%s %s)", reason, r.Method, r.URL.Path),
		Latency:      latency,
		Method:       msg.method,
		SessionID:    r.Header.Get("Mcp-Session-Id"),
		JSONRPCID:    msg.id,
	}
	if len(msg.args) > 0 {
		c.Args = msg.args
	}
	if c.Tool == "" {
		// Not a tool call (initialize, the GET event stream, ...): name
		// what was attempted instead.
		c.Tool = "(" + r.Method + ")"
		if msg.method != "" {
			c.Tool = "(" + msg.method + ")"
		}
	}
	if a.route != nil {
		c.Backend = a.route(c.Tool)
	}
	a.auditor.Record(ctx, c)
}

// rpcPeek is what an unauthenticated request tried to do.
type rpcPeek struct {
	method, tool, id string
	args             json.RawMessage
}

// peekRPC reads the JSON-RPC method, tool name and arguments from the body
// of a refused request, as far as it is a single JSON-RPC request.
func peekRPC(body []byte) rpcPeek {
	var m struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
		Params struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"params"`
	}
	if len(body) == 0 || json.Unmarshal(body, &m) != nil {
		return rpcPeek{}
	}
	p := rpcPeek{method: m.Method}
	if len(m.ID) > 0 {
		var s string
		if json.Unmarshal(m.ID, &s) == nil {
			p.id = s
		} else {
			p.id = string(m.ID)
		}
	}
	if m.Method == otelaudit.MethodToolsCall {
		p.tool = m.Params.Name
		if len(m.Params.Arguments) > 0 && string(m.Params.Arguments) != "null" {
			p.args = m.Params.Arguments
		}
	}
	return p
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
