package gateway

import (
	"context"
	"fmt"
	"path"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

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
	roles map[string][]string
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
// tools/list. It runs behind the audit middleware, which records a refusal
// as denied (the error wraps instrumentation.ErrDenied).
func (z *authorizer) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case otelaudit.MethodToolsCall:
			call, ok := req.(*mcp.CallToolRequest)
			if !ok || call.Params == nil {
				break
			}
			role := mcpsdk.DefaultRole(tokenInfo(req))
			if z.allowed(role, call.Params.Name) {
				break
			}
			return nil, &forbiddenError{msg: fmt.Sprintf("forbidden: role %q may not call tool %q", role, call.Params.Name)}
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

// forbiddenError is a tool call the caller's role may not make. The client
// gets JSON-RPC error CodeForbidden with its message (the Go SDK keeps the
// code of a wrapped *jsonrpc.Error); the audit records the call as denied,
// since it wraps instrumentation.ErrDenied.
type forbiddenError struct{ msg string }

func (e *forbiddenError) Error() string { return e.msg }

func (e *forbiddenError) Unwrap() []error {
	return []error{&jsonrpc.Error{Code: CodeForbidden, Message: e.msg}, instrumentation.ErrDenied}
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
