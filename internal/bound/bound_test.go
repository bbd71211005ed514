package bound

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sentinel-gateway/otelaudit"
)

func TestString(t *testing.T) {
	long := strings.Repeat("a", 300)
	euro := strings.Repeat("€", 100) // 300 bytes, 3 per rune
	for _, tt := range []struct {
		name    string
		in      string
		limit   int
		want    string
		changed bool
	}{
		{"short", "echo", 256, "echo", false},
		{"exact", long[:256], 256, long[:256], false},
		{"long", long, 256, long[:256-len(otelaudit.TruncatedSuffix)] + otelaudit.TruncatedSuffix, true},
		{"multibyte", euro, 256, strings.Repeat("€", (256-len(otelaudit.TruncatedSuffix))/3) + otelaudit.TruncatedSuffix, true},
		{"nul", "a\x00b", 256, "a\uFFFDb", true},
		{"invalid", "a\xffb", 256, "a\uFFFDb", true},
		{"tiny limit", euro, 5, "€", true},
		{"no limit", long, 0, long, false},
		{"no limit invalid", "\xc3", 0, "\uFFFD", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := String(tt.in, tt.limit)
			if got != tt.want || changed != tt.changed {
				t.Errorf("String(%q, %d) = %q, %v; want %q, %v", tt.in, tt.limit, got, changed, tt.want, tt.changed)
			}
			if tt.limit > 0 && len(got) > tt.limit {
				t.Errorf("%d bytes over the limit %d", len(got), tt.limit)
			}
			if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
				t.Errorf("result %q not clean", got)
			}
		})
	}
}

// Every cut of every string keeps the result valid UTF-8 within the limit.
func TestStringNeverSplitsRunes(t *testing.T) {
	in := "a€b𝄞c\xffé\x00" + strings.Repeat("𝄞€é", 40)
	for limit := 1; limit <= len(in)+2; limit++ {
		got, _ := String(in, limit)
		if len(got) > limit {
			t.Fatalf("limit %d: %d bytes", limit, len(got))
		}
		if !Clean(got) {
			t.Fatalf("limit %d: %q not clean", limit, got)
		}
	}
}

func TestPrefix(t *testing.T) {
	s := "é𝄞" // 2 + 4 bytes
	for n, want := range map[int]string{0: "", 1: "", 2: "é", 3: "é", 5: "é", 6: s, 9: s} {
		if got := Prefix(s, n); got != want {
			t.Errorf("Prefix(%q, %d) = %q, want %q", s, n, got, want)
		}
	}
	if got := Prefix("\x80\x80\x80\x80\x80", 3); len(got) != 3 {
		t.Errorf("invalid input: %q", got)
	}
}

func TestMarkers(t *testing.T) {
	size, sum := Markers(otelaudit.ToolNameKey, "abc")
	if size.Key != "otelaudit.truncated.gen_ai.tool.name.size" || size.Value.AsInt64() != 3 {
		t.Errorf("size marker %v", size)
	}
	if sum.Key != "otelaudit.truncated.gen_ai.tool.name.sha256" ||
		sum.Value.AsString() != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("sha256 marker %v", sum)
	}
}

func TestSanitizeCleanDoesNotAllocate(t *testing.T) {
	s := strings.Repeat("tool-€", 20)
	if n := testing.AllocsPerRun(100, func() { _ = Sanitize(s); _, _ = String(s, 256) }); n != 0 {
		t.Errorf("%v allocations for a clean value", n)
	}
}
