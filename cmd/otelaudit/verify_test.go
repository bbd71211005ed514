package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestVerifyCommand runs `otelaudit verify` through the binary on a trail
// written by the real pipeline with a signing key and an anchor: exit 0 and
// a report when intact, exit 1 naming the row after an edit, exit 2 when it
// cannot run.
func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, pubPEM, err := integrity.MarshalKeyPair(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubFile, anchor := filepath.Join(dir, "audit.pub"), filepath.Join(dir, "checkpoints.jsonl")
	if err := os.WriteFile(pubFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabase(t)
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url), exporter.WithSigningKey(priv), exporter.WithAnchorFile(anchor))
	if err != nil {
		t.Fatal(err)
	}
	a := newAuditorWith(t, exp)
	a.record(t, fixtureCalls(time.Now())...)
	if err := a.lp.Shutdown(ctx); err != nil { // shuts the exporter down: close seal, checkpoint
		t.Fatal(err)
	}

	r := mustRun(t, dbEnv(url), "verify", "--anchor", anchor, "--public-key", pubFile)
	if !strings.Contains(r.stdout, "INTACT") || !strings.Contains(r.stdout, "intact") {
		t.Fatalf("verify output:\n%s", r.stdout)
	}
	r = mustRun(t, dbEnv(url), "verify", "--anchor", anchor, "--public-key", pubFile, "--json")
	var rep struct {
		Intact  bool
		Rows    int64
		Streams []struct{ State string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.Intact || rep.Rows != 25 || len(rep.Streams) != 1 || rep.Streams[0].State != "intact" {
		t.Fatalf("verify --json: %v\n%s", err, r.stdout)
	}

	conn := pgtest.Connect(t, url)
	if _, err := conn.Exec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := conn.QueryRow(ctx, `UPDATE audit_log SET response_status = 'tampered' WHERE id = (SELECT max(id) - 3 FROM audit_log) RETURNING id::text`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	r = run(t, dbEnv(url), "verify", "--anchor", anchor, "--public-key", pubFile)
	if r.code != ExitFinding || !strings.Contains(r.stdout, "TAMPERING FOUND") || !strings.Contains(r.stdout, "row id "+id) {
		t.Fatalf("after an edit: exit %d, stdout:\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dbEnv(url), "verify", "--public-key", filepath.Join(dir, "missing.pub"))
	if r.code != ExitFailure {
		t.Fatalf("missing key file: exit %d, want %d", r.code, ExitFailure)
	}
}

// newAuditorWith is newAuditor over an exporter of the test's own.
func newAuditorWith(t *testing.T, exp *exporter.Exporter) *auditor {
	t.Helper()
	lp := sdklog.NewLoggerProvider(
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "test-gateway"))),
		sdklog.WithProcessor(exporter.NewProcessor(exp)),
	)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) })
	return &auditor{Auditor: instrumentation.New(instrumentation.WithLoggerProvider(lp), instrumentation.WithTracerProvider(tp)), lp: lp, tp: tp}
}
