package instrumentation

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/sentinel-gateway/otelaudit"
)

// Every shape a secret comes in, with the value that is stored. No stored
// value may contain the secret.
func TestRedactionShapes(t *testing.T) {
	const R = RedactedValue
	const (
		jwt    = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
		ghp    = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
		xoxb   = "xoxb-123456789012-abcdefghijkl"
		akia   = "AKIAIOSFODNN7EXAMPLE"
		sk     = "sk-S3CR3TS3CR3T"
		stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
		pem    = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END RSA PRIVATE KEY-----"
		bearer = "Bearer abcDEF123456.tok"
		gkey   = "AIzaSyA1234567890abcdefghijklmnopqrstuv"
	)
	tests := []struct {
		name    string
		args    any
		opts    []Option
		want    string // JSON
		secrets []string
	}{
		// Keys.
		{"longer default key list", map[string]any{
			"passphrase": "s1", "pwd": "s2", "db_pass": "s3", "auth": "s4", "creds": "s5",
			"signing_key": "s6", "ssh_key": "s7", "author": "Jane", "compass": "north",
		}, nil, `{"passphrase":"` + R + `","pwd":"` + R + `","db_pass":"` + R + `","auth":"` + R + `","creds":"` + R +
			`","signing_key":"` + R + `","ssh_key":"` + R + `","author":"Jane","compass":"north"}`,
			[]string{"s1", "s2", "s3", "s4", "s5", "s6", "s7"}},
		// Name/value pairs and header lists.
		{"header list of pairs", map[string]any{"headers": []any{[]any{"Authorization", "Bearer x"}, []any{"Accept", "text/plain"}}}, nil,
			`{"headers":[["Authorization","` + R + `"],["Accept","text/plain"]]}`, []string{"Bearer x"}},
		{"header pair of strings", map[string]any{"h": []string{"X-Api-Key", "k-123"}}, nil,
			`{"h":["X-Api-Key","` + R + `"]}`, []string{"k-123"}},
		{"name/value object", map[string]any{"headers": []any{map[string]any{"name": "Authorization", "value": "Bearer x"}, map[string]any{"name": "Accept", "value": "json"}}}, nil,
			`{"headers":[{"name":"Authorization","value":"` + R + `"},{"name":"Accept","value":"json"}]}`, []string{"Bearer x"}},
		{"key/value object of strings", map[string]any{"env": []any{map[string]string{"key": "DB_PASSWORD", "value": "hunter2"}}}, nil,
			`{"env":[{"key":"DB_PASSWORD","value":"` + R + `"}]}`, []string{"hunter2"}},
		{"header map", map[string][]string{"Authorization": {"Bearer x"}, "Accept": {"json"}}, nil,
			`{"Authorization":"` + R + `","Accept":["json"]}`, []string{"Bearer x"}},
		{"header line", map[string]any{"h": []any{"Authorization: Bearer x", "Accept: json"}}, nil,
			`{"h":["Authorization: ` + R + `","Accept: json"]}`, []string{"Bearer x"}},
		// URLs.
		{"URL userinfo", map[string]any{"db": "postgres://u:pw@h:5432/app?sslmode=disable"}, nil,
			`{"db":"postgres://u:` + R + `@h:5432/app?sslmode=disable"}`, []string{"pw@"}},
		{"URL token userinfo", map[string]any{"repo": "https://" + ghp + "@github.com/o/r.git"}, nil,
			`{"repo":"https://` + R + `@github.com/o/r.git"}`, []string{ghp}},
		{"query parameter", map[string]any{"url": "https://h/p?api_key=k123&q=1&access_token=t456#f"}, nil,
			`{"url":"https://h/p?api_key=` + R + `&q=1&access_token=` + R + `#f"}`, []string{"k123", "t456"}},
		{"DSN key=value", map[string]any{"conn": "host=db user=app password=hunter2 sslmode=require"}, nil,
			`{"conn":"host=db user=app password=` + R + ` sslmode=require"}`, []string{"hunter2"}},
		// Value patterns under innocuous keys.
		{"bearer token", map[string]any{"note": "use " + bearer + " please"}, nil, `{"note":"use Bearer ` + R + ` please"}`, []string{"abcDEF123456"}},
		{"sk- key", map[string]any{"x": sk}, nil, `{"x":"` + R + `"}`, []string{sk}},
		{"Stripe key", map[string]any{"x": stripe}, nil, `{"x":"` + R + `"}`, []string{stripe}},
		{"GitHub token", map[string]any{"x": "t=" + ghp}, nil, `{"x":"t=` + R + `"}`, []string{ghp}},
		{"Slack token", map[string]any{"x": xoxb}, nil, `{"x":"` + R + `"}`, []string{xoxb}},
		{"AWS key id", map[string]any{"x": "id " + akia}, nil, `{"x":"id ` + R + `"}`, []string{akia}},
		{"Google API key", map[string]any{"x": gkey}, nil, `{"x":"` + R + `"}`, []string{gkey}},
		{"JWT", map[string]any{"x": jwt}, nil, `{"x":"` + R + `"}`, []string{jwt, "c2lnbmF0dXJl"}},
		{"PEM private key", map[string]any{"x": "key:\n" + pem + "\nend"}, nil, `{"x":"key:\n` + R + `\nend"}`, []string{"MIIEpAIBAAKCAQEA"}},
		{"pattern in a nested list", []any{[]any{map[string]any{"k": []string{"a", sk}}}}, nil, `[[{"k":["a","` + R + `"]}]]`, []string{sk}},
		{"patterns off", map[string]any{"x": sk}, []Option{WithoutDefaultSecretPatterns()}, `{"x":"` + sk + `"}`, nil},
		{"own pattern", map[string]any{"x": "acme_0123456789"}, []Option{WithSecretPatterns(SecretPattern{Name: "acme", Prefix: "acme_", Regexp: regexp.MustCompile(`acme_[0-9]{10}`)})},
			`{"x":"` + R + `"}`, []string{"0123456789"}},
		{"secret as a key", map[string]any{"users": map[string]any{sk: "alice"}, "raw": `{"` + ghp + `":1}`}, nil,
			`{"users":{"` + R + `":"alice"},"raw":"{\"` + R + `\":1}"}`, []string{sk, ghp}},
		{"word boundary", map[string]any{"x": "task-list", "y": "desk-lamp1234567890"}, nil, `{"x":"task-list","y":"desk-lamp1234567890"}`, nil},
		// JSON in strings, []string and []byte.
		{"JSON inside []string", map[string]any{"configs": []string{`{"password":"p1"}`, "plain"}}, nil,
			`{"configs":["{\"password\":\"` + R + `\"}","plain"]}`, []string{"p1"}},
		{"[]byte value", map[string]any{"blob": []byte(`{"token":"t1"}`), "text": []byte("Bearer abcdefghijkl")}, nil,
			`{"blob":"{\"token\":\"` + R + `\"}","text":"Bearer ` + R + `"}`, []string{"t1", "abcdefghijkl"}},
		{"[]byte under a secret key", map[string]any{"secret": []byte("s3cr3t")}, nil, `{"secret":"` + R + `"}`, []string{"s3cr3t", "czNjcjN0"}},
		{"JSON in JSON in a string", map[string]any{"a": `{"b":"{\"pwd\":\"p2\"}"}`}, nil,
			`{"a":"{\"b\":\"{\\\"pwd\\\":\\\"` + R + `\\\"}\"}"}`, []string{"p2"}},
		{"name/value inside a JSON string", map[string]any{"h": `[{"name":"Cookie","value":"sid=abc"}]`}, nil,
			`{"h":"[{\"name\":\"Cookie\",\"value\":\"` + R + `\"}]"}`, []string{"sid=abc"}},
		{"pattern inside a JSON string", map[string]any{"h": `{"note":"` + sk + `"}`}, nil,
			`{"h":"{\"note\":\"` + R + `\"}"}`, []string{sk}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recordedArgs(t, tt.args, tt.opts...)
			b, _ := json.Marshal(got)
			t.Logf("stored: %s", b)
			want := jsonOf(t, tt.want)
			if !reflect.DeepEqual(normalise(got), normalise(want)) {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(string(b), s) || strings.Contains(strings.ReplaceAll(string(b), `\`, ""), s) {
					t.Errorf("stored value contains the secret %q", s)
				}
			}
		})
	}
}

// One depth rule everywhere: an object or array at nesting level > 32 is
// cut, also when it sits in a JSON string.
func TestDepthLimit(t *testing.T) {
	nest := func(levels int, inner any) any {
		v := inner
		for range levels - 1 {
			v = []any{v}
		}
		return v
	}
	// Level 32 is kept: 32 nested arrays, the innermost holding a secret
	// object would be level 33, so use a string secret pair instead.
	kept := nest(otelaudit.MaxJSONDepth, []any{"x"})
	b, _ := json.Marshal(recordedArgs(t, kept))
	if strings.Contains(string(b), otelaudit.DepthLimitValue) {
		t.Errorf("32 levels cut: %s", b)
	}
	cut := nest(otelaudit.MaxJSONDepth+1, []any{"x"})
	b, _ = json.Marshal(recordedArgs(t, cut))
	if !strings.Contains(string(b), otelaudit.DepthLimitValue) || brackets(b) != otelaudit.MaxJSONDepth {
		t.Errorf("33 levels not cut at level 33: %s", b)
	}
	// A JSON string at depth 32 (enclosed by 32 arrays) would put its
	// object at level 33: cut, so that its secret cannot pass unredacted.
	inStr := nest(otelaudit.MaxJSONDepth, []any{`{"password":"deep-secret"}`})
	b, _ = json.Marshal(recordedArgs(t, inStr))
	if strings.Contains(string(b), "deep-secret") || !strings.Contains(string(b), otelaudit.DepthLimitValue) {
		t.Errorf("JSON string at depth 32: %s", b)
	}
	// Enclosed by 31, its object is at level 32: parsed and redacted.
	inStr = nest(otelaudit.MaxJSONDepth-1, []any{`{"password":"deep-secret"}`})
	b, _ = json.Marshal(recordedArgs(t, inStr))
	if strings.Contains(string(b), "deep-secret") || strings.Contains(string(b), otelaudit.DepthLimitValue) {
		t.Errorf("JSON string at depth 31: %s", b)
	}
	// The same rule for raw JSON.
	raw := json.RawMessage(strings.Repeat("[", 33) + strings.Repeat("]", 33))
	b, _ = json.Marshal(recordedArgs(t, raw))
	if brackets(b) != otelaudit.MaxJSONDepth {
		t.Errorf("raw JSON: %s", b)
	}
}

// brackets counts the arrays in b, not the brackets of DepthLimitValue.
func brackets(b []byte) int {
	return strings.Count(strings.ReplaceAll(string(b), otelaudit.DepthLimitValue, ""), "[")
}
