package instrumentation

import (
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/internal/bound"
)

// extra adds the extra attributes of a call (Call.Attributes): at most
// otelaudit.DefaultMaxExtraAttributes of them, none whose key the record
// sets itself or that is unusable (see usableExtraKey), each value bounded
// to limit bytes (see extraValue). Of several with the same key the last
// one wins, as in the SDK's de-duplication. How many were dropped is
// recorded as otelaudit.DroppedAttributesKey.
func (b *attrs) extra(kvs []attribute.KeyValue, limit int) {
	if b.marks == nil {
		b.marks = make([]attribute.KeyValue, 0, min(len(kvs), otelaudit.DefaultMaxExtraAttributes)+1)
	}
	dropped, kept := 0, 0
	for i, kv := range kvs {
		if !usableExtraKey(kv.Key, limit) {
			dropped++
			continue
		}
		if supersededAt(kvs, i) {
			continue
		}
		if kept == otelaudit.DefaultMaxExtraAttributes {
			dropped++
			continue
		}
		kept++
		b.extraValue(kv, limit)
	}
	if dropped > 0 {
		b.marks = append(b.marks, otelaudit.DroppedAttributesKey.Int(dropped))
	}
}

// supersededAt reports whether a later attribute of kvs has the key of
// kvs[i].
func supersededAt(kvs []attribute.KeyValue, i int) bool {
	for _, kv := range kvs[i+1:] {
		if kv.Key == kvs[i].Key {
			return true
		}
	}
	return false
}

// extraValue adds kv with its value bounded: a string is bounded to limit
// bytes like the record's own fields (bound.String, with the markers of the
// original); a bool or number is kept; a slice, byte slice or map whose
// text is longer than limit, or not clean UTF-8, is replaced by its text
// bounded the same way.
func (b *attrs) extraValue(kv attribute.KeyValue, limit int) {
	switch kv.Value.Type() {
	case attribute.STRING:
		b.str(kv.Key, kv.Value.AsString(), limit)
		return
	case attribute.EMPTY, attribute.BOOL, attribute.INT64, attribute.FLOAT64:
		b.add(kv)
		return
	}
	text := kv.Value.String()
	if len(text) <= limit && bound.Clean(text) {
		b.add(kv)
		return
	}
	b.str(kv.Key, text, limit)
}

// usableExtraKey reports whether key may be set through Call.Attributes: not
// empty, at most limit bytes of clean UTF-8, not a key the audit record sets
// itself (see reservedKey).
func usableExtraKey(key attribute.Key, limit int) bool {
	return key != "" && len(key) <= limit && bound.Clean(string(key)) && !reservedKey(key)
}

// reservedKey reports whether key belongs to the audit record itself: one of
// the keys the Auditor sets from the Call's fields, or any key of the
// project's "otelaudit." namespace (request id, status, latency, the markers
// of cut values, the exporters' mapping keys, ...) other than those the
// vocabulary offers for Call.Attributes (the otelaudit.aggregate.* keys).
func reservedKey(key attribute.Key) bool {
	switch key {
	case otelaudit.ToolNameKey, otelaudit.ToolCallArgumentsKey, otelaudit.GenAIOperationNameKey,
		otelaudit.UserIDKey, otelaudit.UserRolesKey, otelaudit.ErrorMessageKey, otelaudit.ErrorTypeKey,
		otelaudit.MCPMethodNameKey, otelaudit.MCPSessionIDKey, otelaudit.JSONRPCRequestIDKey:
		return true
	case otelaudit.AggregateCountKey, otelaudit.AggregateFirstTimeKey, otelaudit.AggregateLastTimeKey:
		return false
	}
	return strings.HasPrefix(string(key), "otelaudit.")
}
