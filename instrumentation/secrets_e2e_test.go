package instrumentation_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/instrumentation/mcpsdk"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// Every redaction shape, in arguments and in error text, through Wrap and
// the go-sdk adapter into a real PostgreSQL: no secret appears in any column
// or attribute of audit_log, nor in any span.
func TestNoSecretReachesPostgres(t *testing.T) {
	secrets := []string{
		"hunter2-pw", "Bearer-x-tok", "u-pw-9", "k-query-1", "sk-S3CR3TS3CR3T", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
		"xoxb-123456789012-abcdefghijkl", "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
		"MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn", "dsn-pw-7", "p1-in-json", "bytes-secret", "correct-horse-battery",
	}
	args := map[string]any{
		"password": "hunter2-pw",
		"headers":  []any{[]any{"Authorization", "Bearer Bearer-x-tok"}, map[string]any{"name": "X-Api-Key", "value": "k-query-1"}},
		"db":       "postgres://u:u-pw-9@h/db?api_key=k-query-1",
		"note":     "use sk-S3CR3TS3CR3T or ghp_abcdefghijklmnopqrstuvwxyz0123456789 or xoxb-123456789012-abcdefghijkl",
		"aws":      "AKIAIOSFODNN7EXAMPLE",
		"jwt":      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
		"pem":      "-----BEGIN PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END PRIVATE KEY-----",
		"conn":     "host=db password=dsn-pw-7",
		"configs":  []string{`{"token":"p1-in-json"}`},
		"blob":     []byte(`{"secret":"bytes-secret"}`),
		"pin":      "correct-horse-battery",
	}
	quote := func(v any) string { return fmt.Sprintf("rejected %v (%q)", v, fmt.Sprint(v)) }

	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(exporter.NewProcessor(exp)))
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	spans := tracetest.NewSpanRecorder()
	a := instrumentation.New(
		instrumentation.WithLoggerProvider(lp),
		instrumentation.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))),
		instrumentation.WithIdentity(func(context.Context) (string, string) { return "carol", "ops" }),
	)

	h := a.Wrap(func(_ context.Context, req instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
		switch req.Tool {
		case "quotes_in_error":
			return instrumentation.ToolResult{}, errors.New(quote(req.Args))
		case "quotes_in_result":
			return instrumentation.ToolResult{IsError: true, ErrorMessage: quote(req.Args)}, nil
		}
		return instrumentation.ToolResult{}, nil
	})
	for _, tool := range []string{"ok", "quotes_in_error", "quotes_in_result"} {
		_, _ = h(ctx, instrumentation.ToolRequest{Tool: tool, Args: args})
	}
	a.Record(ctx, instrumentation.Call{Tool: "record", Args: args, Err: errors.New(quote(args))})

	// The go-sdk's own schema validation echoes the rejected value.
	s := mcp.NewServer(&mcp.Implementation{Name: "sdk", Version: "1"}, nil)
	s.AddReceivingMiddleware(mcpsdk.Middleware(a))
	type in struct {
		APIKey int `json:"api_key"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "typed"}, func(context.Context, *mcp.CallToolRequest, in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
	st, ct := mcp.NewInMemoryTransports()
	if _, err := s.Connect(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for _, v := range []string{"sk-S3CR3TS3CR3T", "correct-horse-battery"} {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "typed", Arguments: map[string]any{"api_key": v}}); err != nil {
			t.Fatal(err)
		}
	}

	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, url)
	rows, err := conn.Query(ctx, `SELECT tool_name, response_status, coalesce(error_message, ''), t::text FROM audit_log t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var tool, status, msg, row string
		if err := rows.Scan(&tool, &status, &msg, &row); err != nil {
			t.Fatal(err)
		}
		n++
		for _, sec := range secrets {
			if strings.Contains(row, sec) {
				t.Errorf("%s: the row holds %q: %s", tool, sec, row)
			}
		}
		if status != "ok" && msg == "" {
			t.Errorf("%s: %s without error text", tool, status)
		}
		t.Logf("%s %s: %.160s", tool, status, msg)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("%d rows, want 6", n)
	}
	for _, sp := range spans.Ended() {
		texts := []string{sp.Name(), sp.Status().Description}
		for _, kv := range sp.Attributes() {
			texts = append(texts, kv.Value.String())
		}
		for _, txt := range texts {
			for _, sec := range secrets {
				if strings.Contains(txt, sec) {
					t.Errorf("span %s holds %q: %q", sp.Name(), sec, txt)
				}
			}
		}
	}
}
