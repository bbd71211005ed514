// Package instrumentation turns tool calls that pass an AI tool-call gateway
// (an MCP gateway) into otelaudit audit events.
//
// An [Auditor] emits one OpenTelemetry log record per tool call through the
// Logs Bridge API (go.opentelemetry.io/otel/log). The record's EventName is
// otelaudit.EventName and its attributes use the otelaudit vocabulary, so an
// otelaudit exporter can store it as one row of the audit_log table.
//
// There are three ways in:
//
//   - [Auditor.Record] records a call the gateway has already timed and
//     classified. It is the primitive every other way is built on.
//   - [Auditor.Wrap] is a generic middleware for gateways that use neither Go
//     MCP SDK: it creates the request id, starts an execute_tool span, times
//     the call, classifies the outcome, redacts the arguments and records.
//   - The adapters in the mcpsdk and mcpgo subpackages do the same for
//     github.com/modelcontextprotocol/go-sdk and github.com/mark3labs/mcp-go.
//
// Every record is bounded and redacted before it is emitted, so secrets and
// oversized values never enter the OpenTelemetry pipeline:
//
//   - values under keys that name secrets, name/value pairs and header lists
//     naming secrets, URL userinfo, key=value text and query parameters, and
//     well-known secret formats under any key ([DefaultSecretPatterns]) are
//     replaced (or, with [WithHMACKey], replaced by a keyed hash);
//   - the error text (error.message and the span status) loses every value
//     redaction removed from the call's arguments and every secret pattern
//     match, or is left out with [WithErrorText](false);
//   - the tool, backend, subject, role, MCP method, session id, JSON-RPC id
//     and error type are bounded by [WithMaxFieldBytes], the error text by
//     [WithMaxErrorBytes], both on a UTF-8 boundary with NUL bytes and invalid
//     UTF-8 replaced, the original's size and SHA-256 kept in the record
//     (otelaudit.TruncatedSizeKey);
//   - arguments larger than [WithMaxArgsBytes] are replaced by a marker
//     carrying their size and SHA-256, and nesting deeper than
//     otelaudit.MaxJSONDepth is cut.
//
// Outcomes follow the otelaudit vocabulary: ok, error, denied ([ErrDenied],
// [ErrAuditUnavailable]), timeout (a passed deadline) and cancelled (a
// context the client cancelled); error.type is a stable name, never a Go
// type name (see [ErrorTyper]).
//
// Recording never blocks and never panics: Emit is a memory operation, the
// export happens on the log processor's goroutine. Errors that have no way
// back to the caller are reported through otel.Handle.
//
// By default the Auditor fails open: calls proceed whatever the state of the
// audit pipeline. With [WithFailClosed] calls are refused with
// [ErrAuditUnavailable] while the pipeline reports itself unhealthy, and the
// refusals are recorded once it is healthy again.
package instrumentation
