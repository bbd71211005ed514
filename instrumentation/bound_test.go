package instrumentation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/sentinel-gateway/otelaudit"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// clean fails unless v is valid UTF-8 without NUL, within limit bytes.
func clean(t *testing.T, what, v string, limit int) {
	t.Helper()
	if len(v) > limit {
		t.Errorf("%s: %d bytes, limit %d", what, len(v), limit)
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		t.Errorf("%s: %q is not clean UTF-8", what, v)
	}
}

// Every capped field: oversized, with NUL bytes, with invalid UTF-8, and
// with a multi-byte character across the limit, read back with its markers.
func TestFieldCaps(t *testing.T) {
	const max = otelaudit.DefaultMaxFieldBytes
	jsonObjectID := `{"id":` + strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000) + "}"
	for _, tt := range []struct {
		name string
		val  string
	}{
		{"3 KB", strings.Repeat("a", 3000)},
		{"600 KB", strings.Repeat("s", 600_000)},
		{"1 MiB", strings.Repeat("9", 1<<20)},
		{"JSON object", jsonObjectID},
		{"NUL", "to\x00ol"},
		{"invalid UTF-8", "to\xff\xfeol"},
		{"euro across the limit", strings.Repeat("a", max-len(otelaudit.TruncatedSuffix)-1) + strings.Repeat("€", 10)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.a.Record(context.Background(), Call{
				Tool: tt.val, Backend: tt.val, Subject: tt.val, Role: tt.val, Method: tt.val,
				SessionID: tt.val, JSONRPCID: tt.val, Err: errors.New("x"), ErrorType: tt.val,
			})
			_, attrs := f.only(t)
			for _, k := range []attribute.Key{
				otelaudit.ToolNameKey, otelaudit.BackendNameKey, otelaudit.UserIDKey, otelaudit.MCPMethodNameKey,
				otelaudit.MCPSessionIDKey, otelaudit.JSONRPCRequestIDKey, otelaudit.ErrorTypeKey, otelaudit.UserRolesKey,
			} {
				var v string
				if k == otelaudit.UserRolesKey {
					v = strings.Join(attrs[k].AsStringSlice(), ",")
				} else {
					v = attrs[k].AsString()
				}
				clean(t, string(k), v, max)
				if v == "" {
					t.Errorf("%s empty", k)
				}
				size, hash := attrs[otelaudit.TruncatedSizeKey(k)], attrs[otelaudit.TruncatedSHA256Key(k)]
				if size.AsInt64() != int64(len(tt.val)) || hash.AsString() != sum(tt.val) {
					t.Errorf("%s: markers size %v sha256 %v, want %d %s", k, size.String(), hash.String(), len(tt.val), sum(tt.val))
				}
				if len(tt.val) > max && !strings.HasSuffix(v, otelaudit.TruncatedSuffix) {
					t.Errorf("%s: %q has no cut marker", k, v)
				}
			}
		})
	}
}

func TestFieldsWithinLimitsAreUntouched(t *testing.T) {
	f := newFixture(t)
	v := strings.Repeat("€", otelaudit.DefaultMaxFieldBytes/3)
	f.a.Record(context.Background(), Call{Tool: v, Subject: v, SessionID: v, JSONRPCID: "42"})
	_, attrs := f.only(t)
	if attrs[otelaudit.ToolNameKey].AsString() != v || attrs[otelaudit.MCPSessionIDKey].AsString() != v {
		t.Errorf("value within the limit changed")
	}
	for k := range attrs {
		if strings.HasPrefix(string(k), otelaudit.TruncatedKeyPrefix) {
			t.Errorf("marker %s on values within the limits", k)
		}
	}
}

func TestCapOptions(t *testing.T) {
	f := newFixture(t, WithMaxFieldBytes(32), WithMaxErrorBytes(100))
	f.a.Record(context.Background(), Call{Tool: strings.Repeat("t", 40), Err: errors.New(strings.Repeat("e", 500))})
	_, attrs := f.only(t)
	clean(t, "tool", attrs[otelaudit.ToolNameKey].AsString(), 32)
	clean(t, "error.message", attrs[otelaudit.ErrorMessageKey].AsString(), 100)
	if attrs[otelaudit.TruncatedSizeKey(otelaudit.ErrorMessageKey)].AsInt64() != 500 {
		t.Errorf("error text marker %v", attrs[otelaudit.TruncatedSizeKey(otelaudit.ErrorMessageKey)].String())
	}
}

func TestDefaultErrorCap(t *testing.T) {
	f := newFixture(t)
	msg := strings.Repeat("é", 5000) // 10,000 bytes
	f.a.Record(context.Background(), Call{Tool: "t", Err: errors.New(msg)})
	_, attrs := f.only(t)
	got := attrs[otelaudit.ErrorMessageKey].AsString()
	clean(t, "error.message", got, otelaudit.DefaultMaxErrorBytes)
	if len(got) < otelaudit.DefaultMaxErrorBytes-4 || !strings.HasSuffix(got, otelaudit.TruncatedSuffix) {
		t.Errorf("error.message cut to %d bytes", len(got))
	}
}

// Wrap's span carries bounded fields too.
func TestWrapSpanBounded(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("x", 10_000)
	_, _ = f.a.Wrap(func(context.Context, ToolRequest) (ToolResult, error) {
		return ToolResult{}, errors.New(long)
	})(context.Background(), ToolRequest{Tool: long, SessionID: long, JSONRPCID: long, Method: long})
	s := f.spans.Ended()[0]
	clean(t, "span name", s.Name(), len(otelaudit.OperationExecuteTool)+1+otelaudit.DefaultMaxFieldBytes)
	for _, kv := range s.Attributes() {
		if kv.Value.Type() == attribute.STRING {
			clean(t, "span "+string(kv.Key), kv.Value.AsString(), otelaudit.DefaultMaxFieldBytes)
		}
	}
	clean(t, "span status", s.Status().Description, otelaudit.DefaultMaxErrorBytes)
}

// The error text loses every secret redaction removed from the arguments,
// in the record and in the span status alike.
func TestErrorTextScrubbed(t *testing.T) {
	args := map[string]any{
		"api_key":  "sk-S3CR3TS3CR3T",
		"password": `hun"ter2`,
		"pin":      4711,
		"headers":  []any{[]any{"Authorization", "Bearer x-short"}},
		"q":        "visible",
	}
	secrets := []string{"S3CR3TS3CR3T", "hun", "ter2", "4711", "x-short"}
	quoting := func(a any) error {
		return fmt.Errorf("bad input %v; api_key=%q, password %s (%q), pin %d, auth %s, q=%s",
			a, "sk-S3CR3TS3CR3T", `hun"ter2`, `hun"ter2`, 4711, "Bearer x-short", "visible")
	}
	check := func(t *testing.T, f *fixture, wantMsg bool) {
		t.Helper()
		_, attrs := f.only(t)
		msg := attrs[otelaudit.ErrorMessageKey].AsString()
		texts := []string{msg}
		for _, s := range f.spans.Ended() {
			texts = append(texts, s.Status().Description)
			if s.Status().Code != codes.Error {
				t.Errorf("span status %v", s.Status())
			}
		}
		for _, txt := range texts {
			for _, s := range secrets {
				if strings.Contains(txt, s) {
					t.Errorf("error text %q contains the secret %q", txt, s)
				}
			}
		}
		if wantMsg && !strings.Contains(msg, "visible") {
			t.Errorf("error text %q lost what is not secret", msg)
		}
		if !wantMsg && msg != "" {
			t.Errorf("error text %q recorded with WithErrorText(false)", msg)
		}
		if _, ok := attrs[otelaudit.ErrorTypeKey]; !ok {
			t.Errorf("no error.type")
		}
	}
	t.Run("Record", func(t *testing.T) {
		f := newFixture(t)
		f.a.Record(context.Background(), Call{Tool: "t", Args: args, Err: quoting(args)})
		check(t, f, true)
	})
	t.Run("Wrap handler error", func(t *testing.T) {
		f := newFixture(t)
		_, _ = f.a.Wrap(func(_ context.Context, req ToolRequest) (ToolResult, error) {
			return ToolResult{}, quoting(req.Args)
		})(context.Background(), ToolRequest{Tool: "t", Args: args})
		check(t, f, true)
	})
	t.Run("ToolResult.ErrorMessage", func(t *testing.T) {
		f := newFixture(t)
		_, _ = f.a.Wrap(func(_ context.Context, req ToolRequest) (ToolResult, error) {
			return ToolResult{IsError: true, ErrorMessage: quoting(req.Args).Error()}, nil
		})(context.Background(), ToolRequest{Tool: "t", Args: args})
		check(t, f, true)
	})
	t.Run("raw JSON arguments", func(t *testing.T) {
		f := newFixture(t)
		raw := []byte(`{"api_key":"sk-S3CR3TS3CR3T","password":"hun\"ter2","pin":4711,"headers":[["Authorization","Bearer x-short"]],"q":"visible"}`)
		_, _ = f.a.Wrap(func(_ context.Context, req ToolRequest) (ToolResult, error) {
			return ToolResult{IsError: true, ErrorMessage: "rejected " + string(raw) + "; " + quoting(nil).Error()}, nil
		})(context.Background(), ToolRequest{Tool: "t", Args: json.RawMessage(raw)})
		check(t, f, true)
	})
	t.Run("base64 form", func(t *testing.T) {
		f := newFixture(t)
		// A []byte argument in error text marshalled as JSON is base64.
		b, _ := json.Marshal([]byte(`hun"ter2`))
		f.a.Record(context.Background(), Call{Tool: "t", Args: map[string]any{"password": `hun"ter2`}, Err: errors.New("bad blob " + string(b) + ", q=visible")})
		_, attrs := f.only(t)
		if msg := attrs[otelaudit.ErrorMessageKey].AsString(); strings.Contains(msg, "aHVuInRlcjI=") || !strings.Contains(msg, "visible") {
			t.Errorf("error text %q", msg)
		}
	})
	t.Run("HMAC mode", func(t *testing.T) {
		f := newFixture(t, WithHMACKey([]byte("k")))
		f.a.Record(context.Background(), Call{Tool: "t", Args: args, Err: quoting(args)})
		check(t, f, true)
		_, attrs := f.only(t)
		if !strings.Contains(attrs[otelaudit.ErrorMessageKey].AsString(), HMACPrefix) {
			t.Errorf("HMAC mode error text %q", attrs[otelaudit.ErrorMessageKey].AsString())
		}
	})
	t.Run("patterns without arguments", func(t *testing.T) {
		f := newFixture(t)
		f.a.Record(context.Background(), Call{Tool: "t", Err: errors.New("upstream said: token sk-S3CR3TS3CR3T invalid, q=visible")})
		check(t, f, true)
	})
	t.Run("WithErrorText(false)", func(t *testing.T) {
		f := newFixture(t, WithErrorText(false))
		_, _ = f.a.Wrap(func(_ context.Context, req ToolRequest) (ToolResult, error) {
			return ToolResult{}, quoting(req.Args)
		})(context.Background(), ToolRequest{Tool: "t", Args: args})
		check(t, f, false)
		if d := f.spans.Ended()[0].Status().Description; d != "" {
			t.Errorf("span status %q with WithErrorText(false)", d)
		}
	})
}
