package mcpsdk_test

import (
	"context"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpsdk"
)

// inMemory connects a client to s over the go-sdk's in-memory transports.
func inMemory(t *testing.T, s *mcp.Server) *mcp.ClientSession {
	t.Helper()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := s.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// A call the client cancels (the go-sdk client sends notifications/cancelled
// when the context of CallTool is cancelled) is recorded as cancelled; one
// whose server-side deadline passes as timeout.
func TestCancelledAndTimeout(t *testing.T) {
	rec := &audittest.Recorder{}
	a := instrumentation.New(instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)))
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	// The gateway's own deadline for the "slow" tool, inside the audit
	// middleware.
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if call, ok := req.(*mcp.CallToolRequest); ok && call.Params.Name == "slow" {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
				defer cancel()
			}
			return next(ctx, method, req)
		}
	})
	s.AddReceivingMiddleware(mcpsdk.Middleware(a))
	started := make(chan struct{}, 1)
	block := func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s.AddTool(&mcp.Tool{Name: "hang", InputSchema: schema}, block)
	s.AddTool(&mcp.Tool{Name: "slow", InputSchema: schema}, block)
	cs := inMemory(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "hang"})
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled call succeeded")
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "slow"}); err == nil {
		t.Fatal("timed-out call succeeded")
	}
	<-started

	want := map[string][2]string{
		"hang": {string(otelaudit.StatusCancelled), otelaudit.ErrorTypeCancelled},
		"slow": {string(otelaudit.StatusTimeout), otelaudit.ErrorTypeTimeout},
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.Records()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	recs := rec.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		at := audittest.Attrs(r)
		tool := at[otelaudit.ToolNameKey].AsString()
		got := [2]string{at[otelaudit.ResponseStatusKey].AsString(), at[otelaudit.ErrorTypeKey].AsString()}
		if got != want[tool] {
			t.Errorf("%s: status, error.type = %v, want %v", tool, got, want[tool])
		}
	}
}
