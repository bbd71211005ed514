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
// Arguments are redacted before the record is emitted, so secrets never enter
// the OpenTelemetry pipeline: values under keys that name secrets are
// replaced (or, with [WithHMACKey], replaced by a keyed hash), and arguments
// larger than [WithMaxArgsBytes] are replaced by a marker carrying their size
// and SHA-256.
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
