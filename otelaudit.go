// Package otelaudit holds the vocabulary shared by everything that emits or
// stores otelaudit audit events: the event name, the attribute keys and the
// response status values.
//
// One tool call that passes a gateway becomes one OpenTelemetry log record
// whose EventName is [EventName] and whose attributes use the keys below. The
// instrumentation package emits such records; the exporter package and the
// pgaudit Collector exporter turn them into rows of the audit_log table.
//
// The package depends on nothing but go.opentelemetry.io/otel/attribute so
// that emitters and exporters can share it cheaply.
package otelaudit

import "go.opentelemetry.io/otel/attribute"

// EventName is the EventName of every audit log record. Records with any
// other event name are not audit events and are never written to audit_log.
const EventName = "otelaudit.tool_call"

// OperationExecuteTool is the value of [GenAIOperationNameKey] on every audit
// record, as the GenAI semantic conventions name a tool execution.
const OperationExecuteTool = "execute_tool"

// MethodToolsCall is the value of [MCPMethodNameKey] for a call that came over
// MCP.
const MethodToolsCall = "tools/call"

// Status is the outcome of a tool call as stored in audit_log.response_status.
type Status string

// The outcomes of a tool call.
const (
	// StatusOK is a call that reached its backend and succeeded.
	StatusOK Status = "ok"
	// StatusError is a call that failed, in the gateway or in the tool.
	StatusError Status = "error"
	// StatusDenied is a call the gateway refused (authentication,
	// authorization, or an audit pipeline that cannot record it).
	StatusDenied Status = "denied"
	// StatusTimeout is a call whose deadline passed.
	StatusTimeout Status = "timeout"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusOK, StatusError, StatusDenied, StatusTimeout:
		return true
	}
	return false
}

// Error types set as [ErrorTypeKey] by otelaudit itself. Other failures carry
// the Go type of the error, following the semantic conventions.
const (
	// ErrorTypeToolError is set when an MCP tool result has isError.
	ErrorTypeToolError = "tool_error"
	// ErrorTypeAuditUnavailable is set on calls refused in fail-closed mode
	// because the audit pipeline could not record them durably.
	ErrorTypeAuditUnavailable = "audit_unavailable"
)

// Attribute keys of an audit record. Keys defined by the OpenTelemetry
// semantic conventions use their exact strings; the otelaudit.* keys are the
// project's own.
const (
	// RequestIDKey is the UUID (v7, made by the middleware) identifying the
	// call. It is unique in audit_log and makes every write idempotent.
	RequestIDKey = attribute.Key("otelaudit.request.id")
	// BackendNameKey names the backend that served the call.
	BackendNameKey = attribute.Key("otelaudit.backend.name")
	// ResponseStatusKey holds the call's [Status].
	ResponseStatusKey = attribute.Key("otelaudit.response.status")
	// LatencyMSKey is the duration of the call in milliseconds.
	LatencyMSKey = attribute.Key("otelaudit.latency_ms")

	// ToolNameKey is the semantic-convention key for the tool's name.
	ToolNameKey = attribute.Key("gen_ai.tool.name")
	// ToolCallArgumentsKey holds the (redacted) call arguments, as a map
	// value or a JSON string.
	ToolCallArgumentsKey = attribute.Key("gen_ai.tool.call.arguments")
	// GenAIOperationNameKey is always [OperationExecuteTool] on audit records.
	GenAIOperationNameKey = attribute.Key("gen_ai.operation.name")
	// UserIDKey is the authenticated subject of the caller.
	UserIDKey = attribute.Key("user.id")
	// UserRolesKey holds the caller's roles as a string slice.
	UserRolesKey = attribute.Key("user.roles")
	// ErrorMessageKey is the error text of a failed call.
	ErrorMessageKey = attribute.Key("error.message")
	// ErrorTypeKey classifies a failed call.
	ErrorTypeKey = attribute.Key("error.type")
	// MCPMethodNameKey is the MCP method, [MethodToolsCall] for tool calls.
	MCPMethodNameKey = attribute.Key("mcp.method.name")
	// MCPSessionIDKey is the MCP session the call belongs to.
	MCPSessionIDKey = attribute.Key("mcp.session.id")
	// JSONRPCRequestIDKey is the JSON-RPC id of the request.
	JSONRPCRequestIDKey = attribute.Key("jsonrpc.request.id")
)
