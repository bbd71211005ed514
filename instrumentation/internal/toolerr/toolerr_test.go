package toolerr

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	text := func(s string) (string, bool) { return s, s != "image" }
	if got := Text([]string{"disk", "image", "full"}, text); got != "disk\nfull" {
		t.Errorf("Text = %q", got)
	}
	if got := Text([]string(nil), text); got != "" {
		t.Errorf("Text of nothing = %q", got)
	}
	big := strings.Repeat("€", MaxBytes/3+10)
	got := Text([]string{"a", big, "b"}, text)
	if len(got) > MaxBytes || !utf8.ValidString(got) || !strings.HasPrefix(got, "a\n€") {
		t.Errorf("Text of a huge result: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}
