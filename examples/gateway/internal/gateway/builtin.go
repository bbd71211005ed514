package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// MaxSleep bounds the builtin sleep tool.
const MaxSleep = 10 * time.Minute

// builtinTools returns the demo backend's tools: echo, add, sleep and fail.
// Each declares a typed input whose JSON Schema (inferred by
// jsonschema-go, as the go-sdk's mcp.AddTool does) is checked before the
// handler runs: a call without a required argument, or with one of the
// wrong type, is refused with JSON-RPC error -32602. Arguments the schema
// does not name are accepted and ignored. Each handler names its backend
// for the audit record.
func builtinTools(backend string) []registeredTool {
	return []registeredTool{
		typedTool(backend, "echo", "Returns the text it is given. Other arguments are accepted and ignored.", echo, nil),
		typedTool(backend, "add", "Adds two numbers.", add, nil),
		typedTool(backend, "sleep", "Waits for ms milliseconds, then returns. Stops early when the call is cancelled or times out.", sleep,
			func(s *jsonschema.Schema) {
				zero, most := 0.0, float64(MaxSleep.Milliseconds())
				s.Properties["ms"].Minimum, s.Properties["ms"].Maximum = &zero, &most
			}),
		typedTool(backend, "fail", "Always fails with a tool error (isError) carrying the given message.", fail, nil),
	}
}

// typedTool returns a builtin tool whose input is In: its schema is
// inferred from In (fields without omitempty are required), arguments are
// validated against it and decoded into In before h runs.
func typedTool[In any](backend, name, description string, h func(context.Context, In) (*mcp.CallToolResult, error), tweak func(*jsonschema.Schema)) registeredTool {
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("builtin tool %s: input schema: %v", name, err)) // a programming error in this file
	}
	schema.AdditionalProperties = nil // other arguments are ignored
	if tweak != nil {
		tweak(schema)
	}
	resolved, err := schema.Resolve(nil)
	if err != nil {
		panic(fmt.Sprintf("builtin tool %s: resolve input schema: %v", name, err))
	}
	return registeredTool{
		tool: &mcp.Tool{Name: name, Description: description, InputSchema: schema},
		handler: func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			instrumentation.SetBackend(ctx, backend)
			raw := req.Params.Arguments
			if len(raw) == 0 || string(raw) == "null" {
				raw = json.RawMessage("{}")
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, invalidArgs(req, err)
			}
			if err := resolved.Validate(v); err != nil {
				return nil, invalidArgs(req, err)
			}
			var in In
			if err := json.Unmarshal(raw, &in); err != nil {
				return nil, invalidArgs(req, err)
			}
			return h(ctx, in)
		},
	}
}

// invalidArgs is the JSON-RPC invalid-params error of a call.
func invalidArgs(req *mcp.CallToolRequest, err error) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid arguments for " + req.Params.Name + ": " + err.Error()}
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

type echoIn struct {
	Text string `json:"text" jsonschema:"text to echo"`
}

func echo(_ context.Context, in echoIn) (*mcp.CallToolResult, error) {
	return text(in.Text), nil
}

type addIn struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

func add(_ context.Context, in addIn) (*mcp.CallToolResult, error) {
	return text(strconv.FormatFloat(in.A+in.B, 'g', -1, 64)), nil
}

type sleepIn struct {
	MS int64 `json:"ms" jsonschema:"milliseconds to wait"`
}

func sleep(ctx context.Context, in sleepIn) (*mcp.CallToolResult, error) {
	d := time.Duration(in.MS) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return text(fmt.Sprintf("slept %d ms", in.MS)), nil
	case <-ctx.Done():
		// Returned as is, so a deadline is audited as a timeout and the
		// caller's cancellation as cancelled.
		return nil, fmt.Errorf("sleep interrupted: %w", context.Cause(ctx))
	}
}

type failIn struct {
	Message string `json:"message,omitempty" jsonschema:"the error text"`
}

func fail(_ context.Context, in failIn) (*mcp.CallToolResult, error) {
	if in.Message == "" {
		in.Message = "the fail tool always fails"
	}
	res := text(in.Message)
	res.IsError = true
	return res, nil
}
