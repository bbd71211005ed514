package exporter_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/jackc/pgx/v5"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestMain gives the examples a database of their own through
// OTELAUDIT_DATABASE_URL, the variable a real deployment sets.
func TestMain(m *testing.M) {
	if os.Getenv("OTELAUDIT_CRASH_URL") != "" || os.Getenv("OTELAUDIT_EFBIG_URL") != "" {
		// A helper process (TestSIGKILLWithSpool kills its own, so it
		// would never drop a database).
		os.Exit(m.Run())
	}
	url, drop, err := pgtest.CreateDatabase(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(exporter.EnvDatabaseURL, url)
	code := m.Run()
	if err := drop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// The whole setup: open the exporter (it applies the schema), register it
// through NewProcessor, and audit tool calls with an Auditor.
func Example() {
	ctx := context.Background()
	exp, err := exporter.New(ctx) // OTELAUDIT_DATABASE_URL, else PGHOST, PGUSER, ...
	if err != nil {
		log.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "my-gateway"))),
		sdklog.WithProcessor(exporter.NewProcessor(exp)),
	)
	defer lp.Shutdown(ctx)

	auditor := instrumentation.New(instrumentation.WithLoggerProvider(lp))
	auditor.Record(ctx, instrumentation.Call{
		Subject: "alice", Role: "analyst", Tool: "search_docs", Backend: "docs",
		Args:    map[string]any{"query": "q3 report", "api_key": "sk-123"},
		Latency: 42 * time.Millisecond,
	})

	// Only to show the row: a gateway never waits for the database.
	if err := lp.ForceFlush(ctx); err != nil {
		log.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, os.Getenv(exporter.EnvDatabaseURL))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	var subject, tool, status, args, service string
	var latency int64
	err = conn.QueryRow(ctx, `SELECT client_subject, tool_name, response_status, latency_ms, request_args::text, service_name
		FROM audit_log WHERE tool_name = 'search_docs'`).Scan(&subject, &tool, &status, &latency, &args, &service)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(subject, tool, status, latency, service)
	fmt.Println(args)
	// Output:
	// alice search_docs ok 42 my-gateway
	// {"query": "q3 report", "api_key": "[REDACTED]"}
}

// With a spool, batches that cannot reach PostgreSQL go to local disk and
// are replayed when it is back, by this process or the next one on the same
// directory; Health tells a fail-closed gateway whether audit events can be
// recorded durably.
func ExampleWithSpool() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "otelaudit-spool")
	defer os.RemoveAll(dir)

	// PostgreSQL is away: nothing listens on port 1.
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL("postgres://postgres@127.0.0.1:1/audit"),
		exporter.WithMigrate(false), exporter.WithSpool(dir, 1<<30)) // up to 1 GiB on disk
	if err != nil {
		log.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(exporter.NewProcessor(exp)))
	auditor := instrumentation.New(
		instrumentation.WithLoggerProvider(lp),
		instrumentation.WithFailClosed(exp), // refuse tool calls that could not be audited
	)
	auditor.Record(ctx, instrumentation.Call{Subject: "alice", Role: "analyst", Tool: "spooled_call", Backend: "docs"})
	if err := lp.ForceFlush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("spooled:", exp.Stats().Spooled, "health:", exp.Health(ctx))
	if err := lp.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}

	// The next process, with PostgreSQL back, replays the spool.
	exp, err = exporter.New(ctx, exporter.WithSpool(dir, 1<<30)) // OTELAUDIT_DATABASE_URL
	if err != nil {
		log.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	for exp.Stats().SpoolBacklog > 0 {
		time.Sleep(10 * time.Millisecond) // only to show the row
	}
	conn, err := pgx.Connect(ctx, os.Getenv(exporter.EnvDatabaseURL))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE tool_name = 'spooled_call'`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("replayed:", exp.Stats().Replayed, "rows:", n)
	// Output:
	// spooled: 1 health: <nil>
	// replayed: 1 rows: 1
}
