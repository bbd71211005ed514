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
