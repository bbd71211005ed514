package mcpsdk

import (
	"context"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
)

type countingHandler struct {
	mu   sync.Mutex
	errs []error
}

func (h *countingHandler) Handle(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

// When the reflection lookup of the JSON-RPC id fails, the adapter says so
// once through otel.Handle, however many calls follow.
func TestIDKeyMissingReportedOnce(t *testing.T) {
	prev := otel.GetErrorHandler()
	h := &countingHandler{}
	otel.SetErrorHandler(h)
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	oldKey := idKey.Load()
	idKey.Store(nil)
	idKeyMissing = sync.Once{}
	t.Cleanup(func() { idKey.Store(oldKey) })

	for range 3 {
		if id := jsonrpcID(context.WithValue(context.Background(), struct{ k int }{1}, "x")); id != "" {
			t.Fatalf("id %q from a context without one", id)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) != 1 {
		t.Fatalf("%d reports, want 1: %v", len(h.errs), h.errs)
	}
	if msg := h.errs[0].Error(); !strings.HasPrefix(msg, "mcpsdk: ") || !strings.Contains(msg, "jsonrpc.request.id") {
		t.Errorf("report %q", msg)
	}
}
