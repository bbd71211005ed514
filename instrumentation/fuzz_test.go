package instrumentation

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
)

// Whatever a caller sends, Record emits exactly one record, every capped
// field is clean and within its limit, and a secret value under a secret key
// never reaches the error text.
func FuzzRecord(f *testing.F) {
	for _, s := range []string{
		`{"password":"p","q":"postgres://u:pw@h?api_key=k"}`, `[["Authorization","Bearer abcdefghij"]]`,
		"sk-S3CR3TS3CR3T", "\x00\xff", `{"a":"{\"token\":\"t\"}"}`, strings.Repeat("[", 40), "a=b&token=", "://@", "Bearer ",
		"-----BEGIN PRIVATE KEY-----", `"password": "x`, "é\xc3",
	} {
		f.Add(s, "hunter2-secret")
	}
	f.Fuzz(func(t *testing.T, data, secret string) {
		rec := &audittest.Recorder{}
		a := New(WithLoggerProvider(audittest.NewLoggerProvider(rec)), WithMaxFieldBytes(64), WithMaxErrorBytes(256))
		var args any = map[string]any{"password": secret, "data": data}
		if json.Valid([]byte(data)) {
			args = []any{json.RawMessage(data), map[string]any{"password": secret}}
		}
		a.Record(context.Background(), Call{
			Tool: data, Subject: data, SessionID: data, JSONRPCID: data, Args: args,
			ErrorMessage: "failed on " + data + " with " + secret, Status: otelaudit.StatusError,
		})
		recs := rec.Records()
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		at := audittest.Attrs(recs[0])
		for _, k := range []string{"gen_ai.tool.name", "user.id", "mcp.session.id", "jsonrpc.request.id"} {
			v := at[attrKey(k)].AsString()
			if len(v) > 64 || !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("%s = %q", k, v)
			}
		}
		msg := at[otelaudit.ErrorMessageKey].AsString()
		if len(msg) > 256 || !utf8.ValidString(msg) {
			t.Fatalf("error.message %q", msg)
		}
		// The secret can only survive in the cut tail (cut away) or where
		// it is part of the redaction marker itself.
		if len(secret) >= 4 && !strings.Contains(RedactedValue+otelaudit.TruncatedSuffix+"failed on with"+data, secret) &&
			strings.Contains(msg, secret) {
			t.Fatalf("error.message %q holds the secret %q", msg, secret)
		}
	})
}

func attrKey(k string) attribute.Key { return attribute.Key(k) }

// Hostile strings cost time linear in their size: the scans of the value
// patterns, key=value, header lines and URLs never restart per occurrence.
// Linear scans of these 128 KiB strings take milliseconds; a quadratic one
// takes minutes (a 256 KiB string of JWT prefixes ran over ten minutes
// before the fix), so the bound is generous for a busy machine.
func TestRedactionLinearOnHostileStrings(t *testing.T) {
	const n = 128 << 10
	limit := 2 * time.Second
	if raceEnabled {
		limit *= 10
	}
	a := New(WithLoggerProvider(audittest.NewLoggerProvider(&audittest.Recorder{})), WithMaxArgsBytes(4*n))
	for name, unit := range map[string]string{
		"JWT prefixes in one run": "-eyJaaaa",
		"header-line colons":      "pwd:",
		"key=value":               "token=",
		"dotted keys":             "a.b=",
		"URL schemes":             "a://b",
		"PEM headers":             "-----BEGIN AAAA ",
		"bearer":                  "Bearer ",
		"quoted keys":             `"password":`,
		"userinfo at":             "@a://",
	} {
		s := "x " + strings.Repeat(unit, n/len(unit))
		start := time.Now()
		a.Record(context.Background(), Call{Tool: "t", Args: map[string]any{"v": s}, Err: errors.New(s)})
		if d := time.Since(start); d > limit {
			t.Errorf("%s: %v for %d KiB", name, d, n>>10)
		}
	}
}

// Thousands of secret values and a huge error text: the text is withheld
// instead of costing the call seconds.
func TestErrorScrubBudget(t *testing.T) {
	f := newFixture(t, WithMaxArgsBytes(1<<20))
	args := map[string]any{}
	for i := range 5000 {
		args["password"+strconv.Itoa(i)] = "secret-" + strconv.Itoa(i)
	}
	start := time.Now()
	f.a.Record(context.Background(), Call{Tool: "t", Args: args, Err: errors.New(strings.Repeat("secret-1 ", 1<<17))})
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Record took %v", d) // generous: -race on a busy machine
	}
	_, attrs := f.only(t)
	if msg := attrs[otelaudit.ErrorMessageKey].AsString(); !strings.HasPrefix(msg, "[error text withheld") || strings.Contains(msg, "secret-1") {
		t.Errorf("error.message %q", msg)
	}
}
