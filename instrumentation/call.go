package instrumentation

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/google/uuid"

	"github.com/sentinel-gateway/otelaudit"
)

// Call describes one tool call for [Auditor.Record]. Only Tool is needed;
// every other field has a useful zero value.
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
	// context deadline is timeout, ErrDenied and ErrAuditUnavailable are
	// denied, anything else error).
	Status otelaudit.Status
	// Err is the error the call failed with, if any.
	Err error
	// ErrorType classifies a failure (error.type). Empty means: derived
	// from Err (its Go type, or otelaudit.ErrorTypeAuditUnavailable).
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
}

// status returns the call's outcome.
// ErrDenied marks a call the gateway refused (an authorization decision, a
// policy, a rate limit). A handler that returns an error wrapping it, for
// example fmt.Errorf("role %q may not call %q: %w", role, tool, ErrDenied),
// is recorded as denied with error.type "denied" (or the Call's ErrorType),
// through Record, Wrap and both MCP adapters alike.
var ErrDenied = errors.New("denied")

func (c *Call) status() otelaudit.Status {
	if c.Status.Valid() {
		return c.Status
	}
	return statusOf(c.Err)
}

// statusOf classifies an error: nil is ok, a context deadline is timeout,
// ErrDenied and ErrAuditUnavailable are denied and anything else is error.
func statusOf(err error) otelaudit.Status {
	switch {
	case err == nil:
		return otelaudit.StatusOK
	case errors.Is(err, context.DeadlineExceeded):
		return otelaudit.StatusTimeout
	case errors.Is(err, ErrAuditUnavailable), errors.Is(err, ErrDenied):
		return otelaudit.StatusDenied
	default:
		return otelaudit.StatusError
	}
}

// errorType returns error.type for a call that did not succeed.
func (c *Call) errorType(st otelaudit.Status) string {
	if c.ErrorType != "" {
		return c.ErrorType
	}
	if c.Err == nil {
		return string(st)
	}
	if errors.Is(c.Err, ErrAuditUnavailable) {
		return otelaudit.ErrorTypeAuditUnavailable
	}
	if errors.Is(c.Err, ErrDenied) {
		return string(otelaudit.StatusDenied)
	}
	return errorTypeName(c.Err)
}

var (
	wrapErrorType  = reflect.TypeOf(fmtWrapError())
	wrapErrorsType = reflect.TypeOf(fmtWrapErrors())
	joinErrorType  = reflect.TypeOf(errors.Join(errors.New("")))
)

// errorTypeName returns the Go type of err, looking through the wrappers made
// by fmt.Errorf and errors.Join, which say nothing about the failure.
func errorTypeName(err error) string {
	for range 16 {
		t := reflect.TypeOf(err)
		var next error
		switch t {
		case wrapErrorType:
			next = errors.Unwrap(err)
		case wrapErrorsType, joinErrorType:
			if u, ok := err.(interface{ Unwrap() []error }); ok && len(u.Unwrap()) > 0 {
				next = u.Unwrap()[0]
			}
		}
		if next == nil {
			return t.String()
		}
		err = next
	}
	return reflect.TypeOf(err).String()
}
