package instrumentation

import (
	"context"
	"sync"
)

type callStateKey struct{}

// callState is the per-call slot a handler writes to with SetBackend.
type callState struct {
	mu      sync.Mutex
	backend string
	set     bool
}

func (s *callState) get() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend, s.set
}

// SetBackend names the backend that serves the call audited in ctx. A gateway
// that proxies tools to several backends calls it from inside its handler
// once it has chosen the backend; [Auditor.Wrap] and the adapters read it
// after the handler returns, and it takes precedence over any backend name
// configured up front. It reports whether ctx belongs to an audited call.
func SetBackend(ctx context.Context, name string) bool {
	if ctx == nil {
		return false
	}
	s, ok := ctx.Value(callStateKey{}).(*callState)
	if !ok || s == nil {
		return false
	}
	s.mu.Lock()
	s.backend, s.set = name, true
	s.mu.Unlock()
	return true
}
