package auditrow

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. NUL bytes and invalid UTF-8 are
// replaced by U+FFFD, since PostgreSQL refuses both in text and in JSONB. It
// reports whether anything was replaced.
func appendString(dst []byte, s string) ([]byte, bool) {
	changed := false
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case 0:
				dst = append(dst, `\ufffd`...)
				changed = true
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			changed = true
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), changed
}

// appendValue appends v, at nesting depth depth (1 for a top-level value),
// as JSON. An array or object deeper than otelaudit.MaxJSONDepth is replaced
// by otelaudit.DepthLimitValue; scalars are never cut. It reports whether
// anything had to be changed to make it storable (sanitised text,
// non-finite floats, depth).
func appendValue(dst []byte, v attribute.Value, depth int) ([]byte, bool) {
	switch v.Type() {
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE,
		attribute.SLICE, attribute.MAP:
		if depth > otelaudit.MaxJSONDepth {
			dst, _ = appendString(dst, otelaudit.DepthLimitValue)
			return dst, true
		}
	}
	switch v.Type() {
	case attribute.BOOL:
		return strconv.AppendBool(dst, v.AsBool()), false
	case attribute.INT64:
		return strconv.AppendInt(dst, v.AsInt64(), 10), false
	case attribute.FLOAT64:
		return appendFloat(dst, v.AsFloat64())
	case attribute.STRING:
		return appendString(dst, v.AsString())
	case attribute.BYTESLICE:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.AsByteSlice())
		return append(dst, '"'), false
	case attribute.BOOLSLICE:
		return appendArray(dst, v.AsBoolSlice(), func(dst []byte, b bool) ([]byte, bool) { return strconv.AppendBool(dst, b), false })
	case attribute.INT64SLICE:
		return appendArray(dst, v.AsInt64Slice(), func(dst []byte, n int64) ([]byte, bool) { return strconv.AppendInt(dst, n, 10), false })
	case attribute.FLOAT64SLICE:
		return appendArray(dst, v.AsFloat64Slice(), appendFloat)
	case attribute.STRINGSLICE:
		return appendArray(dst, v.AsStringSlice(), appendString)
	case attribute.SLICE:
		return appendArray(dst, v.AsSlice(), func(dst []byte, e attribute.Value) ([]byte, bool) { return appendValue(dst, e, depth+1) })
	case attribute.MAP:
		changed := false
		dst = append(dst, '{')
		for i, kv := range v.AsMap() {
			if i > 0 {
				dst = append(dst, ',')
			}
			var c1, c2 bool
			dst, c1 = appendString(dst, string(kv.Key))
			dst = append(dst, ':')
			dst, c2 = appendValue(dst, kv.Value, depth+1)
			changed = changed || c1 || c2
		}
		return append(dst, '}'), changed
	default:
		return append(dst, "null"...), false
	}
}

// appendArray appends elems as a JSON array, each with add, and reports
// whether add changed any of them.
func appendArray[T any](dst []byte, elems []T, add func([]byte, T) ([]byte, bool)) ([]byte, bool) {
	changed := false
	dst = append(dst, '[')
	for i, e := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		var c bool
		dst, c = add(dst, e)
		changed = changed || c
	}
	return append(dst, ']'), changed
}

func appendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// JSON has no NaN or infinity: keep them as strings.
		return strconv.AppendQuote(dst, strconv.FormatFloat(f, 'g', -1, 64)), true
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64), false
}

// jsonText reports how JSON text b can be stored in a JSONB column: ok when
// it can be stored byte for byte. Otherwise it is valid JSON that needs
// rewriting (NUL or surrogate escapes), too deep, or not JSON at all.
type jsonVerdict int

const (
	jsonOK jsonVerdict = iota
	jsonRewrite
	jsonTooDeep
	jsonInvalid
)

func checkJSON(b []byte) jsonVerdict {
	if !utf8.Valid(b) {
		if json.Valid(bytes.ToValidUTF8(b, []byte("\uFFFD"))) {
			return jsonRewrite
		}
		return jsonInvalid
	}
	depth, maxDepth := 0, 0
	inString, escapes := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				if i+1 < len(b) && b[i+1] == 'u' && i+5 < len(b) {
					h := b[i+2 : i+6]
					if bytes.Equal(h, []byte("0000")) || h[0] == 'd' || h[0] == 'D' {
						escapes = true // \u0000 or a surrogate: PostgreSQL may refuse it
					}
				}
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				maxDepth = depth
			}
		case '}', ']':
			depth--
		}
	}
	if !json.Valid(b) {
		return jsonInvalid
	}
	if maxDepth > otelaudit.MaxJSONDepth {
		return jsonTooDeep
	}
	if escapes {
		return jsonRewrite
	}
	return jsonOK
}

// rewriteJSON decodes valid JSON text and encodes it again with every string
// sanitised, object keys sorted (the same text maps to the same bytes, so a
// derived request id is stable) and arrays and objects deeper than
// otelaudit.MaxJSONDepth replaced by otelaudit.DepthLimitValue. Numbers
// keep their exact text. It reports false, leaving dst as it was, for text
// it cannot decode.
func rewriteJSON(dst, b []byte) ([]byte, bool) {
	b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return dst, false
	}
	return appendAny(dst, v, 1), true
}

func appendAny(dst []byte, v any, depth int) []byte {
	switch v.(type) {
	case []any, map[string]any:
		if depth > otelaudit.MaxJSONDepth {
			dst, _ = appendString(dst, otelaudit.DepthLimitValue)
			return dst
		}
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, x)
	case json.Number:
		return append(dst, x...)
	case string:
		dst, _ = appendString(dst, x)
		return dst
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendAny(dst, e, depth+1)
		}
		return append(dst, ']')
	case map[string]any:
		dst = append(dst, '{')
		for i, k := range slices.Sorted(maps.Keys(x)) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst, _ = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendAny(dst, x[k], depth+1)
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}
