package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestServeIntegrity: the viewer reports "not sealed" for a trail without
// seals, and a stream broken at seal 1 once a forged seal is in the table.
func TestServeIntegrity(t *testing.T) {
	url, _ := filledDB(t)
	base := startServe(t, dbEnv(url), "--verify-interval", "200ms")
	state := func(want string) map[string]any {
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
	state("not_sealed")

	conn := pgtest.Connect(t, url)
	_, err := conn.Exec(context.Background(), `INSERT INTO audit_log_seals
		(stream_id, seq, kind, prev_hash, batch_hash, row_count, first_ts, last_ts, sealed_at, seal_hash)
		VALUES ('11111111-1111-4111-8111-111111111111', 1, 'batch', '\x00', '\x00', 1, now(), now(), now(), '\x00')`)
	if err != nil {
		t.Fatal(err)
	}
	rep := state("broken")
	streams, _ := rep["streams"].([]any)
	if len(streams) != 1 {
		t.Fatalf("streams: %v", rep)
	}
	s := streams[0].(map[string]any)
	if s["stream"] != "11111111-1111-4111-8111-111111111111" || s["state"] != "broken" || s["broken_at"] != float64(1) {
		t.Fatalf("stream: %v", s)
	}
}
