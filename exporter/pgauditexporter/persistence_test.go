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
		lp := otlpProvider(t, 4096, otlploghttp.WithEndpoint(gw.HTTPAddr), otlploghttp.WithInsecure())
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
	send(testCalls(500))
	// Let the consumers pick the records up, fail and start retrying, so
	// that some are in flight (dispatched, not acknowledged) at the kill.
	time.Sleep(1500 * time.Millisecond)
	if q, err := gw.Metric("otelcol_exporter_queue_size"); err != nil || q == 0 {
		t.Fatalf("otelcol_exporter_queue_size = %v (err %v) before the kill, want the accepted records", q, err)
	}
	assertCount(t, databaseURL, 200)

	// Phase 3: SIGKILL, then restart while PostgreSQL is still away. The
	// restarted Collector starts (its migration is deferred) and accepts
	// more records.
	gw.Kill()
	gw.Start()
	send(testCalls(300))
	time.Sleep(500 * time.Millisecond)
	assertCount(t, databaseURL, 200)

	// Phase 4: PostgreSQL is back; everything accepted lands, once.
	proxy.SetRefuse(false)
	waitRows(t, databaseURL, len(sent), 120*time.Second)

	conn := pgtest.Connect(t, databaseURL)
	rows, err := conn.Query(ctx, "SELECT request_id FROM audit_log")
	if err != nil {
		t.Fatal(err)
	}
	got := map[uuid.UUID]int{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
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
