package instrumentation

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/internal/bound"
)

// ToolRequest is a tool call as a [ToolHandler] receives it.
type ToolRequest struct {
	// Tool is the name of the tool called.
	Tool string
	// Args are the call's arguments (see [Call.Args]).
	Args any
	// Backend names the backend that serves the call, when known up front.
	// A handler may name it later with [SetBackend].
	Backend string
	// Subject and Role identify the caller. When both are empty the
	// Auditor's identity hook is asked (see [WithIdentity]).
	Subject, Role string
	// Method is the MCP method the call came in with, empty when the call
	// did not come over MCP.
	Method string
	// SessionID is the MCP session of the call, if any.
	SessionID string
	// JSONRPCID is the JSON-RPC id of the request, if any.
	JSONRPCID string
}

// ToolResult is what a [ToolHandler] returns for a call that did not fail in
// the gateway.
type ToolResult struct {
	// Value is the tool's result. The Auditor passes it through untouched.
	Value any
	// IsError reports that the tool itself failed (MCP's isError). The call
	// is recorded with status error and error.type otelaudit.ErrorTypeToolError.
	IsError bool
	// ErrorMessage describes the tool's failure, recorded as error.message
	// when IsError is set.
	ErrorMessage string
	// ErrorType, when not empty, is recorded as error.type of a call that
	// failed (IsError or an error returned), instead of the derived one.
	ErrorType string
}

// ToolHandler handles one tool call.
type ToolHandler func(ctx context.Context, req ToolRequest) (ToolResult, error)

// Wrap returns a ToolHandler that audits every call it passes to next: it
// creates the request id, starts an INTERNAL span "execute_tool {tool}" with
// the GenAI semantic-convention attributes, times the call, classifies the
// outcome, redacts the arguments and records the call. In fail-closed mode it
// refuses calls with [ErrAuditUnavailable] while the audit pipeline is
// unavailable, without calling next.
func (a *Auditor) Wrap(next ToolHandler) ToolHandler {
	if a == nil {
		return next
	}
	return func(ctx context.Context, req ToolRequest) (ToolResult, error) {
		return a.Invoke(ctx, req, next)
	}
}

// Invoke audits one call of next with req, as a handler returned by
// [Auditor.Wrap] does. Adapters for other frameworks use it.
func (a *Auditor) Invoke(ctx context.Context, req ToolRequest, next ToolHandler) (res ToolResult, err error) {
	if a == nil {
		return next(ctx, req)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	id := newRequestID()

	// The span carries the same bounded fields as the record (the record
	// bounds the originals itself, with its markers).
	max := a.maxFieldBytes
	tool, _ := bound.String(req.Tool, max)
	var spanAttrs [6]attribute.KeyValue
	sa := append(spanAttrs[:0],
		otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool),
		otelaudit.ToolNameKey.String(tool),
		otelaudit.RequestIDKey.String(id.String()),
	)
	if req.Method != "" {
		v, _ := bound.String(req.Method, max)
		sa = append(sa, otelaudit.MCPMethodNameKey.String(v))
	}
	if req.SessionID != "" {
		v, _ := bound.String(req.SessionID, max)
		sa = append(sa, otelaudit.MCPSessionIDKey.String(v))
	}
	if req.JSONRPCID != "" {
		v, _ := bound.String(req.JSONRPCID, max)
		sa = append(sa, otelaudit.JSONRPCRequestIDKey.String(v))
	}
	ctx, span := a.tracer.Start(ctx, otelaudit.OperationExecuteTool+" "+tool,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithTimestamp(start),
		trace.WithAttributes(sa...))

	c := Call{
		RequestID: id,
		Start:     start,
		Subject:   req.Subject,
		Role:      req.Role,
		Tool:      req.Tool,
		Backend:   req.Backend,
		Args:      req.Args,
		Method:    req.Method,
		SessionID: req.SessionID,
		JSONRPCID: req.JSONRPCID,
	}
	if c.Subject == "" && c.Role == "" && a.identity != nil {
		c.Subject, c.Role = a.safeIdentity(ctx)
	}

	if aerr := a.Allow(ctx); aerr != nil {
		c.Err = aerr
		c.Latency = time.Since(start)
		a.finish(ctx, span, &c)
		return ToolResult{}, aerr
	}

	state := &callState{}
	hctx := context.WithValue(ctx, callStateKey{}, state)
	panicked := true
	defer func() {
		if !panicked {
			return
		}
		// next panicked: record the call as failed, then let the panic go
		// on to whatever recovers it in the caller.
		p := recover()
		c.Err = panicError{p}
		c.Latency = time.Since(start)
		a.finishWithBackend(ctx, span, &c, state)
		if p != nil { // nil: runtime.Goexit, which carries on by itself
			panic(p)
		}
	}()
	res, err = next(hctx, req)
	panicked = false

	c.Latency = time.Since(start)
	c.Err = err
	c.ErrorType = res.ErrorType
	if err != nil || res.IsError {
		// A call that failed once its context was done failed because of
		// it, whatever error the handler made of that.
		if st, et, ok := contextStatus(ctx); ok {
			c.Status, c.ErrorType = st, et
		}
	}
	if err == nil && res.IsError {
		if c.Status == "" {
			c.Status = otelaudit.StatusError
		}
		if c.ErrorType == "" && c.Status == otelaudit.StatusError {
			c.ErrorType = otelaudit.ErrorTypeToolError
		}
		c.ErrorMessage = res.ErrorMessage
	}
	a.finishWithBackend(ctx, span, &c, state)
	return res, err
}

// panicError is the error of a call whose handler panicked.
type panicError struct{ v any }

func (e panicError) Error() string { return "instrumentation: panic in tool handler" }

// ErrorType names the failure for error.type.
func (e panicError) ErrorType() string { return "panic" }

func (a *Auditor) safeIdentity(ctx context.Context) (subject, role string) {
	defer func() { _ = recover() }()
	return a.identity(ctx)
}

func (a *Auditor) finishWithBackend(ctx context.Context, span trace.Span, c *Call, state *callState) {
	if b, ok := state.get(); ok {
		c.Backend = b
	}
	a.finish(ctx, span, c)
}

// finish records c and ends its span. The span says no more about a failure
// than the record: its status description is the recorded, scrubbed error
// text.
func (a *Auditor) finish(ctx context.Context, span trace.Span, c *Call) {
	msg := a.record(ctx, c)
	if span.IsRecording() {
		if c.Backend != "" {
			b, _ := bound.String(c.Backend, a.maxFieldBytes)
			span.SetAttributes(otelaudit.BackendNameKey.String(b))
		}
		if st := c.status(); st != otelaudit.StatusOK {
			et, _ := bound.String(c.errorType(st), a.maxFieldBytes)
			span.SetAttributes(otelaudit.ErrorTypeKey.String(et))
			span.SetStatus(codes.Error, msg)
		}
	}
	span.End()
}
