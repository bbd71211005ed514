package mcpsdk_test

import (
	"context"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpsdk"
)

type keyInput struct {
	APIKey int    `json:"api_key"`
	Q      string `json:"q"`
}

// The go-sdk's own schema validation echoes the rejected value in its error
// result. The stored error text and the span status must not hold it, with
// the value patterns on (sk-…) and off (only what redaction removed from the
// arguments is known to be secret).
func TestSchemaValidationErrorScrubbed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secret string
		opts   []instrumentation.Option
	}{
		{"patterns on", "sk-S3CR3TS3CR3T", nil},
		{"patterns off", "sk-S3CR3TS3CR3T", []instrumentation.Option{instrumentation.WithoutDefaultSecretPatterns()}},
		{"no pattern matches", "correct-horse-battery", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &audittest.Recorder{}
			spans := tracetest.NewSpanRecorder()
			a := instrumentation.New(append([]instrumentation.Option{
				instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)),
				instrumentation.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))),
			}, tt.opts...)...)
			s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
			s.AddReceivingMiddleware(mcpsdk.Middleware(a))
			mcp.AddTool(s, &mcp.Tool{Name: "lookup"}, func(ctx context.Context, req *mcp.CallToolRequest, in keyInput) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{}, nil, nil
			})
			cs := inMemory(t, s)
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "lookup", Arguments: map[string]any{"api_key": tt.secret, "q": "x"}})
			if err != nil {
				t.Fatal(err)
			}
			// The precondition: the SDK's error does quote the value.
			if !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, tt.secret) {
				t.Fatalf("the go-sdk's validation error no longer quotes the value: %+v", res.Content)
			}
			recs := rec.Records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			at := audittest.Attrs(recs[0])
			msg := at[otelaudit.ErrorMessageKey].AsString()
			if msg == "" || !strings.Contains(msg, "validating") {
				t.Errorf("error.message %q", msg)
			}
			for k, v := range at {
				if strings.Contains(v.String(), tt.secret) {
					t.Errorf("%s = %q holds the secret", k, v.String())
				}
			}
			for _, sp := range spans.Ended() {
				if strings.Contains(sp.Status().Description, tt.secret) {
					t.Errorf("span status %q holds the secret", sp.Status().Description)
				}
			}
			t.Logf("stored error.message: %s", msg)
		})
	}
}
