package mcpgo_test

import (
	"context"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpgo"
)

// A tool call whose context the client cancels is cancelled; one whose
// deadline passes is timeout — whatever error the tool made of it.
func TestCancelledAndTimeout(t *testing.T) {
	rec := &audittest.Recorder{}
	a := instrumentation.New(instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)))
	h := mcpgo.Middleware(a)(func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		<-ctx.Done()
		return mcp.NewToolResultError("aborted: " + ctx.Err().Error()), nil
	})
	var req mcp.CallToolRequest
	req.Params.Name = "hang"

	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(5 * time.Millisecond); cancel() }()
	_, _ = h(ctx, req)
	tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer tcancel()
	_, _ = h(tctx, req)

	recs := rec.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for i, want := range [][2]string{
		{string(otelaudit.StatusCancelled), otelaudit.ErrorTypeCancelled},
		{string(otelaudit.StatusTimeout), otelaudit.ErrorTypeTimeout},
	} {
		at := audittest.Attrs(recs[i])
		got := [2]string{at[otelaudit.ResponseStatusKey].AsString(), at[otelaudit.ErrorTypeKey].AsString()}
		if got != want {
			t.Errorf("record %d: status, error.type = %v, want %v", i, got, want)
		}
	}
}

// A real mcp-go client cancels a call (it sends notifications/cancelled when
// the context of CallTool is cancelled): the row is cancelled.
func TestClientCancellation(t *testing.T) {
	rec := &audittest.Recorder{}
	a := instrumentation.New(instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)))
	s := newServer(a)
	started := make(chan struct{}, 1)
	s.AddTool(mcp.NewTool("hang"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	c := connect(t, s, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var req mcp.CallToolRequest
		req.Params.Name = "hang"
		_, err := c.CallTool(ctx, req)
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled call succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.Records()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	recs := rec.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	at := audittest.Attrs(recs[0])
	if st, et := at[otelaudit.ResponseStatusKey].AsString(), at[otelaudit.ErrorTypeKey].AsString(); st != string(otelaudit.StatusCancelled) || et != otelaudit.ErrorTypeCancelled {
		t.Errorf("status %q error.type %q, want cancelled", st, et)
	}
}
