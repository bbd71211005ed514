package instrumentation

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

// Call describes one tool call for [Auditor.Record]. Only Tool is needed;
// every other field has a useful zero value.
//
// The Auditor bounds what it records of a Call, never the Call itself: the
// string fields (Tool, Backend, Subject, Role, Method, SessionID, JSONRPCID,
// ErrorType) to [WithMaxFieldBytes], the error text to [WithMaxErrorBytes],
// scrubbed of the secrets redaction removed from Args (see [WithErrorText]).
type Call struct {
	// RequestID identifies the call. The zero value means: generate a
	// UUIDv7.
	RequestID uuid.UUID
	// Start is when the call started. The zero value means: now minus
	// Latency.
	Start time.Time
	// Subject is the authenticated caller. Empty Subject and Role mean: ask
	// the Auditor's identity hook (see [WithIdentity]).
	Subject string
	// Role is the caller's role (several roles joined with ",").
	Role string
	// Tool is the name of the tool called.
	Tool string
	// Backend names the backend that served the call.
	Backend string
	// Args are the call's arguments: any JSON-marshalable value, or a
	// json.RawMessage. They are redacted and size-limited before the record
	// is emitted; the value itself is never modified.
	Args any
	// Status is the outcome. Empty means: derived from Err (nil is ok, a
	// context deadline is timeout, context.Canceled is cancelled, ErrDenied
	// and ErrAuditUnavailable are denied, anything else error).
	Status otelaudit.Status
	// Err is the error the call failed with, if any.
	Err error
	// ErrorType classifies a failure (error.type). Empty means: derived
	// from the status and Err: "timeout", "cancelled", "denied",
	// "audit_unavailable", the ErrorType of an [ErrorTyper] in Err's chain,
	// else "_OTHER" (the semantic conventions' fallback); never a Go type
	// name.
	ErrorType string
	// ErrorMessage is the failure's text (error.message). Empty means:
	// Err.Error().
	ErrorMessage string
	// Latency is how long the call took.
	Latency time.Duration
	// Method is the MCP method the call came in with (otelaudit.MethodToolsCall)
	// or empty when the call did not come over MCP.
	Method string
	// SessionID is the MCP session of the call, if any.
	SessionID string
	// JSONRPCID is the JSON-RPC id of the request, if any.
	JSONRPCID string
	// Attributes are extra attributes the gateway vouches for (such as
	// otelaudit.ClientAddressKey or the otelaudit.Aggregate* keys), stored
	// in the row's attributes, never in its arguments. They are bounded:
	// at most otelaudit.DefaultMaxExtraAttributes are recorded; a string
	// value is cut to [WithMaxFieldBytes] with the markers of the original
	// (see otelaudit.TruncatedSuffix), and a slice or map value longer than
	// that is recorded as its text, cut the same way. An attribute whose key
	// the record sets itself (request id, status, tool, subject, role,
	// error, MCP method, session and JSON-RPC ids, arguments, and any
	// other "otelaudit." key but the otelaudit.Aggregate* ones) is ignored:
	// a Call can never override what the Auditor records. So is one with an
	// empty key, or a key longer than the field limit or not clean UTF-8.
	// Of several with the same key the last one is recorded. How many were
	// not recorded is recorded as otelaudit.DroppedAttributesKey. The slice
	// is never modified.
	Attributes []attribute.KeyValue
}

// ErrDenied marks a call the gateway refused (an authorization decision, a
// policy, a rate limit). A handler that returns an error wrapping it, for
// example fmt.Errorf("role %q may not call %q: %w", role, tool, ErrDenied),
// is recorded as denied with error.type "denied" (or the Call's ErrorType),
// through Record, Wrap and both MCP adapters alike.
var ErrDenied = errors.New("instrumentation: denied")

// An ErrorTyper is an error that names its own error.type: a short, stable,
// low-cardinality name such as "quota_exceeded". An error anywhere in the
// chain of Call.Err that implements it (found with errors.As) sets the
// recorded error.type, unless Call.ErrorType is set.
type ErrorTyper interface {
	error
	ErrorType() string
}

// status returns the call's outcome.
func (c *Call) status() otelaudit.Status {
	if c.Status.Valid() {
		return c.Status
	}
	return statusOf(c.Err)
}

// statusOf classifies an error: nil is ok, a context deadline is timeout, a
// cancelled context is cancelled, ErrDenied and ErrAuditUnavailable are
// denied and anything else is error.
func statusOf(err error) otelaudit.Status {
	switch {
	case err == nil:
		return otelaudit.StatusOK
	case errors.Is(err, context.DeadlineExceeded):
		return otelaudit.StatusTimeout
	case errors.Is(err, context.Canceled):
		return otelaudit.StatusCancelled
	case errors.Is(err, ErrAuditUnavailable), errors.Is(err, ErrDenied):
		return otelaudit.StatusDenied
	default:
		return otelaudit.StatusError
	}
}

// contextStatus returns the outcome and error.type of a call that failed
// while ctx was done, and false while ctx is not done. The cause of ctx
// decides (context.Cause): a passed deadline is timeout, a plain
// cancellation (the client's, as MCP's notifications/cancelled does) is
// cancelled, and a cause of its own (context.WithCancelCause, say a gateway
// shutting down) is classified like Call.Err.
func contextStatus(ctx context.Context) (otelaudit.Status, string, bool) {
	if ctx.Err() == nil {
		return "", "", false
	}
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, context.DeadlineExceeded):
		return otelaudit.StatusTimeout, otelaudit.ErrorTypeTimeout, true
	case errors.Is(cause, context.Canceled):
		return otelaudit.StatusCancelled, otelaudit.ErrorTypeCancelled, true
	}
	c := Call{Err: cause}
	st := c.status()
	return st, c.errorType(st), true
}

// errorType returns error.type for a call that did not succeed: the Call's
// ErrorType, else a stable name from the otelaudit vocabulary, never a Go
// type name.
func (c *Call) errorType(st otelaudit.Status) string {
	if c.ErrorType != "" {
		return c.ErrorType
	}
	switch st {
	case otelaudit.StatusTimeout:
		return otelaudit.ErrorTypeTimeout
	case otelaudit.StatusCancelled:
		return otelaudit.ErrorTypeCancelled
	}
	if c.Err == nil {
		return string(st)
	}
	var et ErrorTyper
	switch {
	case errors.Is(c.Err, ErrAuditUnavailable):
		return otelaudit.ErrorTypeAuditUnavailable
	case errors.Is(c.Err, ErrDenied):
		return otelaudit.ErrorTypeDenied
	case errors.Is(c.Err, context.DeadlineExceeded):
		return otelaudit.ErrorTypeTimeout
	case errors.Is(c.Err, context.Canceled):
		return otelaudit.ErrorTypeCancelled
	case errors.As(c.Err, &et):
		if t := et.ErrorType(); t != "" {
			return t
		}
	}
	return otelaudit.ErrorTypeOther
}
