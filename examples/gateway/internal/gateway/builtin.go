package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// MaxSleep bounds the builtin sleep tool.
const MaxSleep = 10 * time.Minute

// builtinTools returns the demo backend's tools: echo, add, sleep and fail.
// Each handler names its backend for the audit record.
func builtinTools(backend string) []registeredTool {
	named := func(h mcp.ToolHandler) mcp.ToolHandler {
		return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			instrumentation.SetBackend(ctx, backend)
			return h(ctx, req)
		}
	}
	return []registeredTool{
		{
			tool: &mcp.Tool{
				Name:        "echo",
				Description: "Returns the text it is given. Other arguments are accepted and ignored.",
				InputSchema: objectSchema(`"text": {"type": "string", "description": "text to echo"}`, "text"),
			},
			handler: named(echo),
		},
		{
			tool: &mcp.Tool{
				Name:        "add",
				Description: "Adds two numbers.",
				InputSchema: objectSchema(`"a": {"type": "number"}, "b": {"type": "number"}`, "a", "b"),
			},
			handler: named(add),
		},
		{
			tool: &mcp.Tool{
				Name:        "sleep",
				Description: "Waits for ms milliseconds, then returns. Stops early when the call is cancelled or times out.",
				InputSchema: objectSchema(`"ms": {"type": "integer", "minimum": 0}`, "ms"),
			},
			handler: named(sleep),
		},
		{
			tool: &mcp.Tool{
				Name:        "fail",
				Description: "Always fails with a tool error (isError) carrying the given message.",
				InputSchema: objectSchema(`"message": {"type": "string"}`),
			},
			handler: named(fail),
		},
	}
}

// objectSchema returns a JSON Schema object with the given properties.
func objectSchema(props string, required ...string) json.RawMessage {
	req, _ := json.Marshal(required)
	if required == nil {
		req = []byte("[]")
	}
	return json.RawMessage(`{"type": "object", "properties": {` + props + `}, "required": ` + string(req) + `}`)
}

// args decodes a call's arguments into v, or returns an invalid-params error.
func args(req *mcp.CallToolRequest, v any) error {
	raw := req.Params.Arguments
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid arguments for " + req.Params.Name + ": " + err.Error()}
	}
	return nil
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func echo(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Text string `json:"text"`
	}
	if err := args(req, &in); err != nil {
		return nil, err
	}
	return text(in.Text), nil
}

func add(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		A *float64 `json:"a"`
		B *float64 `json:"b"`
	}
	if err := args(req, &in); err != nil {
		return nil, err
	}
	if in.A == nil || in.B == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "add needs numbers a and b"}
	}
	return text(strconv.FormatFloat(*in.A+*in.B, 'g', -1, 64)), nil
}

func sleep(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		MS int64 `json:"ms"`
	}
	if err := args(req, &in); err != nil {
		return nil, err
	}
	d := time.Duration(in.MS) * time.Millisecond
	if in.MS < 0 || d > MaxSleep {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("ms must be between 0 and %d", MaxSleep.Milliseconds())}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return text(fmt.Sprintf("slept %d ms", in.MS)), nil
	case <-ctx.Done():
		// Returned as is, so a deadline is audited as a timeout.
		return nil, fmt.Errorf("sleep interrupted: %w", context.Cause(ctx))
	}
}

func fail(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Message string `json:"message"`
	}
	if err := args(req, &in); err != nil {
		return nil, err
	}
	if in.Message == "" {
		in.Message = "the fail tool always fails"
	}
	res := text(in.Message)
	res.IsError = true
	return res, nil
}
