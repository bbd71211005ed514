package pgwriter_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// roundTrips counts the client's round trips to the server: each time the
// client reads after it wrote. A COPY's data stream counts once, a pipeline
// of statements once: it measures what isolating refused rows costs in
// waiting for the server, whatever pgx API sends the statements.
type roundTrips struct{ n atomic.Int64 }

type countingConn struct {
	net.Conn
	rt    *roundTrips
	wrote atomic.Bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.wrote.Store(true)
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	if c.wrote.Swap(false) {
		c.rt.n.Add(1)
	}
	return c.Conn.Read(b)
}

func tracedWriter(t testing.TB, opts ...pgwriter.Option) (*pgwriter.Writer, *pgxpool.Pool, *roundTrips) {
	t.Helper()
	return tracedWriterAs(t, "", opts...)
}

// tracedWriterAs is tracedWriter on connections that SET ROLE role first
// (none when role is "").
func tracedWriterAs(t testing.TB, role string, opts ...pgwriter.Option) (*pgwriter.Writer, *pgxpool.Pool, *roundTrips) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	tr := &roundTrips{}
	var d net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, rt: tr}, nil
	}
	if role != "" {
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "SET ROLE "+role)
			return err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pgwriter.New(pool, "audit_log", opts...), pool, tr
}

// poison makes every tenth row (from offset) trip one of the data errors
// that remain after the mapping's sanitising: a JSON number PostgreSQL's
// numeric cannot hold (22003), and a tool name over the btree index row
// limit (54000), which a Mapper whose MaxFieldBytes was raised lets pass.
func poison(batch []auditrow.Row) (bad int) {
	return poisonJSON(batch) + poisonIndex(batch)
}

// poisonJSON makes 10% of the rows carry JSON with a number PostgreSQL's
// numeric cannot hold (22003), the data error that remains with the
// default caps.
func poisonJSON(batch []auditrow.Row) (bad int) {
	for i := 3; i < len(batch); i += 10 {
		batch[i].RequestArgs = []byte(`{"n": 1e1000000}`)
		bad++
	}
	return bad
}

// poisonIndex makes 10% of the rows carry a tool name over the btree index
// row limit (54000), which only a raised Mapper.MaxFieldBytes lets through.
func poisonIndex(batch []auditrow.Row) (bad int) {
	for i := 7; i < len(batch); i += 10 {
		batch[i].ToolName = incompressible(4000) + batch[i].ToolName
		bad++
	}
	return bad
}

// incompressible returns n random bytes as base64: a value PostgreSQL
// cannot compress below the index row limit.
func incompressible(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// TestRefusedRowsCostFewRoundTrips: isolating the refused rows of a batch
// costs a fixed number of statements, not one (or log n) per refused row;
// every other row lands, every refused one is in the reject table with its
// error, and a replay of the batch changes nothing.
func TestRefusedRowsCostFewRoundTrips(t *testing.T) {
	t.Parallel()
	w, pool, tr := tracedWriter(t)
	ctx := context.Background()
	batch := rows(1024)
	bad := poison(batch)
	if _, err := w.Write(ctx, rows(8)); err != nil { // warm the pool: connecting is not writing
		t.Fatal(err)
	}
	before := tr.n.Load()
	res, err := w.Write(ctx, rows(1024))
	clean := tr.n.Load() - before
	if err != nil || res != (pgwriter.Result{Inserted: 1024}) {
		t.Fatalf("clean write = %+v, %v", res, err)
	}
	before = tr.n.Load()
	res, err = w.Write(ctx, batch)
	if err != nil || res != (pgwriter.Result{Inserted: 1024 - bad, Rejected: bad}) {
		t.Fatalf("write = %+v, %v; want %d inserted, %d rejected", res, err, 1024-bad, bad)
	}
	if n := tr.n.Load() - before; n > clean+10 {
		t.Errorf("isolating %d refused rows of 1024 took %d round trips (a clean batch %d), want at most %d", bad, n, clean, clean+10)
	} else {
		t.Logf("isolating %d refused rows of 1024: %d round trips (a clean batch: %d)", bad, n, clean)
	}
	if n := count(t, pool, "audit_log"); n != 8+1024+1024-bad {
		t.Errorf("audit_log has %d rows, want %d", n, 8+1024+1024-bad)
	}
	var n22, n54 int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE error LIKE '22003:%'), count(*) FILTER (WHERE error LIKE '54000:%')
		FROM audit_log_rejects`).Scan(&n22, &n54); err != nil {
		t.Fatal(err)
	}
	if n22+n54 != bad || n22 == 0 || n54 == 0 {
		t.Errorf("rejects: %d numeric overflow, %d index row size; want %d in all", n22, n54, bad)
	}
	// A replay: the good rows are duplicates, the refused ones refused again.
	res, err = w.Write(ctx, batch)
	if err != nil || res != (pgwriter.Result{Duplicates: 1024 - bad, Rejected: bad}) {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	if n := count(t, pool, "audit_log"); n != 8+1024+1024-bad {
		t.Errorf("after the replay audit_log has %d rows, want %d", n, 8+1024+1024-bad)
	}
}

// TestIsolationFallsBackToSplitting: a row the stage itself refuses (a NUL
// byte in a text column, which the mapping never produces but Write may be
// handed) makes the writer split the batch instead; the result is the same.
func TestIsolationFallsBackToSplitting(t *testing.T) {
	t.Parallel()
	w, pool, tr := tracedWriter(t)
	batch := rows(256)
	batch[10].ClientSubject = "nul\x00byte"
	batch[200].RequestArgs = []byte(`[1e1000000]`)
	before := tr.n.Load()
	res, err := w.Write(context.Background(), batch)
	if err != nil || res != (pgwriter.Result{Inserted: 254, Rejected: 2}) {
		t.Fatalf("write = %+v, %v", res, err)
	}
	if n := tr.n.Load() - before; n < 20 {
		t.Errorf("%d round trips: the fallback did not split the batch", n)
	}
	if n := count(t, pool, "audit_log_rejects"); n != 2 {
		t.Errorf("rejects = %d, want 2", n)
	}
}

// TestSealedRefusedRowsCostFewRoundTrips: the sealing writer (what the
// exporter uses by default), as the least-privilege writer role, isolates
// refused rows in a fixed number of round trips too, seals exactly the rows
// it inserted, and the trail verifies; a replay seals nothing new.
func TestSealedRefusedRowsCostFewRoundTrips(t *testing.T) {
	t.Parallel()
	w, writerPool, tr := tracedWriterAs(t, "otelaudit_writer", pgwriter.WithSealing(uuid.New()))
	ctx := context.Background()
	if _, err := w.Write(ctx, rows(8)); err != nil {
		t.Fatal(err)
	}
	before := tr.n.Load()
	if _, err := w.Write(ctx, rows(1024)); err != nil {
		t.Fatal(err)
	}
	clean := tr.n.Load() - before
	batch := rows(1024)
	bad := poison(batch)
	before = tr.n.Load()
	res, err := w.Write(ctx, batch)
	if err != nil || res != (pgwriter.Result{Inserted: 1024 - bad, Rejected: bad}) {
		t.Fatalf("write = %+v, %v; want %d inserted, %d rejected", res, err, 1024-bad, bad)
	}
	if n := tr.n.Load() - before; n > clean+12 {
		t.Errorf("sealed: isolating %d refused rows of 1024 took %d round trips (a clean batch %d)", bad, n, clean)
	} else {
		t.Logf("sealed: isolating %d refused rows of 1024: %d round trips (a clean batch: %d)", bad, n, clean)
	}
	res, err = w.Write(ctx, batch)
	if err != nil || res != (pgwriter.Result{Duplicates: 1024 - bad, Rejected: bad}) {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	if _, ok, err := w.CloseStream(ctx); err != nil || !ok {
		t.Fatalf("CloseStream = %v, %v", ok, err)
	}
	cfg := writerPool.Config()
	cfg.AfterConnect = nil // verify as the database owner: the writer role cannot read
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	rep := mustVerify(t, admin, "audit_log")
	if rep.Rows != int64(8+1024+1024-bad) || rep.Seals != 4 {
		t.Errorf("verify: %d rows, %d seals; want %d, 4", rep.Rows, rep.Seals, 8+1024+1024-bad)
	}
}
