package auditrow

import (
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
)

// Unknown is stored in a NOT NULL text column whose attribute was missing.
const Unknown = "unknown"

// Attribute keys that the mapping adds to a row's attributes column.
const (
	// IssuesKey lists, as strings, every change the mapping made to the
	// record (missing attributes, sanitised values, unexpected types).
	IssuesKey = "otelaudit.mapping.issues"
	// MissingKey lists the required attributes the record did not carry.
	MissingKey = "otelaudit.mapping.missing"
	// RawKey holds the raw values of columns the mapping had to change,
	// by attribute key; a value that is not valid text is base64-encoded.
	RawKey = "otelaudit.mapping.raw"
	// BodyKey holds the log record body, when an audit record has one.
	BodyKey = "otelaudit.log.body"
)

// Record is the exporter-neutral view of one log record.
type Record struct {
	Timestamp         time.Time
	ObservedTimestamp time.Time
	TraceID           trace.TraceID
	SpanID            trace.SpanID
	EventName         string
	ServiceName       string
	Body              attribute.Value
	Attributes        []attribute.KeyValue
}

// IsAuditEvent reports whether a record with this event name is an audit
// event. Records that are not are never written to audit_log.
func IsAuditEvent(eventName string) bool { return eventName == otelaudit.EventName }

// Row is one audit_log row. Empty strings and nil slices are stored as NULL
// in the nullable columns.
type Row struct {
	RequestID      uuid.UUID
	Timestamp      time.Time
	ClientSubject  string
	ClientRole     string
	ToolName       string
	BackendName    string
	RequestArgs    []byte // JSON; nil is NULL
	ResponseStatus string
	ErrorMessage   string // "" is NULL
	LatencyMS      int64
	TraceID        string // hex; "" is NULL
	SpanID         string // hex; "" is NULL
	ServiceName    string // "" is NULL
	Attributes     []byte // JSON object; nil is NULL
}
