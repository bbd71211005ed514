package instrumentation

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

// argsWalker converts call arguments to an attribute.Value in one walk,
// redacting secrets and measuring the JSON size on the way.
//
// Depths follow otelaudit.MaxJSONDepth: depth is the number of objects and
// arrays that enclose a value, so an object or array at depth d is at
// nesting level d+1 and is replaced by otelaudit.DepthLimitValue when
// d+1 > otelaudit.MaxJSONDepth.
type argsWalker struct {
	r     *redactor
	limit int
	// size is the estimated size of the arguments as JSON.
	size int
	// found, when not nil, collects the secret values redaction removed,
	// for scrubbing the call's error text.
	found *[]string
}

// tooDeep reports whether an object or array enclosed by depth others is cut.
func tooDeep(depth int) bool { return depth+1 > otelaudit.MaxJSONDepth }

// argsValue converts the arguments of a call for gen_ai.tool.call.arguments.
// It returns false when there are no arguments. When found is not nil, the
// secret values removed are appended to *found.
func (a *Auditor) argsValue(args any, found *[]string) (v attribute.Value, ok bool) {
	if args == nil {
		return attribute.Value{}, false
	}
	defer func() {
		if p := recover(); p != nil {
			v, ok = invalidMarker(fmt.Sprintf("panic while converting %T: %v", args, p)), true
		}
	}()
	w := argsWalker{r: a.redactor, limit: a.maxArgsBytes, found: found}
	switch x := args.(type) {
	case json.RawMessage:
		return w.raw(x), true
	case map[string]any:
		v = w.mapAny(x, 0)
	default:
		if v, ok = w.value(x, 0); !ok {
			b, err := safeMarshal(x)
			if err != nil {
				return invalidMarker(fmt.Sprintf("cannot marshal %T: %v", x, err)), true
			}
			return w.raw(b), true
		}
	}
	if w.size > w.limit {
		// The estimate says too large: measure exactly.
		b, err := safeMarshal(args)
		if err != nil {
			return invalidMarker(fmt.Sprintf("cannot marshal %T: %v", args, err)), true
		}
		if len(b) > w.limit {
			return w.truncatedMarker(b, len(w.probe(args)) == 0), true
		}
	}
	return v, true
}

// raw converts arguments given as JSON.
func (w *argsWalker) raw(b []byte) attribute.Value {
	if len(b) > w.limit {
		// Not stored, but read all the same: its secrets must leave the
		// error text too, and decide what the marker may say of it.
		x, err := decodeJSON(b)
		if err != nil {
			return w.truncatedMarker(b, false)
		}
		secrets := w.probe(x)
		if w.found != nil {
			*w.found = append(*w.found, secrets...)
		}
		return w.truncatedMarker(b, len(secrets) == 0)
	}
	x, err := decodeJSON(b)
	if err != nil {
		return w.unreadableMarker("invalid JSON: "+err.Error(), b)
	}
	v, ok := w.value(x, 0)
	if !ok {
		return w.unreadableMarker("invalid JSON", b)
	}
	return v
}

// decodeJSON decodes the single JSON value b, numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("data after the value")
	}
	return x, nil
}

// probe walks x as redaction walks stored arguments, with no size limit,
// and returns the secret values it would remove.
func (w *argsWalker) probe(x any) []string {
	found := []string{}
	p := argsWalker{r: w.r, limit: math.MaxInt, found: &found}
	if _, ok := p.value(x, 0); !ok {
		p.marshalled(x, 0)
	}
	return found
}

// truncatedMarker replaces arguments whose JSON b is over the limit. clean
// reports that redaction read all of b and found no secret in it.
func (w *argsWalker) truncatedMarker(b []byte, clean bool) attribute.Value {
	kv := []attribute.KeyValue{
		attribute.Bool(otelaudit.MarkerTruncatedKey, true),
		attribute.Int(otelaudit.MarkerSizeKey, len(b)),
	}
	if d, ok := w.markerDigest(b, clean); ok {
		kv = append(kv, attribute.String(otelaudit.MarkerSHA256Key, d))
	}
	return attribute.MapValue(kv...)
}

// unreadableMarker replaces arguments b that are not valid JSON: redaction
// cannot read them, so the marker keeps their size and only a keyed digest.
func (w *argsWalker) unreadableMarker(reason string, b []byte) attribute.Value {
	kv := []attribute.KeyValue{
		attribute.String(otelaudit.MarkerInvalidKey, reason),
		attribute.Int(otelaudit.MarkerSizeKey, len(b)),
	}
	if d, ok := w.markerDigest(b, false); ok {
		kv = append(kv, attribute.String(otelaudit.MarkerSHA256Key, d))
	}
	return attribute.MapValue(kv...)
}

// markerDigest returns what a marker says of the arguments JSON b it
// replaces. A plain SHA-256 lets whoever reads the row confirm a guess of
// the whole document, and with it of a short secret inside, so it is given
// only for arguments that are clean (read in full, no secret found). Other
// arguments get the HMAC-SHA256 under the [WithHMACKey] key
// ("hmac-sha256:<hex>"), or no digest when there is no key.
func (w *argsWalker) markerDigest(b []byte, clean bool) (string, bool) {
	if clean {
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:]), true
	}
	if w.r.hmacs == nil {
		return "", false
	}
	return w.r.redactString(string(b)), true
}

// invalidMarker replaces arguments that cannot be converted at all (a type
// that cannot be marshalled, a panic): only the reason is kept.
func invalidMarker(reason string) attribute.Value {
	return attribute.MapValue(attribute.String(otelaudit.MarkerInvalidKey, reason))
}

// keep records the secret value v that redaction removes, for the error
// text: strings as they are, other values by their leaves.
func (w *argsWalker) keep(v any, depth int) {
	if w.found == nil || depth > otelaudit.MaxJSONDepth {
		return
	}
	switch x := v.(type) {
	case string:
		*w.found = append(*w.found, x)
	case []byte:
		*w.found = append(*w.found, string(x))
	case json.Number:
		*w.found = append(*w.found, string(x))
	case map[string]any:
		for _, e := range x {
			w.keep(e, depth+1)
		}
	case map[string]string:
		for _, e := range x {
			*w.found = append(*w.found, e)
		}
	case []any:
		for _, e := range x {
			w.keep(e, depth+1)
		}
	case []string:
		*w.found = append(*w.found, x...)
	case nil, bool:
	default:
		if b, err := safeMarshal(x); err == nil {
			if y, err := decodeJSON(b); err == nil {
				if _, isString := y.(string); !isString {
					w.keep(y, depth+1)
					return
				}
			}
			*w.found = append(*w.found, string(b), strings.Trim(string(b), `"`))
		}
	}
}

// secretValue returns the redacted stand-in of the secret v.
func (w *argsWalker) secretValue(v any, depth int) attribute.Value {
	w.keep(v, depth)
	s := w.r.redactAny(v)
	w.size += len(s) + 2
	return attribute.StringValue(s)
}

// value converts x, enclosed by depth objects and arrays. It returns false
// for a type it does not know, which the caller marshals to JSON instead.
func (w *argsWalker) value(x any, depth int) (attribute.Value, bool) {
	switch v := x.(type) {
	case nil:
		w.size += 4
		return attribute.Value{}, true
	case string:
		return w.str(v, depth), true
	case []byte:
		if utf8.Valid(v) {
			return w.str(string(v), depth), true
		}
		// As encoding/json stores it: base64.
		s := base64.StdEncoding.EncodeToString(v)
		w.size += len(s) + 2
		return attribute.StringValue(s), true
	case bool:
		w.size += 5
		return attribute.BoolValue(v), true
	case float64:
		w.size += 8
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return attribute.StringValue(strconv.FormatFloat(v, 'g', -1, 64)), true
		}
		return attribute.Float64Value(v), true
	case json.Number:
		w.size += len(v)
		if i, err := v.Int64(); err == nil {
			return attribute.Int64Value(i), true
		}
		if f, err := v.Float64(); err == nil {
			return attribute.Float64Value(f), true
		}
		return attribute.StringValue(string(v)), true
	case int:
		w.size += 8
		return attribute.IntValue(v), true
	case int64:
		w.size += 8
		return attribute.Int64Value(v), true
	case int32:
		w.size += 8
		return attribute.Int64Value(int64(v)), true
	case float32:
		w.size += 8
		return attribute.Float64Value(float64(v)), true
	case map[string]any:
		return w.mapAny(v, depth), true
	case map[string]string:
		return w.mapString(v, depth), true
	case map[string][]string:
		return w.mapStrings(v, depth), true
	case []any:
		if tooDeep(depth) {
			w.size += len(otelaudit.DepthLimitValue) + 2
			return attribute.StringValue(otelaudit.DepthLimitValue), true
		}
		w.size += 2
		// A [name, value] pair whose name names a secret, as in header
		// lists: [["Authorization", "Bearer x"]].
		pair := len(v) == 2 && w.pairName(v[0])
		vals := make([]attribute.Value, 0, len(v))
		for i, e := range v {
			var ev attribute.Value
			if pair && i == 1 {
				ev = w.secretValue(e, depth+1)
			} else {
				var ok bool
				if ev, ok = w.value(e, depth+1); !ok {
					ev = w.marshalled(e, depth+1)
				}
			}
			vals = append(vals, ev)
			w.size++
		}
		return attribute.SliceValue(vals...), true
	case []string:
		return w.strings(v, depth), true
	case json.RawMessage:
		inner := argsWalker{r: w.r, limit: w.limit, found: w.found}
		out := inner.raw(v)
		w.size += len(v)
		return out, true
	}
	return attribute.Value{}, false
}

// key returns the object key k as it is recorded: a key that is itself a
// secret (a token used as a map key) is scrubbed like a string value.
func (w *argsWalker) key(k string) string {
	if out, changed := w.r.scrubText(k, w.found); changed {
		return out
	}
	return k
}

// pairName reports whether x, the first element of a two-element list, is
// a string naming a secret.
func (w *argsWalker) pairName(x any) bool {
	s, ok := x.(string)
	return ok && isName(s) && w.r.secret(s)
}

// isName reports whether s looks like a header or variable name.
func isName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKeyByte(s[i]) {
			return false
		}
	}
	return true
}

// strings converts a []string: each element is a string argument, and a
// [name, value] pair whose name names a secret has its value redacted.
func (w *argsWalker) strings(v []string, depth int) attribute.Value {
	if tooDeep(depth) {
		w.size += len(otelaudit.DepthLimitValue) + 2
		return attribute.StringValue(otelaudit.DepthLimitValue)
	}
	w.size += 2
	pair := len(v) == 2 && isName(v[0]) && w.r.secret(v[0])
	var out []string // a copy, made at the first change
	for i, s := range v {
		var ns string
		if pair && i == 1 {
			ns = w.secretValue(s, depth+1).AsString()
		} else {
			ns = w.str(s, depth+1).AsString()
		}
		w.size++
		if ns != s && out == nil {
			out = append(make([]string, 0, len(v)), v[:i]...)
		}
		if out != nil {
			out = append(out, ns)
		}
	}
	if out != nil {
		return attribute.StringSliceValue(out)
	}
	return attribute.StringSliceValue(v)
}

// marshalled converts a value of a type value does not know through its JSON
// encoding.
func (w *argsWalker) marshalled(x any, depth int) attribute.Value {
	b, err := safeMarshal(x)
	if err != nil {
		return invalidMarker(fmt.Sprintf("cannot marshal %T: %v", x, err))
	}
	y, err := decodeJSON(b)
	if err != nil {
		return w.unreadableMarker("invalid JSON: "+err.Error(), b)
	}
	v, _ := w.value(y, depth)
	return v
}

// pairSecret reports whether m is a name/value pair whose name names a
// secret ({"name": "Authorization", "value": "Bearer x"}), and so whether
// its "value" is secret.
func (w *argsWalker) pairSecret(m map[string]any) bool {
	if len(m) < 2 || len(m) > 4 {
		return false
	}
	for _, k := range [...]string{"name", "key", "Name", "Key", "header"} {
		if n, ok := m[k]; ok {
			return w.pairName(n)
		}
	}
	return false
}

// isPairValue reports whether k is the value field of a name/value pair.
func isPairValue(k string) bool { return k == "value" || k == "Value" || k == "values" }

func (w *argsWalker) mapAny(m map[string]any, depth int) attribute.Value {
	if tooDeep(depth) {
		w.size += len(otelaudit.DepthLimitValue) + 2
		return attribute.StringValue(otelaudit.DepthLimitValue)
	}
	w.size += 2
	pair := w.pairSecret(m)
	// MapValue's argument escapes: allocate it once, exactly sized.
	kvs := make([]attribute.KeyValue, 0, len(m))
	for k, e := range m {
		w.size += jsonStringLen(k) + 2
		var ev attribute.Value
		if w.r.secret(k) || pair && isPairValue(k) {
			ev = w.secretValue(e, depth+1)
		} else {
			var ok bool
			if ev, ok = w.value(e, depth+1); !ok {
				ev = w.marshalled(e, depth+1)
			}
		}
		kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(w.key(k)), Value: ev})
	}
	return attribute.MapValue(kvs...)
}

func (w *argsWalker) mapString(m map[string]string, depth int) attribute.Value {
	if tooDeep(depth) {
		w.size += len(otelaudit.DepthLimitValue) + 2
		return attribute.StringValue(otelaudit.DepthLimitValue)
	}
	w.size += 2
	pair := false
	if len(m) >= 2 && len(m) <= 4 {
		for _, k := range [...]string{"name", "key", "Name", "Key", "header"} {
			if n, ok := m[k]; ok {
				pair = isName(n) && w.r.secret(n)
				break
			}
		}
	}
	kvs := make([]attribute.KeyValue, 0, len(m))
	for k, s := range m {
		w.size += jsonStringLen(k) + 2
		if w.r.secret(k) || pair && isPairValue(k) {
			s = w.secretValue(s, depth+1).AsString()
		} else {
			s = w.str(s, depth+1).AsString()
		}
		kvs = append(kvs, attribute.String(w.key(k), s))
	}
	return attribute.MapValue(kvs...)
}

// mapStrings converts a map of string lists, such as http.Header values.
func (w *argsWalker) mapStrings(m map[string][]string, depth int) attribute.Value {
	if tooDeep(depth) {
		w.size += len(otelaudit.DepthLimitValue) + 2
		return attribute.StringValue(otelaudit.DepthLimitValue)
	}
	w.size += 2
	kvs := make([]attribute.KeyValue, 0, len(m))
	for k, v := range m {
		w.size += jsonStringLen(k) + 2
		var ev attribute.Value
		if w.r.secret(k) {
			ev = w.secretValue(v, depth+1)
		} else {
			ev = w.strings(v, depth+1)
		}
		kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(w.key(k)), Value: ev})
	}
	return attribute.MapValue(kvs...)
}

// str converts a string argument enclosed by depth objects and arrays. A
// string that holds a JSON object or array is searched for secrets, and
// re-encoded redacted when it has any (JSON in a string continues the depth
// count: when it would be cut for depth, the string is). Any other string is
// scrubbed of secrets it carries itself (see redactor.scrubText).
func (w *argsWalker) str(s string, depth int) attribute.Value {
	w.size += jsonStringLen(s)
	if len(s) > w.limit {
		return attribute.StringValue(s)
	}
	if looksLikeJSON(s) {
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var x any
		if d.Decode(&x) == nil && !d.More() {
			if tooDeep(depth) {
				return attribute.StringValue(otelaudit.DepthLimitValue)
			}
			red, changed := w.redactGo(x, depth)
			if !changed {
				return attribute.StringValue(s)
			}
			b, err := safeMarshal(red)
			if err != nil {
				return attribute.StringValue(RedactedValue)
			}
			return attribute.StringValue(string(b))
		}
	}
	if out, changed := w.r.scrubText(s, w.found); changed {
		return attribute.StringValue(out)
	}
	return attribute.StringValue(s)
}

// redactGo returns x, decoded from JSON and enclosed by depth objects and
// arrays, with its secrets redacted, copying only the maps and slices on the
// way to a secret. It reports whether anything changed.
func (w *argsWalker) redactGo(x any, depth int) (any, bool) {
	switch v := x.(type) {
	case map[string]any:
		if tooDeep(depth) {
			return otelaudit.DepthLimitValue, true
		}
		pair := w.pairSecret(v)
		var out map[string]any
		for k, e := range v {
			var ne any
			changed := false
			if w.r.secret(k) || pair && isPairValue(k) {
				w.keep(e, depth+1)
				ne, changed = w.r.redactAny(e), true
			} else {
				ne, changed = w.redactGo(e, depth+1)
			}
			nk := w.key(k)
			if changed || nk != k {
				if out == nil {
					out = make(map[string]any, len(v))
					for k2, e2 := range v {
						out[k2] = e2
					}
				}
				if nk != k {
					delete(out, k)
				}
				out[nk] = ne
			}
		}
		if out == nil {
			return x, false
		}
		return out, true
	case []any:
		if tooDeep(depth) {
			return otelaudit.DepthLimitValue, true
		}
		pair := len(v) == 2 && w.pairName(v[0])
		var out []any
		for i, e := range v {
			var ne any
			var changed bool
			if pair && i == 1 {
				w.keep(e, depth+1)
				ne, changed = w.r.redactAny(e), true
			} else {
				ne, changed = w.redactGo(e, depth+1)
			}
			if changed {
				if out == nil {
					out = append([]any(nil), v...)
				}
				out[i] = ne
			}
		}
		if out == nil {
			return x, false
		}
		return out, true
	case string:
		inner := argsWalker{r: w.r, limit: w.limit, found: w.found}
		nv := inner.str(v, depth)
		if s := nv.AsString(); s != v {
			return s, true
		}
		return x, false
	}
	return x, false
}

// looksLikeJSON reports whether s may hold a JSON object or array.
func looksLikeJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			return len(s)-i >= 2
		default:
			return false
		}
	}
	return false
}

// jsonStringLen returns the length of s encoded as a JSON string by
// encoding/json (with its HTML escaping), counting non-ASCII bytes as one.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		n += jsonEscLen[s[i]]
	}
	return n
}

var jsonEscLen = func() (t [256]int) {
	for i := range t {
		t[i] = 1
	}
	for i := range 0x20 {
		t[i] = 6
	}
	t['\n'], t['\r'], t['\t'], t['"'], t['\\'] = 2, 2, 2, 2, 2
	t['<'], t['>'], t['&'] = 6, 6, 6
	return t
}()

// safeMarshal is json.Marshal that turns a panic of a MarshalJSON method into
// an error.
func safeMarshal(v any) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}
