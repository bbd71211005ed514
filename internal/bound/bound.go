package bound

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

// Replacement replaces NUL bytes and each run of invalid UTF-8 bytes.
const Replacement = "\uFFFD"

// Clean reports whether s is valid UTF-8 without NUL bytes, that is, whether
// [Sanitize] would return it unchanged.
func Clean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			// Leave the ASCII fast path: check the rest properly.
			return strings.IndexByte(s[i:], 0) < 0 && utf8.ValidString(s[i:])
		}
	}
	return true
}

// Sanitize returns s with every NUL byte and every run of invalid UTF-8
// bytes replaced by [Replacement]. A clean s is returned as it is, without
// allocating.
func Sanitize(s string) string {
	if Clean(s) {
		return s
	}
	s = strings.ToValidUTF8(s, Replacement)
	return strings.ReplaceAll(s, "\x00", Replacement)
}

// Prefix returns the longest prefix of s that is at most n bytes long and
// does not end inside a UTF-8 sequence (n <= 0 gives ""). On invalid UTF-8 it
// still never returns more than n bytes.
func Prefix(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	// s[n] is the first byte cut off: back up while it continues the
	// sequence that the prefix would end in, at most utf8.UTFMax-1 bytes.
	i := n
	for k := 0; k < utf8.UTFMax-1 && i > 0 && !utf8.RuneStart(s[i]); k++ {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		// Not valid UTF-8 around the cut: any cut is as good.
		return s[:n]
	}
	return s[:i]
}

// String bounds the field value s to limit bytes. When s is clean (see
// [Clean]) and within limit it returns s and false. Otherwise it returns s
// sanitised and, if still longer than limit, cut to its longest UTF-8-safe
// prefix followed by otelaudit.TruncatedSuffix, at most limit bytes in all
// (for a limit not above the suffix' length, the prefix alone), and true. A
// limit of zero or less means no length limit (the value is only sanitised).
func String(s string, limit int) (string, bool) {
	if (limit <= 0 || len(s) <= limit) && Clean(s) {
		return s, false
	}
	s = Sanitize(s)
	if limit <= 0 || len(s) <= limit {
		return s, true
	}
	if limit <= len(otelaudit.TruncatedSuffix) {
		return Prefix(s, limit), true
	}
	return Prefix(s, limit-len(otelaudit.TruncatedSuffix)) + otelaudit.TruncatedSuffix, true
}

// SHA256Hex returns the hex SHA-256 of s.
func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Markers returns the two attributes that describe orig, the original value
// of the field field that [String] changed: its byte length under
// otelaudit.TruncatedSizeKey(field) and its hex SHA-256 under
// otelaudit.TruncatedSHA256Key(field).
func Markers(field attribute.Key, orig string) (size, sum attribute.KeyValue) {
	return otelaudit.TruncatedSizeKey(field).Int(len(orig)),
		otelaudit.TruncatedSHA256Key(field).String(SHA256Hex(orig))
}
