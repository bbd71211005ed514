package instrumentation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/bound"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestCallAttributes records calls with extra attributes through the real
// exporter into PostgreSQL: they land in the row's attributes (not in
// request_args), a key of the audit record's own is ignored, an oversize
// value is cut with its markers, and more than
// otelaudit.DefaultMaxExtraAttributes are cut with a count.
func TestCallAttributes(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(exporter.NewProcessor(exp)))
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	a := instrumentation.New(instrumentation.WithLoggerProvider(lp))

	long := strings.Repeat("x", 1000)
	many := make([]attribute.KeyValue, 0, otelaudit.DefaultMaxExtraAttributes+5)
	for i := range otelaudit.DefaultMaxExtraAttributes + 5 {
		many = append(many, attribute.Int(fmt.Sprintf("k%02d", i), i))
	}
	first := time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)
	extras := []attribute.KeyValue{
		otelaudit.ClientAddressKey.String("192.0.2.7"),
		otelaudit.AggregateCountKey.Int(3),
		otelaudit.AggregateFirstTimeKey.String(first.Format(time.RFC3339Nano)),
		// Collisions: none of them may change what the Auditor records.
		otelaudit.UserIDKey.String("mallory"),
		otelaudit.ResponseStatusKey.String("ok"),
		otelaudit.RequestIDKey.String("00000000-0000-7000-8000-000000000000"),
		otelaudit.TruncatedSizeKey(otelaudit.ToolNameKey).Int(1),
		attribute.String("otelaudit.mapping.issues", "forged"),
		attribute.String("", "empty key"),
		attribute.String("note", long),
		attribute.StringSlice("tags", []string{"a", "b"}),
	}
	args := map[string]any{"q": "x"}
	a.Record(ctx, instrumentation.Call{Subject: "alice", Role: "admin", Tool: "t1", Backend: "b",
		Status: otelaudit.StatusDenied, Args: args, Attributes: extras})
	a.Record(ctx, instrumentation.Call{Subject: "alice", Role: "admin", Tool: "t2", Backend: "b", Attributes: many})
	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if extras[3].Value.AsString() != "mallory" || len(extras) != 11 {
		t.Fatal("Record modified Call.Attributes")
	}

	conn := pgtest.Connect(t, url)
	type row struct {
		subject, status, requestID string
		args                       map[string]any
		attrs                      map[string]any
	}
	get := func(tool string) row {
		t.Helper()
		var r row
		var args, attrs []byte
		if err := conn.QueryRow(ctx, `SELECT client_subject, response_status, request_id::text, request_args, attributes
			FROM audit_log WHERE tool_name = $1`, tool).Scan(&r.subject, &r.status, &r.requestID, &args, &attrs); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if len(args) > 0 {
			if err := json.Unmarshal(args, &r.args); err != nil {
				t.Fatal(err)
			}
		}
		if err := json.Unmarshal(attrs, &r.attrs); err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := get("t1")
	t.Logf("t1 attributes: %v", r.attrs)
	if r.subject != "alice" || r.status != "denied" || strings.HasPrefix(r.requestID, "00000000") {
		t.Errorf("a colliding attribute changed the row: subject %q status %q request id %s", r.subject, r.status, r.requestID)
	}
	if len(r.args) != 1 || r.args["q"] != "x" {
		t.Errorf("request_args = %v, want only the call's arguments", r.args)
	}
	want := map[string]any{
		"client.address":                 "192.0.2.7",
		"otelaudit.aggregate.count":      float64(3),
		"otelaudit.aggregate.first_time": "2026-12-01T19:00:00Z",
		"tags":                           []any{"a", "b"},
	}
	for k, v := range want {
		if fmt.Sprint(r.attrs[k]) != fmt.Sprint(v) {
			t.Errorf("attributes[%q] = %v, want %v", k, r.attrs[k], v)
		}
	}
	for _, k := range []string{"otelaudit.truncated.gen_ai.tool.name.size", "otelaudit.mapping.issues", ""} {
		if v, ok := r.attrs[k]; ok {
			t.Errorf("colliding attribute %q stored: %v", k, v)
		}
	}
	note, _ := r.attrs["note"].(string)
	if len(note) != otelaudit.DefaultMaxFieldBytes || !strings.HasSuffix(note, otelaudit.TruncatedSuffix) {
		t.Errorf("note: %d bytes %q, want %d ending in the truncation suffix", len(note), note, otelaudit.DefaultMaxFieldBytes)
	}
	if n := r.attrs["otelaudit.truncated.note.size"]; n != float64(len(long)) {
		t.Errorf("note size marker = %v, want %d", n, len(long))
	}
	if s := r.attrs["otelaudit.truncated.note.sha256"]; s != bound.SHA256Hex(long) {
		t.Errorf("note sha256 marker = %v", s)
	}
	// user.id, otelaudit.response.status, otelaudit.request.id, the forged
	// marker, the forged mapping key and the empty key.
	if n := r.attrs[string(otelaudit.DroppedAttributesKey)]; n != float64(6) {
		t.Errorf("%s = %v, want 6", otelaudit.DroppedAttributesKey, n)
	}

	r = get("t2")
	var kept int
	for i := range otelaudit.DefaultMaxExtraAttributes + 5 {
		if v, ok := r.attrs[fmt.Sprintf("k%02d", i)]; ok {
			kept++
			if v != float64(i) || i >= otelaudit.DefaultMaxExtraAttributes {
				t.Errorf("k%02d = %v", i, v)
			}
		}
	}
	if kept != otelaudit.DefaultMaxExtraAttributes {
		t.Errorf("%d extra attributes stored, want %d", kept, otelaudit.DefaultMaxExtraAttributes)
	}
	if n := r.attrs[string(otelaudit.DroppedAttributesKey)]; n != float64(5) {
		t.Errorf("%s = %v, want 5", otelaudit.DroppedAttributesKey, n)
	}
	if r.status != "ok" || r.args != nil {
		t.Errorf("t2: status %q args %v", r.status, r.args)
	}
}
