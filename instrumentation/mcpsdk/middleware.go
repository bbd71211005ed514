package mcpsdk

import (
	"context"
	"errors"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/toolerr"
)

// Middleware returns an mcp.Middleware, for Server.AddReceivingMiddleware,
// that audits every tools/call request through a and passes every other
// method through untouched.
//
// The caller's subject is the UserID of the request's bearer token
// information (req.Extra.TokenInfo) and the role comes from the same token
// (see [WithRoleFromTokenInfo]); without token information the Auditor's
// identity hook is asked. A result with IsError is recorded with status error
// and error.type tool_error. The record carries mcp.method.name,
// mcp.session.id and jsonrpc.request.id.
//
// In fail-closed mode the call is refused with
// instrumentation.ErrAuditUnavailable before it reaches the tool.
func Middleware(a *instrumentation.Auditor, opts ...Option) mcp.Middleware {
	cfg := newConfig(opts)
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		if a == nil {
			return next
		}
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != otelaudit.MethodToolsCall {
				return next(ctx, method, req)
			}
			call, ok := req.(*mcp.CallToolRequest)
			if !ok || call == nil || call.Params == nil {
				return next(ctx, method, req)
			}
			treq := cfg.toolRequest(ctx, call)
			var result mcp.Result
			_, err := a.Invoke(ctx, treq, func(ctx context.Context, _ instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
				r, err := next(ctx, method, req)
				result = r
				tr := instrumentation.ToolResult{Value: r}
				if ctr, ok := r.(*mcp.CallToolResult); ok && ctr != nil && ctr.IsError {
					tr.IsError = true
					tr.ErrorMessage = errorText(ctr)
				}
				var werr *jsonrpc.Error
				if errors.As(err, &werr) {
					// As the MCP semantic conventions ask: the JSON-RPC
					// error code.
					tr.ErrorType = strconv.FormatInt(werr.Code, 10)
				}
				return tr, err
			})
			return result, err
		}
	}
}

// toolRequest describes call for the Auditor.
func (c config) toolRequest(ctx context.Context, call *mcp.CallToolRequest) instrumentation.ToolRequest {
	treq := instrumentation.ToolRequest{
		Tool:      call.Params.Name,
		Method:    otelaudit.MethodToolsCall,
		JSONRPCID: jsonrpcID(ctx),
	}
	if len(call.Params.Arguments) > 0 {
		treq.Args = call.Params.Arguments
	}
	if c.backend != nil {
		treq.Backend = c.backend(call.Params.Name)
	}
	if call.Session != nil {
		treq.SessionID = call.Session.ID()
	}
	if call.Extra != nil && call.Extra.TokenInfo != nil {
		treq.Subject = call.Extra.TokenInfo.UserID
		treq.Role = c.role(call.Extra.TokenInfo)
	}
	return treq
}

// errorText returns the text content of a failed tool result.
func errorText(r *mcp.CallToolResult) string {
	return toolerr.Text(r.Content, func(c mcp.Content) (string, bool) {
		t, ok := c.(*mcp.TextContent)
		if !ok || t == nil {
			return "", false
		}
		return t.Text, true
	})
}
