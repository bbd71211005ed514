package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// xss is put into every field of one call: the viewer must show it as text
// and the table format must not let its escape sequence reach a terminal.
const xss = `<script>alert(1)</script><img src=x onerror=alert(2)>` + "\x1b[31m"

// auditor writes calls through the real pipeline: instrumentation Auditor →
// sdk/log → exporter.NewProcessor → exporter → PostgreSQL.
type auditor struct {
	*instrumentation.Auditor
	lp *sdklog.LoggerProvider
	tp *sdktrace.TracerProvider
}

func newAuditor(t *testing.T, url string) *auditor {
	t.Helper()
	ctx := context.Background()
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "test-gateway"))),
		sdklog.WithProcessor(exporter.NewProcessor(exp)),
	)
	tp := sdktrace.NewTracerProvider()
	a := &auditor{Auditor: instrumentation.New(instrumentation.WithLoggerProvider(lp), instrumentation.WithTracerProvider(tp)), lp: lp, tp: tp}
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) })
	return a
}

// record audits the calls and waits until they are written.
func (a *auditor) record(t *testing.T, calls ...instrumentation.Call) {
	t.Helper()
	ctx := context.Background()
	for _, c := range calls {
		// A gateway's request span: the audit row carries its trace id.
		sctx, span := a.tp.Tracer("gateway").Start(ctx, "tools/call "+c.Tool)
		a.Record(sctx, c)
		span.End()
	}
	if err := a.lp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
}

// fixtureCalls are 24 ordinary calls over the last few minutes and one
// hostile call. Known counts: subjects alice 8, bob 8, carol 8; tools
// search_docs 6, github.create_issue 6, github.list_repos 6, fs.read_file 6;
// statuses ok 12, error 6, denied 6; session s-even 12, s-odd 12.
func fixtureCalls(now time.Time) []instrumentation.Call {
	subjects := []string{"alice", "bob", "carol"}
	tools := []string{"search_docs", "github.create_issue", "github.list_repos", "fs.read_file"}
	var calls []instrumentation.Call
	for i := 0; i < 24; i++ {
		c := instrumentation.Call{
			Start:     now.Add(-time.Duration(24-i) * 5 * time.Second),
			Subject:   subjects[i%3],
			Role:      []string{"analyst", "admin,auditor"}[i%2],
			Tool:      tools[i%4],
			Backend:   []string{"docs", "github"}[i%2],
			Args:      map[string]any{"n": i, "path": fmt.Sprintf("/srv/%d", i%2), "api_key": "sk-secret-" + fmt.Sprint(i)},
			Latency:   time.Duration(10+i) * time.Millisecond,
			Method:    otelaudit.MethodToolsCall,
			SessionID: []string{"s-even", "s-odd"}[i%2],
			JSONRPCID: fmt.Sprint(i),
		}
		switch i % 4 {
		case 1:
			c.Err = errors.New("backend said No")
		case 3:
			c.Err = fmt.Errorf("role may not call: %w", instrumentation.ErrDenied)
		}
		if i%4 == 1 && i%8 == 5 {
			c.Err = errors.New("upstream 503")
		}
		calls = append(calls, c)
	}
	calls = append(calls, instrumentation.Call{
		Start: now.Add(-2 * time.Hour), Subject: xss, Role: xss, Tool: xss, Backend: xss,
		Args: map[string]any{xss: xss}, Err: errors.New(xss), Latency: time.Millisecond, SessionID: xss,
	})
	return calls
}

// filledDB returns a database filled with fixtureCalls through the real
// exporter.
func filledDB(t *testing.T) (url string, a *auditor) {
	t.Helper()
	url = pgtest.NewDatabase(t)
	a = newAuditor(t, url)
	a.record(t, fixtureCalls(time.Now())...)
	return url, a
}
