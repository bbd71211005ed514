package mcpsdk

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// The go-sdk keeps the JSON-RPC id of the request being handled in its
// context under an unexported key type (mcp.idContextKey) and offers no
// accessor. jsonrpcID finds that key type once, by walking a context chain
// with reflection, and from then on looks the id up with an ordinary
// ctx.Value. When the SDK changes and the key cannot be found, the id is not
// recorded, and that is reported once through otel.Handle.

const (
	idKeyPkg  = "github.com/modelcontextprotocol/go-sdk/mcp"
	idKeyName = "idContextKey"
)

// idKeyMissing reports, once per process, that the key was not found.
var idKeyMissing sync.Once

func reportIDKeyMissing() {
	idKeyMissing.Do(func() {
		otel.Handle(errors.New("mcpsdk: the go-sdk's context carries no JSON-RPC id where this adapter looks for it (" +
			idKeyPkg + "." + idKeyName + "); jsonrpc.request.id is not recorded: update github.com/sentinel-gateway/otelaudit"))
	})
}

// idKey holds the key (a zero value of mcp.idContextKey) once found.
var idKey atomic.Pointer[any]

// jsonrpcID returns the JSON-RPC id of the request handled in ctx, or "".
func jsonrpcID(ctx context.Context) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	k := idKey.Load()
	if k == nil {
		found, ok := findIDKey(ctx)
		if !ok {
			reportIDKeyMissing()
			return ""
		}
		idKey.Store(&found)
		k = &found
	}
	id, ok := ctx.Value(*k).(jsonrpc.ID)
	if !ok || !id.IsValid() {
		return ""
	}
	switch v := id.Raw().(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// findIDKey walks the chain of ctx looking for a context.WithValue whose key
// has the type mcp.idContextKey, and returns a zero value of that type.
func findIDKey(ctx context.Context) (any, bool) {
	v := reflect.ValueOf(ctx)
	for range 256 {
		for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
			if v.IsNil() {
				return nil, false
			}
			v = v.Elem()
		}
		if !v.IsValid() || v.Kind() != reflect.Struct {
			return nil, false
		}
		if f := v.FieldByName("key"); f.IsValid() && f.Kind() == reflect.Interface && !f.IsNil() {
			t := f.Elem().Type()
			if t.PkgPath() == idKeyPkg && t.Name() == idKeyName {
				return reflect.Zero(t).Interface(), true
			}
		}
		v = v.FieldByName("Context")
	}
	return nil, false
}
