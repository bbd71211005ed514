// Package audittest captures the log records an Auditor emits, for tests.
package audittest

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// Recorder is an sdk/log Processor that keeps every record emitted.
type Recorder struct {
	mu   sync.Mutex
	recs []sdklog.Record
}

var _ sdklog.Processor = (*Recorder)(nil)

// NewLoggerProvider returns a LoggerProvider whose records r keeps.
func NewLoggerProvider(r *Recorder) *sdklog.LoggerProvider {
	return sdklog.NewLoggerProvider(sdklog.WithProcessor(r))
}

// OnEmit keeps a clone of rec.
func (r *Recorder) OnEmit(_ context.Context, rec *sdklog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}

// Enabled reports true.
func (r *Recorder) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

// Shutdown does nothing.
func (r *Recorder) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing.
func (r *Recorder) ForceFlush(context.Context) error { return nil }

// Records returns the records kept so far.
func (r *Recorder) Records() []sdklog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdklog.Record(nil), r.recs...)
}

// Attrs returns the attributes of rec by key.
func Attrs(rec sdklog.Record) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	rec.WalkAttributes(func(kv attribute.KeyValue) bool {
		m[kv.Key] = kv.Value
		return true
	})
	return m
}

// JSON returns v as the Go value encoding/json would decode from its JSON:
// maps as map[string]any, slices as []any, numbers as float64.
func JSON(v attribute.Value) any {
	switch v.Type() {
	case attribute.MAP:
		m := map[string]any{}
		for _, kv := range v.AsMap() {
			m[string(kv.Key)] = JSON(kv.Value)
		}
		return m
	case attribute.SLICE:
		var s []any
		for _, e := range v.AsSlice() {
			s = append(s, JSON(e))
		}
		return s
	case attribute.STRINGSLICE:
		var s []any
		for _, e := range v.AsStringSlice() {
			s = append(s, e)
		}
		return s
	case attribute.INT64:
		return float64(v.AsInt64())
	case attribute.FLOAT64:
		return v.AsFloat64()
	case attribute.BOOL:
		return v.AsBool()
	case attribute.STRING:
		return v.AsString()
	case attribute.EMPTY:
		return nil
	}
	return v.String()
}
