package instrumentation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

// argsWalker converts call arguments to an attribute.Value in one walk,
// redacting secrets and measuring the JSON size on the way.
type argsWalker struct {
	r     *redactor
	limit int
	// size is the estimated size of the arguments as JSON.
	size int
}

// argsValue converts the arguments of a call for gen_ai.tool.call.arguments.
// It returns false when there are no arguments.
func (a *Auditor) argsValue(args any) (v attribute.Value, ok bool) {
	if args == nil {
		return attribute.Value{}, false
	}
	defer func() {
		if p := recover(); p != nil {
			v, ok = invalidMarker(fmt.Sprintf("panic while converting %T: %v", args, p), nil), true
		}
	}()
	w := argsWalker{r: a.redactor, limit: a.maxArgsBytes}
	switch x := args.(type) {
	case json.RawMessage:
		return w.raw(x), true
	case map[string]any:
		v = w.mapAny(x, 0)
	default:
		if v, ok = w.value(x, 0); !ok {
			b, err := safeMarshal(x)
			if err != nil {
				return invalidMarker(fmt.Sprintf("cannot marshal %T: %v", x, err), nil), true
			}
			return w.raw(b), true
		}
	}
	if w.size > w.limit {
		// The estimate says too large: measure exactly.
		b, err := safeMarshal(args)
		if err != nil {
			return invalidMarker(fmt.Sprintf("cannot marshal %T: %v", args, err), nil), true
		}
		if len(b) > w.limit {
			return truncatedMarker(b), true
		}
	}
	return v, true
}

// raw converts arguments given as JSON.
func (w *argsWalker) raw(b []byte) attribute.Value {
	if len(b) > w.limit {
		return truncatedMarker(b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return invalidMarker("invalid JSON: "+err.Error(), b)
	}
	if d.More() {
		return invalidMarker("invalid JSON: data after the value", b)
	}
	v, ok := w.value(x, 0)
	if !ok {
		return invalidMarker("invalid JSON", b)
	}
	return v
}

// truncatedMarker replaces arguments whose JSON b is over the limit.
func truncatedMarker(b []byte) attribute.Value {
	sum := sha256.Sum256(b)
	return attribute.MapValue(
		attribute.Bool(otelaudit.MarkerTruncatedKey, true),
		attribute.Int(otelaudit.MarkerSizeKey, len(b)),
		attribute.String(otelaudit.MarkerSHA256Key, hex.EncodeToString(sum[:])),
	)
}

// invalidMarker replaces arguments that cannot be recorded. b, when not nil,
// is the original JSON: only its size and hash are kept.
func invalidMarker(reason string, b []byte) attribute.Value {
	if b == nil {
		return attribute.MapValue(attribute.String(otelaudit.MarkerInvalidKey, reason))
	}
	sum := sha256.Sum256(b)
	return attribute.MapValue(
		attribute.String(otelaudit.MarkerInvalidKey, reason),
		attribute.Int(otelaudit.MarkerSizeKey, len(b)),
		attribute.String(otelaudit.MarkerSHA256Key, hex.EncodeToString(sum[:])),
	)
}

// value converts x. It returns false for a type it does not know, which the
// caller marshals to JSON instead.
func (w *argsWalker) value(x any, depth int) (attribute.Value, bool) {
	if depth > otelaudit.MaxJSONDepth {
		w.size += len(otelaudit.DepthLimitValue) + 2
		return attribute.StringValue(otelaudit.DepthLimitValue), true
	}
	switch v := x.(type) {
	case nil:
		w.size += 4
		return attribute.Value{}, true
	case string:
		return w.str(v, depth), true
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
		return w.mapString(v), true
	case []any:
		w.size += 2
		vals := make([]attribute.Value, 0, len(v))
		for _, e := range v {
			ev, ok := w.value(e, depth+1)
			if !ok {
				ev = w.marshalled(e, depth+1)
			}
			vals = append(vals, ev)
			w.size++
		}
		return attribute.SliceValue(vals...), true
	case []string:
		w.size += 2
		for _, s := range v {
			w.size += jsonStringLen(s) + 1
		}
		return attribute.StringSliceValue(v), true
	case json.RawMessage:
		inner := argsWalker{r: w.r, limit: w.limit}
		out := inner.raw(v)
		w.size += len(v)
		return out, true
	}
	return attribute.Value{}, false
}

// marshalled converts a value of a type value does not know through its JSON
// encoding.
func (w *argsWalker) marshalled(x any, depth int) attribute.Value {
	b, err := safeMarshal(x)
	if err != nil {
		return invalidMarker(fmt.Sprintf("cannot marshal %T: %v", x, err), nil)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var y any
	if err := d.Decode(&y); err != nil {
		return invalidMarker("invalid JSON: "+err.Error(), b)
	}
	v, _ := w.value(y, depth)
	return v
}

func (w *argsWalker) mapAny(m map[string]any, depth int) attribute.Value {
	if depth > otelaudit.MaxJSONDepth {
		return attribute.StringValue(otelaudit.DepthLimitValue)
	}
	w.size += 2
	// MapValue's argument escapes: allocate it once, exactly sized.
	kvs := make([]attribute.KeyValue, 0, len(m))
	for k, e := range m {
		w.size += jsonStringLen(k) + 2
		var ev attribute.Value
		if w.r.secret(k) {
			s := w.r.redactAny(e)
			w.size += len(s) + 2
			ev = attribute.StringValue(s)
		} else {
			var ok bool
			if ev, ok = w.value(e, depth+1); !ok {
				ev = w.marshalled(e, depth+1)
			}
		}
		kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(k), Value: ev})
	}
	return attribute.MapValue(kvs...)
}

func (w *argsWalker) mapString(m map[string]string) attribute.Value {
	w.size += 2
	kvs := make([]attribute.KeyValue, 0, len(m))
	for k, s := range m {
		w.size += jsonStringLen(k) + 2
		if w.r.secret(k) {
			s = w.r.redactString(s)
			w.size += len(s) + 2
		} else {
			s = w.str(s, 0).AsString()
		}
		kvs = append(kvs, attribute.String(k, s))
	}
	return attribute.MapValue(kvs...)
}

// str converts a string argument. A string that holds a JSON object or array
// is searched for secrets, and re-encoded redacted when it has any.
func (w *argsWalker) str(s string, depth int) attribute.Value {
	w.size += jsonStringLen(s)
	if !looksLikeJSON(s) || len(s) > w.limit || depth >= otelaudit.MaxJSONDepth {
		return attribute.StringValue(s)
	}
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var x any
	if d.Decode(&x) != nil || d.More() {
		return attribute.StringValue(s)
	}
	red, changed := w.redactGo(x, depth+1)
	if !changed {
		return attribute.StringValue(s)
	}
	b, err := safeMarshal(red)
	if err != nil {
		return attribute.StringValue(RedactedValue)
	}
	return attribute.StringValue(string(b))
}

// redactGo returns x with its secrets redacted, copying only the maps and
// slices on the way to a secret. It reports whether anything changed.
func (w *argsWalker) redactGo(x any, depth int) (any, bool) {
	if depth > otelaudit.MaxJSONDepth {
		return otelaudit.DepthLimitValue, true
	}
	switch v := x.(type) {
	case map[string]any:
		var out map[string]any
		for k, e := range v {
			var ne any
			changed := false
			if w.r.secret(k) {
				ne, changed = w.r.redactAny(e), true
			} else {
				ne, changed = w.redactGo(e, depth+1)
			}
			if changed {
				if out == nil {
					out = make(map[string]any, len(v))
					for k2, e2 := range v {
						out[k2] = e2
					}
				}
				out[k] = ne
			}
		}
		if out == nil {
			return x, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range v {
			ne, changed := w.redactGo(e, depth+1)
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
		if !looksLikeJSON(v) {
			return x, false
		}
		inner := argsWalker{r: w.r, limit: w.limit}
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
