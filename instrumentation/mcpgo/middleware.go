package mcpgo

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/toolerr"
)

// Middleware returns a server.ToolHandlerMiddleware, for
// server.WithToolHandlerMiddleware, that audits every tool call through a.
//
// The caller's subject and role come from the Auditor's identity hook (by
// default what instrumentation.ContextWithIdentity stored, for example from
// a server.WithHTTPContextFunc). A result with IsError is recorded with
// status error and error.type tool_error. The record carries mcp.method.name,
// mcp.session.id and, with the hook of [AddHooks] installed,
// jsonrpc.request.id.
//
// In fail-closed mode the call is refused with
// instrumentation.ErrAuditUnavailable before it reaches the tool.
func Middleware(a *instrumentation.Auditor, opts ...Option) server.ToolHandlerMiddleware {
	cfg := newConfig(opts)
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		if a == nil {
			return next
		}
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			treq := instrumentation.ToolRequest{
				Tool:      req.Params.Name,
				Args:      req.GetRawArguments(),
				Method:    otelaudit.MethodToolsCall,
				JSONRPCID: takeID(&req),
			}
			if cfg.backend != nil {
				treq.Backend = cfg.backend(req.Params.Name)
			}
			if s := server.ClientSessionFromContext(ctx); s != nil {
				treq.SessionID = s.SessionID()
			}
			var result *mcp.CallToolResult
			_, err := a.Invoke(ctx, treq, func(ctx context.Context, _ instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
				r, err := next(ctx, req)
				result = r
				tr := instrumentation.ToolResult{Value: r}
				if r != nil && r.IsError {
					tr.IsError = true
					tr.ErrorMessage = errorText(r)
				}
				return tr, err
			})
			return result, err
		}
	}
}

// errorText returns the text content of a failed tool result.
func errorText(r *mcp.CallToolResult) string {
	return toolerr.Text(r.Content, func(c mcp.Content) (string, bool) {
		switch t := c.(type) {
		case mcp.TextContent:
			return t.Text, true
		case *mcp.TextContent:
			if t != nil {
				return t.Text, true
			}
		}
		return "", false
	})
}
