package pgauditexporter

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestPersistentQueueSurvivesKill: records the Collector accepted while
// PostgreSQL is unreachable sit in its file_storage queue; the Collector is
// killed with SIGKILL, restarted (still without PostgreSQL), accepts more,
// and once PostgreSQL is reachable again every accepted record lands exactly
// once.
func TestPersistentQueueSurvivesKill(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.NewDatabase(t)
	proxy := newProxy(t, "127.0.0.1:5432")
	gw := newGateway(t, proxy.URL(databaseURL))
	ctx := context.Background()

	sent := map[uuid.UUID]bool{}
	send := func(calls []instrumentation.Call) {
		t.Helper()
		// A fresh provider per phase: its Shutdown flushes, and its error
		// tells whether the Collector accepted every record.
		lp := otlpProvider(t, 4096, otlploghttp.WithEndpoint(gw.HTTPAddr), otlploghttp.WithInsecure(),
			otlploghttp.WithHeaders(gw.AuthHeader()))
		record(lp, calls)
		if err := lp.Shutdown(ctx); err != nil {
			t.Fatalf("OTLP export: %v", err)
		}
		for _, c := range calls {
			sent[c.RequestID] = true
		}
	}

	// Phase 1: PostgreSQL reachable; the schema is migrated, rows land.
	send(testCalls(200))
	waitRows(t, databaseURL, 200, 60*time.Second)

	// Phase 2: PostgreSQL unreachable. The Collector still accepts records:
	// they go to the persistent queue.
	proxy.SetRefuse(true)
	refused := proxy.Refused()
	send(testCalls(500))
	// Wait until the consumers have picked the records up and failed to
	// write them (a connection the proxy refused), so that some are in
	// flight (dispatched, not acknowledged) at the kill.
	waitFor(t, 60*time.Second, "a write attempt while PostgreSQL is away", func() bool {
		return proxy.Refused() > refused
	})
	waitFor(t, 30*time.Second, "otelcol_exporter_queue_size > 0 before the kill", func() bool {
		q, err := gw.Metric("otelcol_exporter_queue_size")
		return err == nil && q > 0
	})
	assertCount(t, databaseURL, 200)

	// Phase 3: SIGKILL, then restart while PostgreSQL is still away. The
	// restarted Collector starts (its migration is deferred) and accepts
	// more records.
	gw.Kill()
	gw.Start()
	send(testCalls(300))
	// The restarted Collector is writing (and failing): the batches from
	// the queue and the new ones are being retried, none has landed.
	refused = proxy.Refused()
	waitFor(t, 60*time.Second, "a write attempt of the restarted Collector", func() bool {
		return proxy.Refused() > refused
	})
	assertCount(t, databaseURL, 200)

	// Phase 4: PostgreSQL is back; everything accepted lands, once.
	proxy.SetRefuse(false)
	waitRows(t, databaseURL, len(sent), 120*time.Second)

	conn := pgtest.Connect(t, databaseURL)
	got := storedIDs(t, databaseURL)
	for id := range sent {
		if got[id] != 1 {
			t.Errorf("request %s stored %d times, want once", id, got[id])
		}
	}
	for id := range got {
		if !sent[id] {
			t.Errorf("request %s stored but never sent", id)
		}
	}
	var rejects int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_log_rejects").Scan(&rejects); err != nil || rejects != 0 {
		t.Fatalf("audit_log_rejects: %d rows, err %v", rejects, err)
	}
	// A graceful stop leaves an empty queue: nothing is replayed again.
	if q, err := gw.Metric("otelcol_exporter_queue_size"); err == nil && q != 0 {
		t.Errorf("otelcol_exporter_queue_size = %v after the rows landed, want 0", q)
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func assertCount(t *testing.T, databaseURL string, want int) {
	t.Helper()
	var n int
	if err := pgtest.Connect(t, databaseURL).QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("audit_log has %d rows, want %d", n, want)
	}
}
