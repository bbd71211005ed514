package auditrow

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/internal/bound"
)

// requestIDSpace is the UUIDv5 namespace of request ids derived by the
// mapping, for records without one or with one that is not a UUID.
var requestIDSpace = uuid.MustParse("6f1d3c2e-8a4b-5c7d-9e0f-a1b2c3d4e5f6")

// Mapper turns records into rows. The JSON of the rows it maps lives in an
// arena that [Mapper.Reset] recycles: rows must not be used after Reset. A
// Mapper is not safe for concurrent use.
type Mapper struct {
	// MaxArgsBytes bounds request_args; zero or less means
	// otelaudit.MaxStoredArgsBytes, which is also the largest allowed.
	MaxArgsBytes int
	// MaxFieldBytes bounds each of the tool name, backend name, subject,
	// role, response status, service name, MCP method, MCP session id and
	// JSON-RPC id; zero or less means otelaudit.DefaultMaxFieldBytes. Set
	// it like the instrumentation's limit. Values much above 2,000 bytes can
	// exceed PostgreSQL's index row limit for the indexed columns.
	MaxFieldBytes int
	// MaxErrorBytes bounds the error text; zero or less means
	// otelaudit.DefaultMaxErrorBytes.
	MaxErrorBytes int
	// Now supplies the timestamp of a record that has none; nil is time.Now.
	Now func() time.Time

	arena   []byte
	scratch []byte
	issues  []string
	missing []string
	raw     []attribute.KeyValue
	cut     []attribute.KeyValue // markers of cut fields, for the attributes
}

// Reset lets the mapper reuse the memory of rows it mapped before.
func (m *Mapper) Reset() { m.arena = m.arena[:0] }

// MapAll maps every audit record of recs, appending the rows to dst. It
// returns the rows and the number of records skipped because they were not
// audit events.
func (m *Mapper) MapAll(dst []Row, recs []Record) ([]Row, int) {
	skipped := 0
	for i := range recs {
		if !IsAuditEvent(recs[i].EventName) {
			skipped++
			continue
		}
		dst = append(dst, m.Map(&recs[i]))
	}
	return dst, skipped
}

// Map maps one record to a row. It never fails; see the package doc.
func (m *Mapper) Map(rec *Record) Row {
	m.issues, m.missing, m.raw, m.cut = m.issues[:0], m.missing[:0], m.raw[:0], m.cut[:0]
	var (
		row                     Row
		haveID, haveSubject     bool
		haveRole, haveTool      bool
		haveBackend, haveStatus bool
		haveLatency             bool
		requestID, args         attribute.Value
		haveArgs                bool
	)

	// Attributes that are not columns go to the attributes object.
	attrs := m.scratch[:0]
	attrs = append(attrs, '{')
	first := true
	addAttr := func(key string, v attribute.Value) {
		if !first {
			attrs = append(attrs, ',')
		}
		first = false
		var c1, c2 bool
		attrs, c1 = appendString(attrs, key)
		attrs = append(attrs, ':')
		attrs, c2 = appendValue(attrs, v, 1)
		if c1 || c2 {
			m.issue("%s: sanitised (NUL, invalid UTF-8, non-finite number or nesting deeper than %d)", truncate(key, 64), otelaudit.MaxJSONDepth)
		}
	}

	for _, kv := range rec.Attributes {
		switch kv.Key {
		case otelaudit.RequestIDKey:
			requestID, haveID = kv.Value, true
		case otelaudit.UserIDKey:
			row.ClientSubject, haveSubject = m.text(kv, m.fieldLimit()), true
		case otelaudit.UserRolesKey:
			row.ClientRole, haveRole = m.roles(kv), true
		case otelaudit.ToolNameKey:
			row.ToolName, haveTool = m.text(kv, m.fieldLimit()), true
		case otelaudit.BackendNameKey:
			row.BackendName, haveBackend = m.text(kv, m.fieldLimit()), true
		case otelaudit.ResponseStatusKey:
			row.ResponseStatus, haveStatus = m.text(kv, m.fieldLimit()), true
		case otelaudit.ErrorMessageKey:
			row.ErrorMessage = m.text(kv, m.errorLimit())
		case otelaudit.MCPMethodNameKey, otelaudit.MCPSessionIDKey, otelaudit.JSONRPCRequestIDKey, otelaudit.ErrorTypeKey:
			// Capped fields kept in the attributes object.
			addAttr(string(kv.Key), m.attrField(kv))
		case otelaudit.LatencyMSKey:
			row.LatencyMS, haveLatency = m.latency(kv), true
		case otelaudit.ToolCallArgumentsKey:
			args, haveArgs = kv.Value, true
		default:
			addAttr(string(kv.Key), kv.Value)
		}
	}

	row.ClientSubject = m.required(row.ClientSubject, haveSubject, otelaudit.UserIDKey)
	row.ClientRole = m.required(row.ClientRole, haveRole, otelaudit.UserRolesKey)
	row.ToolName = m.required(row.ToolName, haveTool, otelaudit.ToolNameKey)
	row.BackendName = m.required(row.BackendName, haveBackend, otelaudit.BackendNameKey)
	row.ResponseStatus = m.required(row.ResponseStatus, haveStatus, otelaudit.ResponseStatusKey)
	if !haveLatency {
		m.missing = append(m.missing, string(otelaudit.LatencyMSKey))
	}

	row.Timestamp = m.timestamp(rec)
	if rec.TraceID.IsValid() {
		row.TraceID = rec.TraceID.String()
	}
	if rec.SpanID.IsValid() {
		row.SpanID = rec.SpanID.String()
	}
	row.ServiceName = m.bounded("service.name", rec.ServiceName, m.fieldLimit())
	if haveArgs {
		row.RequestArgs = m.args(args)
	}
	if rec.Body.Type() != attribute.EMPTY {
		addAttr(BodyKey, rec.Body)
	}

	// The request id comes last: a derived one hashes everything else.
	row.RequestID = m.requestID(rec, requestID, haveID, attrs, &row)

	if len(m.missing) > 0 {
		addAttr(MissingKey, attribute.StringSliceValue(m.missing))
		for _, k := range m.missing {
			m.issues = append(m.issues, k+": missing")
		}
	}
	for _, kv := range m.cut {
		addAttr(string(kv.Key), kv.Value)
	}
	if len(m.raw) > 0 {
		addAttr(RawKey, attribute.MapValue(m.raw...))
	}
	if len(m.issues) > 0 {
		addAttr(IssuesKey, attribute.StringSliceValue(m.issues))
	}
	attrs = append(attrs, '}')
	if len(attrs) > otelaudit.MaxStoredArgsBytes {
		attrs = m.attrsMarker(attrs)
	}
	m.scratch = attrs
	if !first {
		row.Attributes = m.keep(attrs)
	}
	return row
}

// attrsMarker replaces an attributes object larger than
// otelaudit.MaxStoredArgsBytes with a marker of its size and SHA-256 and
// the mapping's issues, in m.scratch's memory after doc.
func (m *Mapper) attrsMarker(doc []byte) []byte {
	sum := sha256.Sum256(doc)
	out := fmt.Appendf(doc[len(doc):], `{"%s":true,"%s":%d,"%s":"%s",`, otelaudit.MarkerTruncatedKey,
		otelaudit.MarkerSizeKey, len(doc), otelaudit.MarkerSHA256Key, hex.EncodeToString(sum[:]))
	out, _ = appendString(out, IssuesKey)
	out = append(out, ':')
	m.issue("attributes: %d bytes exceed the %d-byte limit; replaced by a size and SHA-256 marker", len(doc), otelaudit.MaxStoredArgsBytes)
	if len(m.issues) > 64 {
		m.issues = append(m.issues[:63], m.issues[len(m.issues)-1])
	}
	out, _ = appendValue(out, attribute.StringSliceValue(m.issues), 1)
	return append(out, '}')
}

func (m *Mapper) fieldLimit() int {
	if m.MaxFieldBytes > 0 {
		return m.MaxFieldBytes
	}
	return otelaudit.DefaultMaxFieldBytes
}

func (m *Mapper) errorLimit() int {
	if m.MaxErrorBytes > 0 {
		return m.MaxErrorBytes
	}
	return otelaudit.DefaultMaxErrorBytes
}

// bounded makes s storable in a TEXT column and cuts it to limit bytes
// (see bound.String). A value that is only sanitised keeps its raw value
// (base64) in RawKey; one that is cut gets the size and SHA-256 of the
// original under otelaudit.TruncatedSizeKey and TruncatedSHA256Key.
func (m *Mapper) bounded(key, s string, limit int) string {
	out, changed := bound.String(s, limit)
	if !changed {
		return s
	}
	if len(s) <= limit {
		m.keepRaw(key, attribute.StringValue(base64.StdEncoding.EncodeToString([]byte(s))))
		m.issue("%s: NUL bytes or invalid UTF-8 replaced by U+FFFD (raw value base64-encoded in %s)", truncate(key, 64), RawKey)
		return out
	}
	size, sum := bound.Markers(attribute.Key(key), s)
	m.cut = append(m.cut, size, sum)
	m.issue("%s: %d bytes cut to %d (size and SHA-256 of the original in %s)", truncate(key, 64), len(s), limit, otelaudit.TruncatedSizeKey(attribute.Key(key)))
	return out
}

// keep copies b into the arena and returns the copy.
func (m *Mapper) keep(b []byte) []byte {
	start := len(m.arena)
	m.arena = append(m.arena, b...)
	return m.arena[start:len(m.arena):len(m.arena)]
}

func (m *Mapper) issue(format string, args ...any) {
	m.issues = append(m.issues, fmt.Sprintf(format, args...))
}

// keepRaw keeps the raw value of a column the mapping changed.
func (m *Mapper) keepRaw(key string, v attribute.Value) {
	m.raw = append(m.raw, attribute.KeyValue{Key: attribute.Key(key), Value: v})
}

// keepRawBounded keeps the raw value of a column the mapping changed when
// its text fits in limit bytes; a larger one is described by its size and
// SHA-256 instead, so that the raw copy never undoes a cap.
func (m *Mapper) keepRawBounded(key string, v attribute.Value, limit int) {
	if v.Type() == attribute.STRING && len(v.AsString()) <= limit && bound.Clean(v.AsString()) {
		m.keepRaw(key, v)
		return
	}
	//lint:ignore SA1019 the stored text of a non-string value (and so derived request ids and row hashes) must stay what earlier versions stored; Value.String formats slices and floats differently
	if text := v.Emit(); len(text) > limit || !bound.Clean(text) {
		size, sum := bound.Markers(attribute.Key(key), text)
		m.cut = append(m.cut, size, sum)
		return
	}
	m.keepRaw(key, v)
}

// text maps a string attribute to a TEXT column of at most limit bytes.
func (m *Mapper) text(kv attribute.KeyValue, limit int) string {
	if kv.Value.Type() == attribute.STRING {
		return m.bounded(string(kv.Key), kv.Value.AsString(), limit)
	}
	m.keepRawBounded(string(kv.Key), kv.Value, limit)
	m.issue("%s: expected STRING, got %s; stored as text", kv.Key, kv.Value.Type())
	//lint:ignore SA1019 the stored text of a non-string value (and so derived request ids and row hashes) must stay what earlier versions stored; Value.String formats slices and floats differently
	s, _ := bound.String(kv.Value.Emit(), limit)
	return s
}

// attrField bounds an attribute kept in the attributes object that has a
// field limit (MCP method, session id, JSON-RPC id): a string, or any value
// that is not a number or a boolean, is stored as text of at most the
// limit.
func (m *Mapper) attrField(kv attribute.KeyValue) attribute.Value {
	switch kv.Value.Type() {
	case attribute.INT64, attribute.FLOAT64, attribute.BOOL:
		return kv.Value
	}
	return attribute.StringValue(m.text(kv, m.fieldLimit()))
}

// roles joins user.roles with commas.
func (m *Mapper) roles(kv attribute.KeyValue) string {
	key, limit := string(kv.Key), m.fieldLimit()
	switch kv.Value.Type() {
	case attribute.STRINGSLICE:
		roles := kv.Value.AsStringSlice()
		if len(roles) == 1 {
			return m.bounded(key, roles[0], limit)
		}
		return m.bounded(key, strings.Join(roles, ","), limit)
	case attribute.SLICE:
		parts := make([]string, 0, 4)
		for _, v := range kv.Value.AsSlice() {
			//lint:ignore SA1019 the stored text of a non-string value (and so derived request ids and row hashes) must stay what earlier versions stored; Value.String formats slices and floats differently
			parts = append(parts, v.Emit())
		}
		return m.bounded(key, strings.Join(parts, ","), limit)
	}
	return m.text(kv, limit)
}

func (m *Mapper) latency(kv attribute.KeyValue) int64 {
	v := kv.Value
	switch v.Type() {
	case attribute.INT64:
		return v.AsInt64()
	case attribute.FLOAT64:
		f := v.AsFloat64()
		if !math.IsNaN(f) && f > math.MinInt64 && f < math.MaxInt64 {
			if f != math.Trunc(f) {
				m.keepRaw(string(kv.Key), v)
				m.issue("%s: fractional milliseconds rounded", kv.Key)
			}
			return int64(math.Round(f))
		}
	case attribute.STRING:
		if n, err := strconv.ParseInt(strings.TrimSpace(v.AsString()), 10, 64); err == nil {
			m.keepRawBounded(string(kv.Key), v, m.fieldLimit())
			m.issue("%s: expected INT64, got STRING; parsed", kv.Key)
			return n
		}
	}
	m.keepRawBounded(string(kv.Key), v, m.fieldLimit())
	//lint:ignore SA1019 the stored text of a non-string value (and so derived request ids and row hashes) must stay what earlier versions stored; Value.String formats slices and floats differently
	m.issue("%s: %s value %q is not a number of milliseconds; stored as 0", kv.Key, v.Type(), truncate(v.Emit(), 64))
	return 0
}

func (m *Mapper) required(v string, present bool, key attribute.Key) string {
	if !present {
		m.missing = append(m.missing, string(key))
		return Unknown
	}
	if v == "" {
		m.issue("%s: empty; stored as %q", key, Unknown)
		return Unknown
	}
	return v
}

// minTime and maxTime bound the timestamps PostgreSQL and JSON both hold.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

func validTime(t time.Time) bool { return !t.IsZero() && !t.Before(minTime) && !t.After(maxTime) }

func (m *Mapper) timestamp(rec *Record) time.Time {
	if validTime(rec.Timestamp) {
		return rec.Timestamp
	}
	if !rec.Timestamp.IsZero() {
		m.keepRaw("timestamp", attribute.Int64Value(rec.Timestamp.Unix()))
		m.issue("timestamp: out of range; observed timestamp used")
	}
	if validTime(rec.ObservedTimestamp) {
		return rec.ObservedTimestamp
	}
	m.issue("timestamp: record has no timestamp; export time used")
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// args maps gen_ai.tool.call.arguments to request_args JSON.
func (m *Mapper) args(v attribute.Value) []byte {
	key := string(otelaudit.ToolCallArgumentsKey)
	var text []byte
	switch v.Type() {
	case attribute.EMPTY:
		return nil
	case attribute.STRING:
		text = []byte(v.AsString())
	case attribute.BYTESLICE:
		text = v.AsByteSlice()
	default:
		start := len(m.arena)
		var changed bool
		m.arena, changed = appendValue(m.arena, v, 1)
		if changed {
			m.issue("%s: sanitised (NUL, invalid UTF-8, non-finite number or nesting deeper than %d)", key, otelaudit.MaxJSONDepth)
		}
		return m.limitArgs(m.arena[start:len(m.arena):len(m.arena)], start)
	}

	start := len(m.arena)
	switch checkJSON(text) {
	case jsonOK:
		m.arena = append(m.arena, text...)
	case jsonRewrite:
		m.arena, _ = rewriteJSON(m.arena, text)
		m.issue("%s: NUL, surrogate or invalid UTF-8 in JSON replaced by U+FFFD", key)
	case jsonTooDeep:
		if out, ok := rewriteJSON(m.arena, text); ok {
			m.arena = out
			m.issue("%s: JSON nested deeper than %d levels; deeper values replaced by %q", key, otelaudit.MaxJSONDepth, otelaudit.DepthLimitValue)
		} else {
			m.arena, _ = appendString(m.arena, string(text))
			m.issue("%s: JSON nested too deep to decode; stored as a JSON string", key)
		}
	default:
		m.arena, _ = appendString(m.arena, string(text))
		m.issue("%s: not valid JSON; stored as a JSON string", key)
	}
	return m.limitArgs(m.arena[start:len(m.arena):len(m.arena)], start)
}

// limitArgs replaces a request_args document larger than the limit with a
// marker that keeps its size and SHA-256.
func (m *Mapper) limitArgs(doc []byte, start int) []byte {
	limit := m.MaxArgsBytes
	if limit <= 0 || limit > otelaudit.MaxStoredArgsBytes {
		limit = otelaudit.MaxStoredArgsBytes
	}
	if len(doc) <= limit {
		return doc
	}
	sum := sha256.Sum256(doc)
	m.arena = m.arena[:start]
	m.arena = fmt.Appendf(m.arena, `{"%s":true,"%s":%d,"%s":"%s"}`, otelaudit.MarkerTruncatedKey,
		otelaudit.MarkerSizeKey, len(doc), otelaudit.MarkerSHA256Key, hex.EncodeToString(sum[:]))
	m.issue("%s: %d bytes exceed the %d-byte limit; replaced by a size and SHA-256 marker", otelaudit.ToolCallArgumentsKey, len(doc), limit)
	return m.arena[start:len(m.arena):len(m.arena)]
}

// requestID parses otelaudit.request.id, or derives a deterministic UUIDv5
// when it is missing or not a UUID, so that a replay of the same record maps
// to the same id while different records never share one.
func (m *Mapper) requestID(rec *Record, v attribute.Value, present bool, attrs []byte, row *Row) uuid.UUID {
	key := string(otelaudit.RequestIDKey)
	if present {
		//lint:ignore SA1019 the stored text of a non-string value (and so derived request ids and row hashes) must stay what earlier versions stored; Value.String formats slices and floats differently
		raw := v.Emit()
		if v.Type() == attribute.STRING {
			if id, err := uuid.Parse(raw); err == nil {
				return id
			}
		}
		m.keepRawBounded(key, v, m.fieldLimit())
		m.issue("%s: %q is not a UUID; a UUIDv5 of the raw value is used", key, truncate(raw, 64))
		return uuid.NewSHA1(requestIDSpace, []byte(raw))
	}
	m.missing = append(m.missing, key)
	m.issue("%s: derived from the record's timestamp, trace and attributes", key)
	// The observed timestamp is the time the SDK first saw the record: it
	// tells two records apart only when they carry no timestamp of their own.
	ts := rec.Timestamp
	if ts.IsZero() {
		ts = rec.ObservedTimestamp
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d|%s|%s|%s|%s|%s|%s|%s|%s|%s|%d|%s\x00",
		ts.UnixNano(), rec.TraceID, rec.SpanID,
		row.ClientSubject, row.ClientRole, row.ToolName, row.BackendName, row.ResponseStatus,
		row.ErrorMessage, rec.ServiceName, row.LatencyMS, row.RequestArgs)
	h.Write(attrs)
	return uuid.NewSHA1(requestIDSpace, h.Sum(nil))
}

// truncate shortens s to about n bytes for a message, never splitting a
// UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return bound.Prefix(s, n) + "…"
}
