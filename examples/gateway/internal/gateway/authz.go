package gateway

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpsdk"
)

// CodeForbidden is the JSON-RPC error code of a tool call the caller's role
// may not make. JSON-RPC leaves -32000 to -32099 to implementations; the Go
// SDK and MCP use -32001 to -32005 and -32020 to -32022 (-32003 makes the Go
// client treat the connection as closed) and -32042, so this is clear of them.
const CodeForbidden = -32040

// authorizer enforces the per-role tool allow-lists.
type authorizer struct {
	roles   map[string][]string
	auditor *instrumentation.Auditor
	tracer  trace.Tracer
	route   func(tool string) string
}

// allowed reports whether role may call tool.
func (z *authorizer) allowed(role, tool string) bool {
	for _, p := range z.roles[role] {
		if ok, _ := path.Match(p, tool); ok {
			return true
		}
	}
	return false
}

// middleware refuses tools/call requests the caller's role does not allow,
// with an MCP (JSON-RPC) error, and lists only the allowed tools in
// tools/list. It runs in front of the audit middleware, so it audits the
// calls it refuses itself, with status denied.
func (z *authorizer) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case otelaudit.MethodToolsCall:
			call, ok := req.(*mcp.CallToolRequest)
			if !ok || call.Params == nil {
				break
			}
			ti := tokenInfo(req)
			role := mcpsdk.DefaultRole(ti)
			if z.allowed(role, call.Params.Name) {
				break
			}
			return nil, z.deny(ctx, call, ti, role)
		case "tools/list":
			res, err := next(ctx, method, req)
			if lr, ok := res.(*mcp.ListToolsResult); ok && err == nil && lr != nil {
				role := mcpsdk.DefaultRole(tokenInfo(req))
				out := *lr
				out.Tools = make([]*mcp.Tool, 0, len(lr.Tools))
				for _, t := range lr.Tools {
					if z.allowed(role, t.Name) {
						out.Tools = append(out.Tools, t)
					}
				}
				return &out, nil
			}
			return res, err
		}
		return next(ctx, method, req)
	}
}

// deny audits a forbidden call and returns the error sent to the client.
func (z *authorizer) deny(ctx context.Context, call *mcp.CallToolRequest, ti *auth.TokenInfo, role string) error {
	start := time.Now()
	tool := call.Params.Name
	msg := fmt.Sprintf("forbidden: role %q may not call tool %q", role, tool)
	if z.auditor != nil {
		ctx, span := z.tracer.Start(ctx, otelaudit.OperationExecuteTool+" "+tool,
			trace.WithSpanKind(trace.SpanKindInternal), trace.WithTimestamp(start))
		c := instrumentation.Call{
			Start:        start,
			Role:         role,
			Tool:         tool,
			Status:       otelaudit.StatusDenied,
			ErrorType:    "forbidden",
			ErrorMessage: msg,
			Method:       otelaudit.MethodToolsCall,
			Latency:      time.Since(start),
		}
		if ti != nil {
			c.Subject = ti.UserID
		}
		if len(call.Params.Arguments) > 0 {
			c.Args = call.Params.Arguments
		}
		if z.route != nil {
			c.Backend = z.route(tool)
		}
		if call.Session != nil {
			c.SessionID = call.Session.ID()
		}
		z.auditor.Record(ctx, c)
		span.End()
	}
	return &jsonrpc.Error{Code: CodeForbidden, Message: msg}
}

// tokenInfo returns the bearer token information of a request, or nil.
func tokenInfo(req mcp.Request) *auth.TokenInfo {
	if req == nil {
		return nil
	}
	if ex := req.GetExtra(); ex != nil {
		return ex.TokenInfo
	}
	return nil
}
