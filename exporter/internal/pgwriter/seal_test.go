package pgwriter_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
	"github.com/sentinel-gateway/otelaudit/verify"
)

func newSealingPool(t *testing.T, table string) *pgxpool.Pool {
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
	return pool
}

type sealRow struct {
	kind   string
	count  int64
	reason string
}

func seals(t *testing.T, pool *pgxpool.Pool, table string, stream uuid.UUID) []sealRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT kind, row_count, coalesce(reason, '') FROM `+table+`_seals WHERE stream_id = $1 ORDER BY seq`, stream)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []sealRow
	for rows.Next() {
		var s sealRow
		if err := rows.Scan(&s.kind, &s.count, &s.reason); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func mustVerify(t *testing.T, pool *pgxpool.Pool, table string) *verify.Report {
	t.Helper()
	rep, err := verify.Run(context.Background(), pool, verify.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact() {
		for _, f := range rep.Findings {
			t.Errorf("finding: %s", f)
		}
		t.FailNow()
	}
	return rep
}

// TestSealedWrites: replays seal only what they insert, a replay that
// inserts nothing writes no seal, refused rows are not sealed, gaps and the
// close are in the chain, and the result verifies.
func TestSealedWrites(t *testing.T) {
	t.Parallel()
	for _, table := range []string{"audit_log", "mcp_audit"} {
		t.Run(table, func(t *testing.T) {
			t.Parallel()
			pool := newSealingPool(t, table)
			stream := uuid.New()
			w := pgwriter.New(pool, table, pgwriter.WithSealing(stream))
			if w.Stream() != stream {
				t.Fatalf("Stream() = %s, want %s", w.Stream(), stream)
			}
			ctx := context.Background()
			batch := rows(100)
			if res, err := w.Write(ctx, batch); err != nil || res != (pgwriter.Result{Inserted: 100}) {
				t.Fatalf("first write = %+v, %v", res, err)
			}
			if res, err := w.Write(ctx, batch); err != nil || res != (pgwriter.Result{Duplicates: 100}) {
				t.Fatalf("replay = %+v, %v", res, err)
			}
			mixed := append(append(append([]auditrow.Row{}, batch[50:]...), rows(50)...), batch[0])
			if res, err := w.Write(ctx, mixed); err != nil || res != (pgwriter.Result{Inserted: 50, Duplicates: 51}) {
				t.Fatalf("mixed = %+v, %v", res, err)
			}
			w.RecordGap(7, "spool_full")
			w.RecordGap(3, "spool_full")
			bad := rows(64)
			bad[17].RequestArgs = []byte(`{"n": 1e1000000}`) // PostgreSQL refuses it
			if res, err := w.Write(ctx, bad); err != nil || res != (pgwriter.Result{Inserted: 63, Rejected: 1}) {
				t.Fatalf("bad = %+v, %v", res, err)
			}
			if _, ok, err := w.CloseStream(ctx); err != nil || !ok {
				t.Fatalf("CloseStream = %v, %v", ok, err)
			}
			want := []sealRow{{"batch", 100, ""}, {"batch", 50, ""}, {"gap", 10, "spool_full"}, {"batch", 63, ""}, {"close", 0, ""}}
			got := seals(t, pool, table, stream)
			if len(got) != len(want) {
				t.Fatalf("seals = %+v, want %+v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("seal %d = %+v, want %+v", i+1, got[i], want[i])
				}
			}
			rep := mustVerify(t, pool, table)
			if rep.Rows != 213 || len(rep.Streams) != 1 || rep.Streams[0].State != verify.StateIntact || rep.Streams[0].Lost != 10 {
				t.Fatalf("report = %+v", rep)
			}
		})
	}
}

// TestSealedConcurrentWriters: two streams at once, and two goroutines on
// one stream (serialised by the advisory lock), all verify.
func TestSealedConcurrentWriters(t *testing.T) {
	t.Parallel()
	pool := newSealingPool(t, "audit_log")
	ctx := context.Background()
	a := pgwriter.New(pool, "audit_log", pgwriter.WithSealing(uuid.New()))
	b := pgwriter.New(pool, "audit_log", pgwriter.WithSealing(uuid.New()))
	var wg sync.WaitGroup
	for _, w := range []*pgwriter.Writer{a, a, b, b} {
		wg.Go(func() {
			for range 10 {
				if _, err := w.Write(ctx, rows(50)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rep := mustVerify(t, pool, "audit_log")
	if rep.Rows != 2000 || rep.Seals != 40 || len(rep.Streams) != 2 {
		t.Fatalf("report: %d rows, %d seals, %d streams; want 2000, 40, 2", rep.Rows, rep.Seals, len(rep.Streams))
	}
	for _, s := range rep.Streams {
		if s.State != verify.StateUnclosed {
			t.Errorf("stream %s: state %s, want unclosed (no CloseStream)", s.ID, s.State)
		}
	}
	if len(rep.Warnings) != 2 {
		t.Errorf("warnings = %v, want one unclosed stream each", rep.Warnings)
	}
}

// TestSealingAsWriterRole: the least-privilege writer role can seal
// (including a replay, which needs RETURNING seal_pos) and close its
// stream, and the reader role can verify.
func TestSealingAsWriterRole(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatal(err)
	}
	asRole := func(role string) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "SET ROLE "+role)
			return err
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	w := pgwriter.New(asRole("otelaudit_writer"), "audit_log", pgwriter.WithSealing(uuid.New()))
	batch := rows(30)
	if res, err := w.Write(ctx, batch); err != nil || res.Inserted != 30 {
		t.Fatalf("write as writer: %+v, %v", res, err)
	}
	if res, err := w.Write(ctx, append(batch[10:], rows(5)...)); err != nil || res != (pgwriter.Result{Inserted: 5, Duplicates: 20}) {
		t.Fatalf("replay as writer: %+v, %v", res, err)
	}
	if _, ok, err := w.CloseStream(ctx); err != nil || !ok {
		t.Fatalf("close as writer: %v, %v", ok, err)
	}
	rep := mustVerify(t, asRole("otelaudit_reader"), "audit_log")
	if rep.Rows != 35 || rep.Seals != 3 {
		t.Fatalf("verify as reader: %d rows, %d seals; want 35, 3", rep.Rows, rep.Seals)
	}
}
