package instrumentation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/internal/bound"
)

// maxAttrs is the most attributes an audit record carries before markers
// (14); the markers of cut fields (two per field) go to a slice of their own,
// allocated only when a field is cut.
const maxAttrs = 16

// maxCachedRoles bounds the cache of user.roles values.
const maxCachedRoles = 1024

// Record emits the audit record of the call c with the trace context of ctx,
// so the stored row carries its trace and span ids. It never blocks and never
// panics; problems are reported through otel.Handle.
//
// Every field is bounded and cleaned before it is recorded (see
// [WithMaxFieldBytes], [WithMaxErrorBytes]), the arguments are redacted and
// the error text is scrubbed of the secrets redaction removed from them (see
// [WithErrorText]).
//
// In fail-closed mode (see [WithFailClosed]) a call whose Err is
// [ErrAuditUnavailable] is kept in memory while the audit pipeline is
// unhealthy and emitted once it is healthy again.
func (a *Auditor) Record(ctx context.Context, c Call) {
	a.record(ctx, &c)
}

// record records c and returns the error text it stored ("" for none), which
// is also all a span may say about the failure.
func (a *Auditor) record(ctx context.Context, c *Call) (msg string) {
	if a == nil {
		return ""
	}
	if ctx == nil {
		ctx = context.Background()
	}
	defer func() {
		if p := recover(); p != nil {
			msg = ""
			tool, _ := bound.String(c.Tool, a.maxFieldBytes)
			otel.Handle(fmt.Errorf("instrumentation: recovered from panic while recording tool call %q: %v", tool, p))
		}
	}()
	rec, msg := a.build(ctx, c)
	if a.health != nil && c.Err != nil && errors.Is(c.Err, ErrAuditUnavailable) && a.health.Health(ctx) != nil {
		a.keepRefused(ctx, rec)
		return msg
	}
	a.logger.Emit(ctx, rec)
	return msg
}

// attrs collects the attributes of one record on the stack.
type attrs struct {
	kvs [maxAttrs]attribute.KeyValue
	n   int
	// marks holds the markers of cut fields (rare: hostile or broken
	// input).
	marks []attribute.KeyValue
}

func (b *attrs) add(kv attribute.KeyValue) {
	if b.n < len(b.kvs) {
		b.kvs[b.n] = kv
		b.n++
	} else {
		b.marks = append(b.marks, kv)
	}
}

// str adds the field key with the value s bounded to limit bytes, and the
// markers of the original when s had to be changed.
func (b *attrs) str(key attribute.Key, s string, limit int) string {
	v, changed := bound.String(s, limit)
	b.add(key.String(v))
	if changed {
		b.markers(key, s)
	}
	return v
}

func (b *attrs) markers(key attribute.Key, orig string) {
	size, sum := bound.Markers(key, orig)
	b.marks = append(b.marks, size, sum)
}

// build makes the log record of c and returns the error text it holds.
func (a *Auditor) build(ctx context.Context, c *Call) (log.Record, string) {
	start := c.Start
	if start.IsZero() {
		start = time.Now().Add(-c.Latency)
	}
	id := c.RequestID
	if id == uuid.Nil {
		id = newRequestID()
	}
	subject, role := c.Subject, c.Role
	if subject == "" && role == "" && a.identity != nil {
		subject, role = a.safeIdentity(ctx)
	}
	st := c.status()

	// The error text, when there is one to record: redaction collects the
	// secrets it removes from the arguments so that they can be removed
	// from the text as well.
	var rawMsg string
	if st != otelaudit.StatusOK && a.errorText {
		rawMsg = c.ErrorMessage
		if rawMsg == "" && c.Err != nil {
			rawMsg = c.Err.Error()
		}
	}

	b := &attrs{}
	max := a.maxFieldBytes
	b.add(otelaudit.RequestIDKey.String(id.String()))
	b.add(otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool))
	b.str(otelaudit.ToolNameKey, c.Tool, max)
	b.str(otelaudit.BackendNameKey, c.Backend, max)
	b.str(otelaudit.UserIDKey, subject, max)
	role2, roleCut := bound.String(role, max)
	b.add(attribute.KeyValue{Key: otelaudit.UserRolesKey, Value: a.rolesValue(role2)})
	if roleCut {
		b.markers(otelaudit.UserRolesKey, role)
	}
	b.add(otelaudit.ResponseStatusKey.String(string(st)))
	b.add(otelaudit.LatencyMSKey.Int64(c.Latency.Milliseconds()))
	// Only a call with error text to scrub pays for collecting.
	var found *[]string
	if rawMsg != "" && c.Args != nil {
		found = new([]string)
	}
	if v, ok := a.argsValue(c.Args, found); ok {
		b.add(attribute.KeyValue{Key: otelaudit.ToolCallArgumentsKey, Value: v})
	}
	var secrets []string
	if found != nil {
		secrets = *found
	}
	var msg string
	if st != otelaudit.StatusOK {
		b.str(otelaudit.ErrorTypeKey, c.errorType(st), max)
		if rawMsg != "" {
			scrubbed := a.scrubError(rawMsg, secrets)
			msg = b.str(otelaudit.ErrorMessageKey, scrubbed, a.maxErrorBytes)
		}
	}
	if c.Method != "" {
		b.str(otelaudit.MCPMethodNameKey, c.Method, max)
	}
	if c.SessionID != "" {
		b.str(otelaudit.MCPSessionIDKey, c.SessionID, max)
	}
	if c.JSONRPCID != "" {
		b.str(otelaudit.JSONRPCRequestIDKey, c.JSONRPCID, max)
	}
	if len(c.Attributes) > 0 {
		b.extra(c.Attributes, max)
	}

	var rec log.Record
	rec.SetEventName(otelaudit.EventName)
	rec.SetTimestamp(start)
	if st == otelaudit.StatusOK {
		rec.SetSeverity(log.SeverityInfo)
	} else {
		rec.SetSeverity(log.SeverityWarn)
	}
	rec.AddAttributes(b.kvs[:b.n]...)
	if len(b.marks) > 0 {
		rec.AddAttributes(b.marks...)
	}
	return rec, msg
}

// rolesValue returns the user.roles value of role: its comma-separated parts.
// The values of the roles seen are cached, they are few.
func (a *Auditor) rolesValue(role string) attribute.Value {
	if v, ok := a.roles.Load(role); ok {
		return v.(attribute.Value)
	}
	var v attribute.Value
	if role == "" {
		v = attribute.StringSliceValue(nil)
	} else {
		parts := strings.Split(role, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		v = attribute.StringSliceValue(parts)
	}
	if a.rolesSize.Load() < maxCachedRoles {
		if _, loaded := a.roles.LoadOrStore(role, v); !loaded {
			a.rolesSize.Add(1)
		}
	}
	return v
}

// newRequestID returns a UUIDv7 (google/uuid: time-ordered, monotonic
// within a millisecond). Should the system's random source ever fail, a
// random UUIDv4 from the runtime's generator keeps the call recorded.
func newRequestID() uuid.UUID {
	if id, err := uuid.NewV7(); err == nil {
		return id
	}
	var u uuid.UUID
	r1, r2 := rand.Uint64(), rand.Uint64()
	binary.LittleEndian.PutUint64(u[:8], r1)
	binary.LittleEndian.PutUint64(u[8:], r2)
	u[6] = 0x40 | u[6]&0x0f // version 4
	u[8] = 0x80 | u[8]&0x3f // variant 10
	return u
}
