package instrumentation_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/internal/audittest"
)

func ExampleAuditor_Record() {
	rec := &audittest.Recorder{} // in a gateway: the exporter's processor
	a := instrumentation.New(instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)))

	a.Record(context.Background(), instrumentation.Call{
		Subject: "alice", Role: "admin", Tool: "search", Backend: "docs",
		Args:    map[string]any{"q": "otel", "api_key": "sk-123"},
		Latency: 12 * time.Millisecond,
	})

	attrs := audittest.Attrs(rec.Records()[0])
	fmt.Println(attrs[otelaudit.ResponseStatusKey].AsString())
	fmt.Println(attrs[otelaudit.ToolCallArgumentsKey].String())
	// Output:
	// ok
	// {"api_key":"[REDACTED]","q":"otel"}
}

func ExampleAuditor_Wrap() {
	rec := &audittest.Recorder{}
	a := instrumentation.New(instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(rec)))

	handler := a.Wrap(func(ctx context.Context, req instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
		instrumentation.SetBackend(ctx, "files") // chosen by the gateway per call
		return instrumentation.ToolResult{IsError: true, ErrorMessage: "no such file"}, nil
	})
	ctx := instrumentation.ContextWithIdentity(context.Background(), "bob", "dev")
	_, _ = handler(ctx, instrumentation.ToolRequest{Tool: "read_file", Args: map[string]any{"path": "/etc/motd"}})

	attrs := audittest.Attrs(rec.Records()[0])
	for _, k := range []string{"user.id", "otelaudit.backend.name", "otelaudit.response.status", "error.type", "error.message"} {
		for key, v := range attrs {
			if string(key) == k {
				fmt.Printf("%s=%s\n", k, v.String())
			}
		}
	}
	// Output:
	// user.id=bob
	// otelaudit.backend.name=files
	// otelaudit.response.status=error
	// error.type=tool_error
	// error.message=no such file
}

func ExampleAuditor_Allow() {
	down := instrumentation.HealthCheckerFunc(func(context.Context) error { return fmt.Errorf("postgres away") })
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(audittest.NewLoggerProvider(&audittest.Recorder{})),
		instrumentation.WithFailClosed(down),
	)
	fmt.Println(a.Allow(context.Background()))
	// Output:
	// instrumentation: audit unavailable
}
