package integrity

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

func canon(t *testing.T, in string) string {
	t.Helper()
	out, ok := AppendCanonicalJSON(nil, []byte(in))
	if !ok {
		t.Fatalf("AppendCanonicalJSON(%q): not valid", in)
	}
	return string(out)
}

func TestCanonicalJSONExamples(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"b":1,"a":[true,false,null]}`, `{"a":[true,false,null],"b":1}`},
		{` { "a" : 1.50 , "b":1e2, "c":-0, "d":0.0, "e":1E-7 } `, `{"a":1.5,"b":100,"c":0,"d":0,"e":1e-7}`},
		{`{"a":1,"a":2}`, `{"a":2}`}, // jsonb keeps the last duplicate
		{`"\u00e9\u2028\/\"\\\b\f\n\r\t\u0001"`, `"é` + "\u2028" + `/\"\\\b\f\n\r\t\u0001"`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`12345678901234567890123`, `1.2345678901234567890123e+22`}, // not a double: exact
		{`1e400`, `1e+400`},
		{`-1.000e-400`, `-1e-400`},
		{`9007199254740993`, `9.007199254740993e+15`},
		{`9007199254740992`, `9007199254740992`},
		{`0.1`, `0.1`},
		{`{"\u20ac":1,"\r":2,"😀":3,"\ufb33":4}`, `{"\r":2,"€":1,"😀":3,"` + "\ufb33" + `":4}`}, // UTF-16 order
		{`{}`, `{}`}, {`[]`, `[]`}, {`[[],{}]`, `[[],{}]`},
	} {
		if got := canon(t, tc.in); got != tc.want {
			t.Errorf("canonical(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCanonicalJSONInvalid(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"}`, `[1,]`, `01`, `1.`, `"\x01"`, `tru`, `{"a":1}x`, `"\u12"`} {
		out, ok := AppendCanonicalJSON(nil, []byte(in))
		if ok {
			t.Errorf("AppendCanonicalJSON(%q) = %s, valid; want invalid", in, out)
		}
		var s string
		if err := json.Unmarshal(out, &s); err != nil || !strings.HasPrefix(s, "\x00invalid-json:") {
			t.Errorf("AppendCanonicalJSON(%q) = %s, want the marked raw string", in, out)
		}
	}
}

// TestCanonicalJSONMatchesJCS holds that the form is RFC 8785's, as the
// gowebpki/jcs library computes it, for every document RFC 8785 accepts
// whose numbers are the shortest forms of doubles.
func TestCanonicalJSONMatchesJCS(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		doc := randomJSON(r, 0, true)
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		want, err := jcs.Transform(b)
		if err != nil {
			t.Fatalf("jcs.Transform(%s): %v", b, err)
		}
		got, ok := AppendCanonicalJSON(nil, b)
		if !ok || string(got) != string(want) {
			t.Fatalf("doc %d: canonical(%s)\n = %s\nwant %s", i, b, got, want)
		}
		// Idempotent.
		again, _ := AppendCanonicalJSON(nil, got)
		if string(again) != string(got) {
			t.Fatalf("canonical form is not a fixed point: %s -> %s", got, again)
		}
	}
}

// randomJSON returns a random JSON value. With doublesOnly, its numbers are
// float64 values (which encoding/json writes in their shortest form).
func randomJSON(r *rand.Rand, depth int, doublesOnly bool) any {
	k := r.IntN(10)
	if depth > 6 {
		k = r.IntN(6)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return randomString(r)
	case 3:
		return randomNumber(r, doublesOnly)
	case 4:
		return r.Float64() * 1e6
	case 5:
		return ""
	case 6, 7:
		n := r.IntN(5)
		a := make([]any, n)
		for i := range a {
			a[i] = randomJSON(r, depth+1, doublesOnly)
		}
		return a
	default:
		n := r.IntN(6)
		m := make(map[string]any, n)
		for range n {
			m[randomString(r)] = randomJSON(r, depth+1, doublesOnly)
		}
		return m
	}
}

var alphabet = []rune("aZ09 _-\"\\/\b\f\n\r\t\x01\x1f\x7féü€\u2028\u2029\ufb33\ufffd😀𝄞中文")

func randomString(r *rand.Rand) string {
	n := r.IntN(8)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func randomNumber(r *rand.Rand, doublesOnly bool) any {
	switch r.IntN(7) {
	case 0:
		return r.Int64N(1<<53) - 1<<52
	case 1:
		return r.NormFloat64() * 1e-9
	case 2:
		return r.NormFloat64() * 1e300
	case 3:
		return float64(r.IntN(1000)) / 8
	case 4:
		if doublesOnly {
			return 0.1
		}
		return json.Number(strconv.FormatInt(r.Int64(), 10) + strconv.FormatInt(r.Int64(), 10)) // beyond a double
	case 5:
		if doublesOnly {
			return 1e21
		}
		return json.Number("1." + strings.Repeat("0", r.IntN(4)) + "e" + strconv.Itoa(r.IntN(800)-400))
	default:
		if doublesOnly {
			return math.Copysign(0, -1)
		}
		return json.Number("-0.000" + strconv.Itoa(r.IntN(100)) + "00")
	}
}

// TestHashedColumns holds that every audit column is either hashed by the
// canonical row document or one of the integrity columns themselves: a
// column added to the table must be added to a new row version knowingly.
func TestHashedColumns(t *testing.T) {
	hashed := map[string]bool{}
	for _, n := range HashedColumns {
		hashed[n] = true
	}
	for _, c := range auditrow.Columns {
		if !hashed[c.Name] {
			t.Errorf("column %s is in auditrow.Columns but not hashed (HashedColumns of row version %d)", c.Name, RowVersion)
		}
		delete(hashed, c.Name)
	}
	for n := range hashed {
		t.Errorf("hashed column %s is not in auditrow.Columns", n)
	}
	if len(canonicalColumns) != len(HashedColumns) {
		t.Errorf("canonicalColumns has %d columns, want %d", len(canonicalColumns), len(HashedColumns))
	}
}
