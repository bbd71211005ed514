// Package otelaudit holds the vocabulary shared by everything that emits or
// stores otelaudit audit events: the event name, the attribute keys and the
// response status values.
//
// One tool call that passes a gateway becomes one OpenTelemetry log record
// whose EventName is [EventName] and whose attributes use the keys below. The
// instrumentation package emits such records; the exporter package and the
// pgaudit Collector exporter turn them into rows of the audit_log table.
//
// It is also the single home of the limits every part applies (the
// Default*/Max* constants) and of the marker keys that say a value was cut
// (see [TruncatedSuffix], [TruncatedSizeKey] and the Marker* keys). The
// UTF-8-safe cutting itself lives in the module's internal/bound package,
// which the instrumentation and the exporters' shared mapping both use.
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
	// StatusCancelled is a call the client cancelled (its context was
	// cancelled, not by a deadline; over MCP: notifications/cancelled).
	StatusCancelled Status = "cancelled"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusOK, StatusError, StatusDenied, StatusTimeout, StatusCancelled:
		return true
	}
	return false
}

// Error types set as [ErrorTypeKey]. Following the MCP semantic conventions,
// a JSON-RPC error carries its code as a string ("-32602") and a tool result
// with isError carries [ErrorTypeToolError]; every other failure carries one
// of the stable names below, never a Go type name.
const (
	// ErrorTypeToolError is set when an MCP tool result has isError.
	ErrorTypeToolError = "tool_error"
	// ErrorTypeAuditUnavailable is set on calls refused in fail-closed mode
	// because the audit pipeline could not record them durably.
	ErrorTypeAuditUnavailable = "audit_unavailable"
	// ErrorTypeTimeout is set on a call whose deadline passed
	// ([StatusTimeout]).
	ErrorTypeTimeout = "timeout"
	// ErrorTypeCancelled is set on a call the client cancelled
	// ([StatusCancelled]).
	ErrorTypeCancelled = "cancelled"
	// ErrorTypeDenied is set on a call the gateway's policy refused
	// ([StatusDenied]).
	ErrorTypeDenied = "denied"
	// ErrorTypeUnauthenticated is set on a call refused because the caller
	// could not be authenticated.
	ErrorTypeUnauthenticated = "unauthenticated"
	// ErrorTypeOther is the semantic conventions' fallback for a failure
	// the instrumentation cannot classify further.
	ErrorTypeOther = "_OTHER"
)

// Limits. Every field of an audit record is bounded where the record is made
// (instrumentation, with options to change the defaults) and again where it
// is mapped to a row (the exporters' shared mapping), because the Collector
// path receives records from anyone who speaks OTLP.
const (
	// DefaultMaxFieldBytes bounds, in bytes, each of the tool name, backend
	// name, subject, role, MCP method, MCP session id and JSON-RPC id.
	DefaultMaxFieldBytes = 256
	// DefaultMaxErrorBytes bounds, in bytes, the error text
	// (error.message).
	DefaultMaxErrorBytes = 4096
	// DefaultMaxArgsBytes is the instrumentation's default bound on a
	// call's arguments as JSON. Larger arguments are replaced by the
	// argument marker (see [MarkerTruncatedKey]).
	DefaultMaxArgsBytes = 64 << 10
	// MaxStoredArgsBytes is the mapping's hard bound on the arguments
	// document stored in request_args, whatever the emitter did.
	MaxStoredArgsBytes = 1 << 20
	// MaxJSONDepth is the one nesting limit of arguments and attribute
	// values, everywhere: the depth of an object or array is its nesting
	// level (the top-level object or array is at depth 1, an array inside
	// it at depth 2), and one at depth > MaxJSONDepth is replaced by
	// [DepthLimitValue]. Scalars are never cut for depth. JSON held in a
	// string continues the count of the string's position.
	MaxJSONDepth = 32
	// DefaultMaxExtraAttributes bounds the extra attributes of one call
	// (instrumentation.Call.Attributes) that are recorded; the rest are
	// counted in [DroppedAttributesKey].
	DefaultMaxExtraAttributes = 32
)

// Markers of values that were cut.
//
// A string field (tool name, subject, error text, …) that is longer than its
// limit, or that had to be made valid UTF-8 without NUL bytes, is stored as
// its longest UTF-8-safe prefix followed by [TruncatedSuffix], within the
// limit, and the record gains two attributes: [TruncatedSizeKey] of the
// field's key with the byte length of the original and [TruncatedSHA256Key]
// with the hex SHA-256 of the original. For example a 3,000-byte tool name
// gives gen_ai.tool.name "aaa…[TRUNCATED]",
// otelaudit.truncated.gen_ai.tool.name.size 3000 and
// otelaudit.truncated.gen_ai.tool.name.sha256 "9f86…".
//
// Arguments (gen_ai.tool.call.arguments) that are too large or invalid are
// replaced as a whole by a marker object holding [MarkerTruncatedKey] or
// [MarkerInvalidKey], [MarkerSizeKey] and [MarkerSHA256Key].
const (
	// TruncatedSuffix ends a string value that was cut.
	TruncatedSuffix = "…[TRUNCATED]"
	// TruncatedKeyPrefix starts the attribute keys that describe the
	// original of a cut field (see [TruncatedSizeKey]).
	TruncatedKeyPrefix = "otelaudit.truncated."
	// DepthLimitValue replaces a JSON value nested deeper than
	// [MaxJSONDepth].
	DepthLimitValue = "[DEPTH LIMIT]"

	// MarkerTruncatedKey is true in the marker of arguments larger than
	// the limit.
	MarkerTruncatedKey = "otelaudit.truncated"
	// MarkerInvalidKey holds the reason in the marker of arguments that
	// cannot be marshalled to JSON or are not valid JSON.
	MarkerInvalidKey = "otelaudit.invalid"
	// MarkerSizeKey holds the size in bytes of the original arguments as
	// JSON.
	MarkerSizeKey = "otelaudit.size"
	// MarkerSHA256Key holds the hex SHA-256 of the original arguments as
	// JSON when redaction read them in full and found no secret in them.
	// Otherwise (a plain hash would let a reader confirm a guessed secret)
	// the instrumentation gives the HMAC-SHA256 under its HMAC key
	// ("hmac-sha256:<hex>"), or leaves the key out.
	MarkerSHA256Key = "otelaudit.sha256"
)

// TruncatedSizeKey returns the attribute key that holds the byte length of
// the original value of the cut field field:
// "otelaudit.truncated.<field>.size".
func TruncatedSizeKey(field attribute.Key) attribute.Key {
	return TruncatedKeyPrefix + field + ".size"
}

// TruncatedSHA256Key returns the attribute key that holds the hex SHA-256 of
// the original value of the cut field field:
// "otelaudit.truncated.<field>.sha256".
func TruncatedSHA256Key(field attribute.Key) attribute.Key {
	return TruncatedKeyPrefix + field + ".sha256"
}

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

	// DroppedAttributesKey is the number of a call's extra attributes
	// (instrumentation.Call.Attributes) that were not recorded: beyond
	// [DefaultMaxExtraAttributes], colliding with a key the audit record
	// sets itself, or with an unusable key. Absent when none was dropped.
	DroppedAttributesKey = attribute.Key("otelaudit.attributes.dropped")
)

// Attribute keys a gateway may add to a call (instrumentation.Call.Attributes)
// and that are stored in the row's attributes.
const (
	// ClientAddressKey is the semantic-convention key for the address of
	// the client the request came from.
	ClientAddressKey = attribute.Key("client.address")
	// AggregateCountKey is how many requests a row stands for when a
	// gateway aggregates them into one (the example gateway's anonymous
	// refusals).
	AggregateCountKey = attribute.Key("otelaudit.aggregate.count")
	// AggregateFirstTimeKey is when the first of the requests an aggregated
	// row stands for arrived (RFC 3339 with nanoseconds, UTC).
	AggregateFirstTimeKey = attribute.Key("otelaudit.aggregate.first_time")
	// AggregateLastTimeKey is when the last of them arrived (RFC 3339 with
	// nanoseconds, UTC).
	AggregateLastTimeKey = attribute.Key("otelaudit.aggregate.last_time")
)
