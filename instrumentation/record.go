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
)

// maxAttrs is the most attributes an audit record carries.
const maxAttrs = 16

// maxCachedRoles bounds the cache of user.roles values.
const maxCachedRoles = 1024

// Record emits the audit record of the call c with the trace context of ctx,
// so the stored row carries its trace and span ids. It never blocks and never
// panics; problems are reported through otel.Handle.
//
// In fail-closed mode (see [WithFailClosed]) a call whose Err is
// [ErrAuditUnavailable] is kept in memory while the audit pipeline is
// unhealthy and emitted once it is healthy again.
func (a *Auditor) Record(ctx context.Context, c Call) {
	if a == nil {
		return
	}
	if ctx == nil {
		ctx = context.Background()
	}
	defer func() {
		if p := recover(); p != nil {
			otel.Handle(fmt.Errorf("instrumentation: recovered from panic while recording tool call %q: %v", c.Tool, p))
		}
	}()
	rec := a.build(ctx, &c)
	if a.health != nil && c.Err != nil && errors.Is(c.Err, ErrAuditUnavailable) && a.health.Health(ctx) != nil {
		a.keepRefused(ctx, rec)
		return
	}
	a.logger.Emit(ctx, rec)
}

// build makes the log record of c.
func (a *Auditor) build(ctx context.Context, c *Call) log.Record {
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

	var kvs [maxAttrs]attribute.KeyValue
	n := 0
	add := func(kv attribute.KeyValue) {
		kvs[n] = kv
		n++
	}
	add(otelaudit.RequestIDKey.String(id.String()))
	add(otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool))
	add(otelaudit.ToolNameKey.String(c.Tool))
	add(otelaudit.BackendNameKey.String(c.Backend))
	add(otelaudit.UserIDKey.String(subject))
	add(attribute.KeyValue{Key: otelaudit.UserRolesKey, Value: a.rolesValue(role)})
	add(otelaudit.ResponseStatusKey.String(string(st)))
	add(otelaudit.LatencyMSKey.Int64(c.Latency.Milliseconds()))
	if v, ok := a.argsValue(c.Args); ok {
		add(attribute.KeyValue{Key: otelaudit.ToolCallArgumentsKey, Value: v})
	}
	if st != otelaudit.StatusOK {
		add(otelaudit.ErrorTypeKey.String(c.errorType(st)))
		msg := c.ErrorMessage
		if msg == "" && c.Err != nil {
			msg = c.Err.Error()
		}
		if msg != "" {
			add(otelaudit.ErrorMessageKey.String(msg))
		}
	}
	if c.Method != "" {
		add(otelaudit.MCPMethodNameKey.String(c.Method))
	}
	if c.SessionID != "" {
		add(otelaudit.MCPSessionIDKey.String(c.SessionID))
	}
	if c.JSONRPCID != "" {
		add(otelaudit.JSONRPCRequestIDKey.String(c.JSONRPCID))
	}

	var rec log.Record
	rec.SetEventName(otelaudit.EventName)
	rec.SetTimestamp(start)
	if st == otelaudit.StatusOK {
		rec.SetSeverity(log.SeverityInfo)
	} else {
		rec.SetSeverity(log.SeverityWarn)
	}
	rec.AddAttributes(kvs[:n]...)
	return rec
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
