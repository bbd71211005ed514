package pgwriter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

func newWriter(t *testing.T, table string) (*pgwriter.Writer, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, url, migrations.WithTable(table)); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pgwriter.New(pool, table), pool
}

func rows(n int) []auditrow.Row {
	out := make([]auditrow.Row, n)
	for i := range out {
		out[i] = auditrow.Row{
			RequestID: uuid.Must(uuid.NewV7()), Timestamp: time.Now(), ClientSubject: "alice", ClientRole: "admin",
			ToolName: fmt.Sprintf("tool-%d", i), BackendName: "demo", ResponseStatus: "ok", LatencyMS: int64(i),
			RequestArgs: []byte(`{"i":1}`),
		}
	}
	return out
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriteIsIdempotent(t *testing.T) {
	t.Parallel()
	w, pool := newWriter(t, "audit_log")
	ctx := context.Background()
	batch := rows(100)

	res, err := w.Write(ctx, batch)
	if err != nil || res != (pgwriter.Result{Inserted: 100}) {
		t.Fatalf("first write = %+v, %v", res, err)
	}
	// A replay of the same batch: COPY hits the unique index, the
	// conflict-ignoring INSERT writes nothing.
	res, err = w.Write(ctx, batch)
	if err != nil || res != (pgwriter.Result{Duplicates: 100}) {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	// Half old, half new, and one row twice within the batch.
	mixed := append(append(append([]auditrow.Row{}, batch[50:]...), rows(50)...), batch[0])
	res, err = w.Write(ctx, mixed)
	if err != nil || res != (pgwriter.Result{Inserted: 50, Duplicates: 51}) {
		t.Fatalf("mixed = %+v, %v", res, err)
	}
	if n := count(t, pool, "audit_log"); n != 150 {
		t.Errorf("rows = %d, want 150", n)
	}
	if res, err := w.Write(ctx, nil); err != nil || res != (pgwriter.Result{}) {
		t.Errorf("empty write = %+v, %v", res, err)
	}
}

func TestWriteCustomTableIsolatesRefusedRows(t *testing.T) {
	t.Parallel()
	w, pool := newWriter(t, "mcp_audit")
	batch := rows(64)
	batch[17].RequestArgs = []byte(`{"n": 1e1000000}`) // valid JSON PostgreSQL refuses (numeric overflow)
	batch[40].Attributes = []byte(`[1e1000000]`)
	res, err := w.Write(context.Background(), batch)
	if err != nil || res != (pgwriter.Result{Inserted: 62, Rejected: 2}) {
		t.Fatalf("write = %+v, %v", res, err)
	}
	if n := count(t, pool, "mcp_audit"); n != 62 {
		t.Errorf("rows = %d, want 62", n)
	}
	if n := count(t, pool, "mcp_audit_rejects"); n != 2 {
		t.Errorf("rejects = %d, want 2", n)
	}
}

func TestWriteMissingTableIsNotRetryable(t *testing.T) {
	t.Parallel()
	_, pool := newWriter(t, "other")
	w := pgwriter.New(pool, "audit_log") // a database without that table
	_, err := w.Write(context.Background(), rows(3))
	if err == nil || pgwriter.Retryable(err) {
		t.Fatalf("write to a missing table: err = %v, retryable = %v", err, pgwriter.Retryable(err))
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, true},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), true},
		{&pgconn.ConnectError{}, true},
		{io.ErrUnexpectedEOF, true},
		{errors.New("conn closed"), true},
		{&pgconn.PgError{Code: "08006"}, true},  // connection failure
		{&pgconn.PgError{Code: "57P01"}, true},  // admin shutdown
		{&pgconn.PgError{Code: "57P03"}, true},  // cannot connect now
		{&pgconn.PgError{Code: "53300"}, true},  // too many connections
		{&pgconn.PgError{Code: "40001"}, true},  // serialization failure
		{&pgconn.PgError{Code: "40P01"}, true},  // deadlock
		{&pgconn.PgError{Code: "57014"}, false}, // statement timeout
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table
		{&pgconn.PgError{Code: "22P02"}, false}, // data
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{}, false}, // no SQLSTATE: must not panic
	} {
		if got := pgwriter.Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestConnectErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	// A server that refuses the login (no such database) still means "not
	// now": the rows must wait, not be dropped.
	pool, err := pgxpool.New(context.Background(), pgtest.WithDatabase(pgtest.AdminURL(), "otelaudit_no_such_db"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pgwriter.New(pool, "audit_log").Write(context.Background(), rows(1))
	if err == nil || !pgwriter.Retryable(err) {
		t.Fatalf("write to a missing database: err = %v, retryable = %v", err, pgwriter.Retryable(err))
	}
}

func TestWriteAgainstStoppedServer(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, cluster.URL()); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	w := pgwriter.New(pool, "audit_log")
	cluster.Stop()
	_, err = w.Write(ctx, rows(5))
	if err == nil || !pgwriter.Retryable(err) {
		t.Fatalf("write with the server stopped: err = %v, retryable = %v", err, pgwriter.Retryable(err))
	}
}

// TestRejectPayloadHasEveryColumn reads back the payload of a refused row:
// one JSON key per column of auditrow.Columns that is not NULL, with the
// row's values.
func TestRejectPayloadHasEveryColumn(t *testing.T) {
	t.Parallel()
	w, pool := newWriter(t, "audit_log")
	batch := rows(3)
	bad := &batch[1]
	bad.RequestArgs = []byte(`{"n": 1e1000000}`)
	bad.ErrorMessage, bad.TraceID, bad.SpanID, bad.ServiceName = "boom", "0102030405060708090a0b0c0d0e0f10", "0102030405060708", "gw"
	bad.Attributes = []byte(`{"a":1}`)
	if res, err := w.Write(context.Background(), batch); err != nil || res != (pgwriter.Result{Inserted: 2, Rejected: 1}) {
		t.Fatalf("write = %+v, %v", res, err)
	}
	var id, msg string
	var payload []byte
	if err := pool.QueryRow(context.Background(), "SELECT request_id, error, payload FROM audit_log_rejects").Scan(&id, &msg, &payload); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	want := map[string]any{
		"request_id": bad.RequestID.String(), "timestamp": bad.Timestamp.UTC().Format("2006-01-02T15:04:05.999999999Z"),
		"client_subject": "alice", "client_role": "admin", "tool_name": "tool-1", "backend_name": "demo",
		"request_args": `{"n": 1e1000000}`, "response_status": "ok", "error_message": "boom", "latency_ms": float64(1),
		"trace_id": bad.TraceID, "span_id": bad.SpanID, "service_name": "gw", "attributes": `{"a":1}`,
	}
	if len(got) != len(auditrow.Columns) || !reflect.DeepEqual(got, want) {
		t.Errorf("payload:\n got %v\nwant %v", got, want)
	}
	if id != bad.RequestID.String() || !strings.HasPrefix(msg, "22") {
		t.Errorf("reject row: request_id %s, error %q", id, msg)
	}
}
