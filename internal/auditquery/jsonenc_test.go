package auditquery

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "\x00\x01\x1f\x7f", "\n\r\t", "\u2028\u2029",
		"é中😀", "\xff\xfe bad utf-8 \xc3", "<script>&amp;</script>", xssLike}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.IntN(24))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		got := appendString(nil, s)
		if !json.Valid(got) {
			t.Fatalf("appendString(%q) = %s: not valid JSON", s, got)
		}
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
		if back != want {
			t.Fatalf("appendString(%q) decodes to %q, encoding/json's to %q", s, back, want)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("valid %q came back as %q", s, back)
		}
	}
}

const xssLike = "<img src=x onerror=alert(1)>\x1b[31m"

// TestAppendJSONAndOCSF: the hand-written encoders produce the documents
// encoding/json produces from the same rows.
func TestAppendJSONAndOCSF(t *testing.T) {
	pool := testDB(t)
	rows := collect(t, pool, Query{})
	port := "443"
	addr := "10.0.0.7"
	rows = append(rows, Row{ID: 1, Timestamp: time.Unix(0, 0), CreatedAt: time.Unix(1, 5000), ClientAddress: &addr, ClientPort: &port, Status: "error"})
	for _, r := range rows {
		var got, want any
		if err := json.Unmarshal(r.AppendJSON(nil), &got); err != nil {
			t.Fatalf("AppendJSON: %v\n%s", err, r.AppendJSON(nil))
		}
		ref, _ := json.Marshal(&r)
		_ = json.Unmarshal(ref, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("AppendJSON differs:\n got %s\nwant %s", r.AppendJSON(nil), ref)
		}
		got, want = nil, nil
		if err := json.Unmarshal(r.AppendOCSF(nil, "v", "audit_log"), &got); err != nil {
			t.Fatalf("AppendOCSF: %v\n%s", err, r.AppendOCSF(nil, "v", "audit_log"))
		}
		ref, _ = json.Marshal(r.OCSF("v", "audit_log"))
		_ = json.Unmarshal(ref, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("AppendOCSF differs:\n got %s\nwant %s", r.AppendOCSF(nil, "v", "audit_log"), ref)
		}
	}
}
