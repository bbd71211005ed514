package mcpgo

import (
	"context"
	"strconv"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// mcp-go hands a tool-handler middleware the request without its JSON-RPC
// id; only its hooks see the id. The hook installed by AddHooks passes the id
// on to the middleware in the request's _meta, under metaIDKey, and the
// middleware removes it again before the tool handler runs.

// metaIDKey is the _meta field that carries the JSON-RPC id from the hook to
// the middleware.
const metaIDKey = "io.github.sentinel-gateway.otelaudit/jsonrpc-id"

// carriedID is the value stored under metaIDKey.
type carriedID struct {
	id string
	// created reports that the hook created Params.Meta for it.
	created bool
}

// AddHooks registers on h the hook that lets the middleware of [Middleware]
// record the JSON-RPC id of each call (jsonrpc.request.id). Without it the
// id is not recorded. Pass h to the server with server.WithHooks, or use
// (*server.MCPServer).GetHooks of a server that already has hooks.
func AddHooks(h *server.Hooks) {
	if h == nil {
		return
	}
	h.AddBeforeCallTool(func(_ context.Context, id any, req *mcp.CallToolRequest) {
		if req == nil {
			return
		}
		s := idString(id)
		if s == "" {
			return
		}
		c := carriedID{id: s}
		if req.Params.Meta == nil {
			req.Params.Meta = &mcp.Meta{}
			c.created = true
		}
		if req.Params.Meta.AdditionalFields == nil {
			req.Params.Meta.AdditionalFields = map[string]any{}
		}
		req.Params.Meta.AdditionalFields[metaIDKey] = c
	})
}

// takeID removes the id the hook left in req and returns it.
func takeID(req *mcp.CallToolRequest) string {
	m := req.Params.Meta
	if m == nil || m.AdditionalFields == nil {
		return ""
	}
	c, ok := m.AdditionalFields[metaIDKey].(carriedID)
	if !ok {
		return ""
	}
	// The hook and the handler share the map: copy it rather than change
	// what the hook's caller holds.
	fields := make(map[string]any, len(m.AdditionalFields))
	for k, v := range m.AdditionalFields {
		if k != metaIDKey {
			fields[k] = v
		}
	}
	if c.created && len(fields) == 0 && m.ProgressToken == nil {
		req.Params.Meta = nil
	} else {
		nm := *m
		nm.AdditionalFields = fields
		if len(fields) == 0 {
			nm.AdditionalFields = nil
		}
		req.Params.Meta = &nm
	}
	return c.id
}

func idString(id any) string {
	switch v := id.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case mcp.RequestId:
		return idString(v.Value())
	case *mcp.RequestId:
		if v != nil {
			return idString(v.Value())
		}
	}
	return ""
}
