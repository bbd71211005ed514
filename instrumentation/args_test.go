package instrumentation

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
)

// recordedArgs records a call with args and returns its arguments as JSON
// values.
func recordedArgs(t *testing.T, args any, opts ...Option) any {
	t.Helper()
	f := newFixture(t, opts...)
	f.a.Record(context.Background(), Call{Tool: "t", Args: args})
	_, attrs := f.only(t)
	v, ok := attrs[otelaudit.ToolCallArgumentsKey]
	if !ok {
		t.Fatalf("no arguments recorded")
	}
	return audittest.JSON(v)
}

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

type creds struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func TestRedaction(t *testing.T) {
	const R = RedactedValue
	tests := []struct {
		name string
		args any
		opts []Option
		want string // JSON
	}{
		{"flat", map[string]any{"q": "x", "password": "p"}, nil, `{"q":"x","password":"` + R + `"}`},
		{"all default keys", map[string]any{
			"password": 1, "passwd": 1, "secret": 1, "token": 1, "api_key": 1, "apikey": 1,
			"authorization": 1, "cookie": 1, "credential": 1, "private_key": 1, "plain": 1,
		}, nil, `{"password":"` + R + `","passwd":"` + R + `","secret":"` + R + `","token":"` + R +
			`","api_key":"` + R + `","apikey":"` + R + `","authorization":"` + R + `","cookie":"` + R +
			`","credential":"` + R + `","private_key":"` + R + `","plain":1}`},
		{"case and containment", map[string]any{
			"X-Api-Key": "k", "access_token": "t", "PrivateKey": "p", "DB_PASSWORD": "p",
			"clientSecret": "s", "Set-Cookie": "c", "credentials": "c", "private-key": "p",
		}, nil, `{"X-Api-Key":"` + R + `","access_token":"` + R + `","PrivateKey":"` + R +
			`","DB_PASSWORD":"` + R + `","clientSecret":"` + R + `","Set-Cookie":"` + R +
			`","credentials":"` + R + `","private-key":"` + R + `"}`},
		{"whole subtree", map[string]any{"secret": map[string]any{"a": 1}}, nil, `{"secret":"` + R + `"}`},
		{"depth", map[string]any{"a": map[string]any{"b": []any{map[string]any{"token": "t", "ok": true}}}}, nil,
			`{"a":{"b":[{"token":"` + R + `","ok":true}]}}`},
		{"nested JSON string", map[string]any{"config": `{"db":{"password":"p","host":"h"}}`}, nil,
			`{"config":"{\"db\":{\"host\":\"h\",\"password\":\"` + R + `\"}}"}`},
		{"nested JSON string without secrets is kept", map[string]any{"config": ` {"b": 1, "a": 2}`}, nil,
			`{"config":" {\"b\": 1, \"a\": 2}"}`},
		{"JSON array string", map[string]any{"list": `[{"token":"t"}]`}, nil,
			`{"list":"[{\"token\":\"` + R + `\"}]"}`},
		{"raw message", json.RawMessage(`{"q":"x","auth":{"Authorization":"Bearer abc"},"n":12345678901234567}`), nil,
			`{"q":"x","auth":"` + R + `","n":12345678901234567}`},
		{"raw nested JSON string", json.RawMessage(`{"s":"{\"apikey\":\"k\"}"}`), nil,
			`{"s":"{\"apikey\":\"` + R + `\"}"}`},
		{"struct", creds{User: "u", Password: "p"}, nil, `{"user":"u","password":"` + R + `"}`},
		{"map of strings", map[string]string{"token": "t", "a": "b"}, nil, `{"token":"` + R + `","a":"b"}`},
		{"slice", []any{map[string]any{"cookie": "c"}, 1, "x"}, nil, `[{"cookie":"` + R + `"},1,"x"]`},
		{"extra keys", map[string]any{"ssn": "1", "card_number": "2", "q": 3}, []Option{WithRedactKeys("SSN", "card-number")},
			`{"ssn":"` + R + `","card_number":"` + R + `","q":3}`},
		{"string", "plain", nil, `"plain"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recordedArgs(t, tt.args, tt.opts...)
			want := jsonOf(t, tt.want)
			// Nested JSON strings are compared as JSON.
			if !reflect.DeepEqual(normalise(got), normalise(want)) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
		})
	}
}

// normalise decodes strings that hold JSON so they compare by value.
func normalise(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = normalise(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalise(e)
		}
		return s
	case string:
		if looksLikeJSON(x) {
			var y any
			if json.Unmarshal([]byte(x), &y) == nil {
				return map[string]any{"json": normalise(y)}
			}
		}
	}
	return v
}

func TestRedactionLeavesArgsUntouched(t *testing.T) {
	args := map[string]any{"password": "p", "inner": map[string]any{"token": "t"}, "s": `{"secret":"x"}`}
	recordedArgs(t, args)
	if args["password"] != "p" || args["inner"].(map[string]any)["token"] != "t" || args["s"] != `{"secret":"x"}` {
		t.Fatalf("arguments were modified: %v", args)
	}
}

func TestHMAC(t *testing.T) {
	key := []byte("k1")
	mac := func(key []byte, s string) string {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return HMACPrefix + hex.EncodeToString(h.Sum(nil))
	}
	args := map[string]any{"password": "hunter2", "token": map[string]any{"a": 1}, "q": "x"}
	// Every value is read as a string: a redacted value that is anything
	// else (say a map) is a failure, not a panic of the comparison.
	strs := func(v any) map[string]string {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("arguments %v are not an object", v)
		}
		out := map[string]string{}
		for k, e := range m {
			s, ok := e.(string)
			if !ok {
				t.Errorf("%s = %v (%T), want a string", k, e, e)
			}
			out[k] = s
		}
		return out
	}
	a1 := strs(recordedArgs(t, args, WithHMACKey(key)))
	a2 := strs(recordedArgs(t, args, WithHMACKey(key)))
	b := strs(recordedArgs(t, args, WithHMACKey([]byte("k2"))))
	if a1["password"] != mac(key, "hunter2") {
		t.Errorf("password = %v, want %v", a1["password"], mac(key, "hunter2"))
	}
	if a1["token"] != mac(key, `{"a":1}`) {
		t.Errorf("token = %v, want the HMAC of its JSON", a1["token"])
	}
	if a1["password"] != a2["password"] || a1["token"] != a2["token"] {
		t.Errorf("HMAC not stable: %v vs %v", a1, a2)
	}
	if a1["password"] == b["password"] {
		t.Errorf("HMAC does not depend on the key")
	}
	if a1["q"] != "x" {
		t.Errorf("q = %v", a1["q"])
	}
	// Concurrent use of the pooled hashes gives the same results.
	f := newFixture(t, WithHMACKey(key))
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				if got := f.a.redactor.redactString("hunter2"); got != mac(key, "hunter2") {
					t.Errorf("concurrent HMAC = %v", got)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func TestTruncation(t *testing.T) {
	big := strings.Repeat("x", 200)
	args := map[string]any{"data": big, "note": "p"}
	orig, _ := json.Marshal(args)
	sum := sha256.Sum256(orig)
	got := recordedArgs(t, args, WithMaxArgsBytes(100)).(map[string]any)
	want := map[string]any{otelaudit.MarkerTruncatedKey: true, otelaudit.MarkerSizeKey: float64(len(orig)), otelaudit.MarkerSHA256Key: hex.EncodeToString(sum[:])}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	raw := json.RawMessage(`{"data":"` + big + `"}`)
	rawSum := sha256.Sum256(raw)
	got = recordedArgs(t, raw, WithMaxArgsBytes(100)).(map[string]any)
	want = map[string]any{otelaudit.MarkerTruncatedKey: true, otelaudit.MarkerSizeKey: float64(len(raw)), otelaudit.MarkerSHA256Key: hex.EncodeToString(rawSum[:])}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("raw: got %v, want %v", got, want)
	}

	// Just under the limit is kept.
	small := map[string]any{"data": strings.Repeat("x", 80)}
	if got := recordedArgs(t, small, WithMaxArgsBytes(100)).(map[string]any); got["data"] != small["data"] {
		t.Errorf("arguments under the limit were replaced: %v", got)
	}
	// The default limit is 64 KiB.
	huge := map[string]any{"data": strings.Repeat("<", otelaudit.DefaultMaxArgsBytes/6)}
	if got := recordedArgs(t, huge).(map[string]any); got[otelaudit.MarkerTruncatedKey] != true {
		t.Errorf("arguments of %d bytes as JSON were not truncated", len(mustJSON(t, huge)))
	}
}

// TestMarkerDigestConfirmsNoSecret: the digest of a marker would let whoever
// reads the row confirm a guessed secret (here a 4-digit PIN beside known
// data: 10,000 tries), so arguments in which redaction found a secret, or
// which it cannot read, get no plain SHA-256: the HMAC under WithHMACKey's
// key, or no digest.
func TestMarkerDigestConfirmsNoSecret(t *testing.T) {
	key := []byte("marker-test-key")
	keyed := func(b []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write(b)
		return HMACPrefix + hex.EncodeToString(m.Sum(nil))
	}
	big := strings.Repeat("x", 200)
	withSecret := map[string]any{"data": big, "pin": "4711"}
	withSecretJSON := mustJSON(t, withSecret)
	rawSecret := json.RawMessage(`{"data":"` + big + `","headers":[["Authorization","Bearer abc"]]}`)
	patterned := json.RawMessage(`{"data":"` + big + `","note":"ghp_0123456789abcdefghijABCDEFGHIJ012345"}`)
	invalid := json.RawMessage(`{"pin":"4711"`)
	bigInvalid := json.RawMessage(`{"pin":"4711","data":"` + big + `"`)
	plain := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

	tests := []struct {
		name    string
		args    any
		orig    []byte
		marker  string
		keyless bool // the digest is absent without a key (else plain SHA-256 of orig)
	}{
		{"map with a secret key", withSecret, withSecretJSON, otelaudit.MarkerTruncatedKey, true},
		{"raw with a header list", rawSecret, rawSecret, otelaudit.MarkerTruncatedKey, true},
		{"raw with a token under an innocent key", patterned, patterned, otelaudit.MarkerTruncatedKey, true},
		{"invalid JSON", invalid, invalid, otelaudit.MarkerInvalidKey, true},
		{"oversized invalid JSON", bigInvalid, bigInvalid, otelaudit.MarkerTruncatedKey, true},
		{"clean raw", json.RawMessage(`{"data":"` + big + `"}`), []byte(`{"data":"` + big + `"}`), otelaudit.MarkerTruncatedKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recordedArgs(t, tt.args, WithMaxArgsBytes(100)).(map[string]any)
			if got[tt.marker] == nil || got[otelaudit.MarkerSizeKey] != float64(len(tt.orig)) {
				t.Fatalf("marker %v: want %s and size %d", got, tt.marker, len(tt.orig))
			}
			d, has := got[otelaudit.MarkerSHA256Key]
			switch {
			case tt.keyless && has:
				t.Errorf("digest %v given without a key for arguments holding a secret", d)
			case !tt.keyless && d != plain(tt.orig):
				t.Errorf("digest %v, want the SHA-256 of the clean arguments", d)
			}
			got = recordedArgs(t, tt.args, WithMaxArgsBytes(100), WithHMACKey(key)).(map[string]any)
			want := keyed(tt.orig)
			if !tt.keyless {
				want = plain(tt.orig)
			}
			if got[otelaudit.MarkerSHA256Key] != want {
				t.Errorf("with a key: digest %v, want %s", got[otelaudit.MarkerSHA256Key], want)
			}
		})
	}
}

// TestOversizedArgumentsSecretsLeaveTheErrorText: arguments over the limit
// are not stored, but their secrets are still removed from the error text.
func TestOversizedArgumentsSecretsLeaveTheErrorText(t *testing.T) {
	big := strings.Repeat("x", 200)
	for _, args := range []any{
		json.RawMessage(`{"data":"` + big + `","password":"Tr0ub4dor-and-3"}`),
		map[string]any{"data": big, "password": "Tr0ub4dor-and-3"},
	} {
		f := newFixture(t, WithMaxArgsBytes(100))
		f.a.Record(context.Background(), Call{Tool: "t", Args: args,
			Err: errors.New("login refused for password Tr0ub4dor-and-3")})
		_, attrs := f.only(t)
		if msg := attrs[otelaudit.ErrorMessageKey].AsString(); strings.Contains(msg, "Tr0ub4dor") || !strings.Contains(msg, "login refused") {
			t.Errorf("%T: error text %q", args, msg)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInvalidArgs(t *testing.T) {
	tests := []struct {
		name   string
		args   any
		reason string
		sized  bool
	}{
		{"channel", make(chan int), "cannot marshal chan int", false},
		{"func", func() {}, "cannot marshal func()", false},
		{"panicking MarshalJSON", panicker{}, "cannot marshal instrumentation.panicker: panic", false},
		{"invalid JSON", json.RawMessage(`{"a":`), "invalid JSON", true},
		{"trailing data", json.RawMessage(`{"a":1} x`), "invalid JSON", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recordedArgs(t, tt.args).(map[string]any)
			if r, _ := got[otelaudit.MarkerInvalidKey].(string); !strings.HasPrefix(r, tt.reason) {
				t.Errorf("marker %v, want reason starting with %q", got, tt.reason)
			}
			if _, ok := got[otelaudit.MarkerSizeKey]; ok != tt.sized {
				t.Errorf("marker %v: size present = %v, want %v", got, ok, tt.sized)
			}
		})
	}
	// A value nested in a map that cannot be marshalled is marked alone.
	got := recordedArgs(t, map[string]any{"q": "x", "c": make(chan int)}).(map[string]any)
	if got["q"] != "x" || got["c"].(map[string]any)[otelaudit.MarkerInvalidKey] == nil {
		t.Errorf("got %v", got)
	}
}

func TestArgValueTypes(t *testing.T) {
	f := newFixture(t)
	f.a.Record(context.Background(), Call{Tool: "t", Args: map[string]any{
		"i": 1, "f": 1.5, "b": true, "n": nil, "s": []string{"a"}, "big": json.Number("123456789012345678901234567890"),
	}})
	_, attrs := f.only(t)
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range attrs[otelaudit.ToolCallArgumentsKey].AsMap() {
		m[kv.Key] = kv.Value
	}
	checks := map[attribute.Key]attribute.Type{
		"i": attribute.INT64, "f": attribute.FLOAT64, "b": attribute.BOOL, "n": attribute.EMPTY,
		"s": attribute.STRINGSLICE, "big": attribute.FLOAT64,
	}
	for k, typ := range checks {
		if m[k].Type() != typ {
			t.Errorf("%s: type %v, want %v", k, m[k].Type(), typ)
		}
	}
}

func TestSecretKeyMatcher(t *testing.T) {
	r := newRedactor(nil, nil, nil)
	for _, k := range []string{"password", "PASSWORD", "user_passwd", "x-api-key", "Api.Key", "refreshToken", strings.Repeat("a", 100) + "secret",
		"pass", "db_pass", "DB-PASS", "passPhrase", "pwd", "auth", "authHeader", "X-Auth", "creds", "aws_creds", "signing_key", "ssh_key", "sshKey", "pin"} {
		if !r.secret(k) {
			t.Errorf("%q not secret", k)
		}
	}
	for _, k := range []string{"query", "user", "path", "key", "api", "", "compass", "passage", "author", "authority", "bypass", "spinner", "shipping", "keyboard"} {
		if r.secret(k) {
			t.Errorf("%q secret", k)
		}
	}
}
