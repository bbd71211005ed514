package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// integrityState polls the viewer's /api/integrity until its state is want.
func integrityState(t *testing.T, base, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var rep map[string]any
	for time.Now().Before(deadline) {
		res, err := http.Get(base + "/api/integrity")
		if err != nil {
			t.Fatal(err)
		}
		rep = nil
		_ = json.NewDecoder(res.Body).Decode(&rep)
		res.Body.Close()
		if rep["state"] == want {
			return rep
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("integrity state %v, want %s", rep, want)
	return nil
}

// TestServeIntegrityNotSealed: rows without any seal are "not sealed".
func TestServeIntegrityNotSealed(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if err := migrations.Up(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, url)
	if _, err := conn.Exec(context.Background(), `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role,
		tool_name, backend_name, response_status, latency_ms) VALUES (gen_random_uuid(), now(), 'a', 'r', 't', 'b', 'ok', 1)`); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, dbEnv(url))
	integrityState(t, base, "not_sealed")
}

// TestServeIntegrity: a trail sealed by the real exporter is "unclosed"
// while its writer runs and "intact" once it shut down; a forged seal makes
// its stream "broken" at that seal.
func TestServeIntegrity(t *testing.T) {
	url, a := filledDB(t)
	base := startServe(t, dbEnv(url), "--verify-interval", "200ms")
	rep := integrityState(t, base, "unclosed")
	if s := rep["streams"].([]any); len(s) != 1 || s[0].(map[string]any)["state"] != "unclosed" {
		t.Fatalf("while the writer runs: %v", rep)
	}
	if err := a.lp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	integrityState(t, base, "intact")

	conn := pgtest.Connect(t, url)
	_, err := conn.Exec(context.Background(), `INSERT INTO audit_log_seals
		(stream_id, seq, kind, prev_hash, batch_hash, row_count, first_ts, last_ts, sealed_at, seal_hash)
		VALUES ('11111111-1111-4111-8111-111111111111', 1, 'batch', '\x00', '\x00', 1, now(), now(), now(), '\x00')`)
	if err != nil {
		t.Fatal(err)
	}
	rep = integrityState(t, base, "broken")
	var forged map[string]any
	for _, s := range rep["streams"].([]any) {
		if m := s.(map[string]any); m["stream"] == "11111111-1111-4111-8111-111111111111" {
			forged = m
		}
	}
	if forged == nil || forged["state"] != "broken" || forged["broken_at"] != float64(1) {
		t.Fatalf("forged stream: %v", rep)
	}
}
