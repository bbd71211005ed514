package auditrow

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

func withAttrs(rec Record, kvs ...attribute.KeyValue) Record {
	out := rec
	out.Attributes = nil
	for _, kv := range rec.Attributes {
		keep := true
		for _, o := range kvs {
			if o.Key == kv.Key {
				keep = false
			}
		}
		if keep {
			out.Attributes = append(out.Attributes, kv)
		}
	}
	out.Attributes = append(out.Attributes, kvs...)
	return out
}

func attrsOf(t *testing.T, r Row) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Attributes, &m); err != nil {
		t.Fatalf("attributes %s: %v", r.Attributes, err)
	}
	return m
}

func sha(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }

// TestMapCapsEveryField: the mapping applies the middleware's caps (the
// root package's limits) to every capped field, with a UTF-8-safe cut and
// the size and SHA-256 of the original under the root's marker keys.
func TestMapCapsEveryField(t *testing.T) {
	// "é" is two bytes: a cut at an odd byte count would split it.
	long := strings.Repeat("é", 5000) + "\x00\xff"
	cases := []struct {
		key   attribute.Key
		limit int
		get   func(Row, map[string]any) string
	}{
		{otelaudit.ToolNameKey, otelaudit.DefaultMaxFieldBytes, func(r Row, _ map[string]any) string { return r.ToolName }},
		{otelaudit.BackendNameKey, otelaudit.DefaultMaxFieldBytes, func(r Row, _ map[string]any) string { return r.BackendName }},
		{otelaudit.UserIDKey, otelaudit.DefaultMaxFieldBytes, func(r Row, _ map[string]any) string { return r.ClientSubject }},
		{otelaudit.ResponseStatusKey, otelaudit.DefaultMaxFieldBytes, func(r Row, _ map[string]any) string { return r.ResponseStatus }},
		{otelaudit.ErrorMessageKey, otelaudit.DefaultMaxErrorBytes, func(r Row, _ map[string]any) string { return r.ErrorMessage }},
		{otelaudit.MCPMethodNameKey, otelaudit.DefaultMaxFieldBytes, func(_ Row, a map[string]any) string { s, _ := a[string(otelaudit.MCPMethodNameKey)].(string); return s }},
		{otelaudit.MCPSessionIDKey, otelaudit.DefaultMaxFieldBytes, func(_ Row, a map[string]any) string { s, _ := a[string(otelaudit.MCPSessionIDKey)].(string); return s }},
		{otelaudit.ErrorTypeKey, otelaudit.DefaultMaxFieldBytes, func(_ Row, a map[string]any) string { s, _ := a[string(otelaudit.ErrorTypeKey)].(string); return s }},
		{otelaudit.JSONRPCRequestIDKey, otelaudit.DefaultMaxFieldBytes, func(_ Row, a map[string]any) string {
			s, _ := a[string(otelaudit.JSONRPCRequestIDKey)].(string)
			return s
		}},
	}
	for _, c := range cases {
		t.Run(string(c.key), func(t *testing.T) {
			rec := withAttrs(sampleRecord(), c.key.String(long))
			var m Mapper
			r := m.Map(&rec)
			a := attrsOf(t, r)
			got := c.get(r, a)
			if len(got) > c.limit || !utf8.ValidString(got) || strings.ContainsRune(got, 0) ||
				!strings.HasSuffix(got, otelaudit.TruncatedSuffix) || !strings.HasPrefix(got, "éé") {
				t.Errorf("stored %d bytes %q…, want ≤ %d valid UTF-8 ending in the suffix", len(got), truncate(got, 20), c.limit)
			}
			if size := a[string(otelaudit.TruncatedSizeKey(c.key))]; size != float64(len(long)) {
				t.Errorf("size marker = %v, want %d", size, len(long))
			}
			if sum := a[string(otelaudit.TruncatedSHA256Key(c.key))]; sum != sha(long) {
				t.Errorf("sha256 marker = %v", sum)
			}
			if strings.Contains(string(r.Attributes), strings.Repeat("é", 300)) || len(r.Attributes) > 4*c.limit {
				t.Errorf("the original came back through the attributes (%d bytes)", len(r.Attributes))
			}
		})
	}
	// Roles are joined first, then capped.
	roles := make([]string, 200)
	for i := range roles {
		roles[i] = "role-" + strings.Repeat("x", 20)
	}
	rec := withAttrs(sampleRecord(), otelaudit.UserRolesKey.StringSlice(roles))
	var m Mapper
	if r := m.Map(&rec); len(r.ClientRole) > otelaudit.DefaultMaxFieldBytes || attrsOf(t, r)[string(otelaudit.TruncatedSizeKey(otelaudit.UserRolesKey))] == nil {
		t.Errorf("roles: %d bytes, attributes %s", len(r.ClientRole), truncate(string(r.Attributes), 200))
	}
	// Service name too.
	rec = sampleRecord()
	rec.ServiceName = long
	if r := m.Map(&rec); len(r.ServiceName) > otelaudit.DefaultMaxFieldBytes {
		t.Errorf("service name: %d bytes", len(r.ServiceName))
	}
	// A field within its limit is stored as it is, with no marker.
	rec = sampleRecord()
	if r := m.Map(&rec); strings.Contains(string(r.Attributes), otelaudit.TruncatedKeyPrefix) {
		t.Errorf("clean record got markers: %s", r.Attributes)
	}
}

// TestMapCapsWithOptions: raising the limits like the middleware's options
// raises the mapping's.
func TestMapCapsWithOptions(t *testing.T) {
	rec := withAttrs(sampleRecord(), otelaudit.ToolNameKey.String(strings.Repeat("t", 1000)), otelaudit.ErrorMessageKey.String(strings.Repeat("e", 5000)))
	m := Mapper{MaxFieldBytes: 1024, MaxErrorBytes: 8192}
	if r := m.Map(&rec); len(r.ToolName) != 1000 || len(r.ErrorMessage) != 5000 {
		t.Errorf("tool %d bytes, error %d bytes; want both kept", len(r.ToolName), len(r.ErrorMessage))
	}
	m = Mapper{MaxFieldBytes: 100, MaxErrorBytes: 200}
	if r := m.Map(&rec); len(r.ToolName) > 100 || len(r.ErrorMessage) > 200 {
		t.Errorf("tool %d bytes, error %d bytes; want ≤ 100 and ≤ 200", len(r.ToolName), len(r.ErrorMessage))
	}
}

// TestMapBoundsWrongTypesAndRawValues: values of the wrong type (a JSON-RPC
// id that is an object, a subject that is a huge slice, a 1 MiB non-UUID
// request id) are capped as text, and the raw copy kept for changed values
// never undoes the cap.
func TestMapBoundsWrongTypesAndRawValues(t *testing.T) {
	big := strings.Repeat("z", 1<<20)
	huge := make([]string, 10000)
	for i := range huge {
		huge[i] = "subject"
	}
	rec := withAttrs(sampleRecord(),
		attribute.KeyValue{Key: otelaudit.JSONRPCRequestIDKey, Value: attribute.MapValue(attribute.String("k", big))},
		otelaudit.UserIDKey.StringSlice(huge),
		otelaudit.RequestIDKey.String(big),
		otelaudit.LatencyMSKey.String(big),
	)
	var m Mapper
	r := m.Map(&rec)
	if len(r.ClientSubject) > otelaudit.DefaultMaxFieldBytes {
		t.Errorf("subject %d bytes", len(r.ClientSubject))
	}
	if len(r.Attributes) > 16<<10 {
		t.Errorf("attributes %d bytes: a raw copy undid a cap", len(r.Attributes))
	}
	a := attrsOf(t, r)
	if s, _ := a[string(otelaudit.JSONRPCRequestIDKey)].(string); s == "" || len(s) > otelaudit.DefaultMaxFieldBytes {
		t.Errorf("jsonrpc id = %q", truncate(s, 40))
	}
	// A number stays a number.
	rec = withAttrs(sampleRecord(), otelaudit.JSONRPCRequestIDKey.Int(42))
	if a := attrsOf(t, m.Map(&rec)); a[string(otelaudit.JSONRPCRequestIDKey)] != float64(42) {
		t.Errorf("numeric jsonrpc id = %v", a[string(otelaudit.JSONRPCRequestIDKey)])
	}
}

// TestMapBoundsAttributesDocument: the attributes object as a whole is
// bounded by otelaudit.MaxStoredArgsBytes, whatever the record carried.
func TestMapBoundsAttributesDocument(t *testing.T) {
	var kvs []attribute.KeyValue
	for i := range 40 {
		kvs = append(kvs, attribute.String(strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("x", i), strings.Repeat("v", 64<<10)))
	}
	rec := withAttrs(sampleRecord(), kvs...)
	var m Mapper
	r := m.Map(&rec)
	if len(r.Attributes) > otelaudit.MaxStoredArgsBytes {
		t.Fatalf("attributes %d bytes", len(r.Attributes))
	}
	a := attrsOf(t, r)
	if a[otelaudit.MarkerTruncatedKey] != true || a[otelaudit.MarkerSizeKey] == nil || a[otelaudit.MarkerSHA256Key] == nil ||
		!strings.Contains(string(r.Attributes), "attributes:") {
		t.Errorf("attributes marker: %s", truncate(string(r.Attributes), 400))
	}
}

// TestMapDepthLimit: one depth limit, otelaudit.MaxJSONDepth, for attribute
// values and arguments: a container at depth MaxJSONDepth is kept, one
// deeper is replaced by otelaudit.DepthLimitValue, scalars are never cut.
func TestMapDepthLimit(t *testing.T) {
	nest := func(n int) attribute.Value {
		v := attribute.Int64Value(1)
		for range n {
			v = attribute.SliceValue(v)
		}
		return v
	}
	var m Mapper
	for _, c := range []struct {
		depth int
		cut   bool
	}{{otelaudit.MaxJSONDepth, false}, {otelaudit.MaxJSONDepth + 1, true}} {
		rec := withAttrs(sampleRecord(), attribute.KeyValue{Key: otelaudit.ToolCallArgumentsKey, Value: nest(c.depth)},
			attribute.KeyValue{Key: "deep", Value: nest(c.depth)})
		r := m.Map(&rec)
		for name, doc := range map[string]string{"args": string(r.RequestArgs), "attribute": string(r.Attributes)} {
			if got := strings.Contains(doc, otelaudit.DepthLimitValue); got != c.cut {
				t.Errorf("depth %d, %s: cut = %v, want %v: %s", c.depth, name, got, c.cut, truncate(doc, 120))
			}
		}
		text := strings.Repeat("[", c.depth) + "1" + strings.Repeat("]", c.depth)
		rec = withAttrs(sampleRecord(), otelaudit.ToolCallArgumentsKey.String(text))
		r = m.Map(&rec)
		if got := strings.Contains(string(r.RequestArgs), otelaudit.DepthLimitValue); got != c.cut || (!c.cut && string(r.RequestArgs) != text) {
			t.Errorf("depth %d, JSON text: args %s", c.depth, truncate(string(r.RequestArgs), 120))
		}
	}
}

// TestDerivedRequestIDIsStable: a record without a request id gets the same
// derived id each time it is mapped (a replayed or re-exported batch stays
// one row), by another Mapper too, including arguments the mapping has to
// rewrite (object keys in a fixed order) and values it has to cut.
func TestDerivedRequestIDIsStable(t *testing.T) {
	var recs []Record
	for _, args := range []attribute.KeyValue{
		otelaudit.ToolCallArgumentsKey.Map(attribute.String("b", "2"), attribute.String("a", "1")),
		otelaudit.ToolCallArgumentsKey.String(`{"z":"\u0000","y":{"b":1,"a":2,"c":[1,{"q":"\ud800","p":0}]},"x":3,"w":4,"v":5,"u":6}`),
		otelaudit.ToolCallArgumentsKey.String(strings.Repeat("[", 40) + strings.Repeat("]", 40)),
		otelaudit.ToolCallArgumentsKey.String(strings.Repeat("a", 2<<20)),
	} {
		rec := withAttrs(sampleRecord(), args, otelaudit.ToolNameKey.String(strings.Repeat("t", 3000)))
		var kept []attribute.KeyValue
		for _, kv := range rec.Attributes {
			if kv.Key != otelaudit.RequestIDKey {
				kept = append(kept, kv)
			}
		}
		rec.Attributes = kept
		recs = append(recs, rec)
	}
	var first Mapper
	rows1, _ := first.MapAll(nil, recs)
	ids := map[string]bool{}
	for round := range 20 {
		var m Mapper
		rows2, _ := m.MapAll(nil, recs)
		first.Reset()
		rows3, _ := first.MapAll(nil, recs)
		for i := range recs {
			if rows2[i].RequestID != rows1[i].RequestID || rows3[i].RequestID != rows1[i].RequestID {
				t.Fatalf("round %d, record %d: derived id %s, then %s and %s", round, i, rows1[i].RequestID, rows2[i].RequestID, rows3[i].RequestID)
			}
		}
	}
	for _, r := range rows1 {
		ids[r.RequestID.String()] = true
	}
	if len(ids) != len(recs) {
		t.Errorf("%d records share %d derived ids", len(recs), len(ids))
	}
}
