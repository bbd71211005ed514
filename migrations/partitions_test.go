package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func migrated(t *testing.T, opts ...migrations.Option) (string, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	if err := migrations.Up(context.Background(), url, opts...); err != nil {
		t.Fatal(err)
	}
	return url, newPool(t, url)
}

// insert writes one row per timestamp the way the writer's conflict path
// does (ON CONFLICT DO NOTHING) and returns how many were new.
func insert(t *testing.T, db *pgxpool.Pool, table string, ids []uuid.UUID, ts []time.Time) int {
	t.Helper()
	tag, err := db.Exec(context.Background(), `INSERT INTO `+pgx.Identifier{table}.Sanitize()+`
		(request_id, "timestamp", client_subject, client_role, tool_name, backend_name, response_status, latency_ms, attributes)
		SELECT u, t, 'alice', 'admin', 'echo', 'demo', 'ok', 1, '{"mcp.session.id":"s-1"}'
		FROM unnest($1::uuid[], $2::timestamptz[]) AS x(u, t)
		ON CONFLICT DO NOTHING`, ids, ts)
	if err != nil {
		t.Fatal(err)
	}
	return int(tag.RowsAffected())
}

func partitionOf(t *testing.T, db *pgxpool.Pool, table string, id uuid.UUID) string {
	t.Helper()
	var p string
	if err := db.QueryRow(context.Background(), `SELECT tableoid::regclass::text FROM `+pgx.Identifier{table}.Sanitize()+` WHERE request_id = $1`, id).Scan(&p); err != nil {
		t.Fatalf("row %s: %v", id, err)
	}
	return p
}

func utcDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

func TestSkewedClocksLandAndNextPartitionMovesThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db := migrated(t)

	// The migration created today and the days ahead.
	parts, err := migrations.Partitions(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 4 || !parts[0].Default {
		t.Fatalf("partitions = %+v, want the default first and today + 3 days", parts)
	}
	today := utcDay(time.Now())
	found := false
	for _, p := range parts {
		if p.From.Equal(today) && p.To.Equal(today.Add(24*time.Hour)) && p.Name == "audit_log_p"+today.Format("20060102") {
			found = true
		}
	}
	if !found {
		t.Errorf("no partition for today %s in %+v", today, parts)
	}

	far := today.Add(40 * 24 * time.Hour).Add(5 * time.Hour)
	ts := []time.Time{time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), far, far.Add(time.Minute)}
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	if n := insert(t, db, "audit_log", ids, ts); n != 4 {
		t.Fatalf("inserted %d rows, want 4", n)
	}
	for _, id := range ids {
		if p := partitionOf(t, db, "audit_log", id); p != "audit_log_default" {
			t.Errorf("row %s in %s, want the default partition", id, p)
		}
	}
	// The partition for the far day while the default holds rows of it:
	// they move in, creating it does not fail.
	created, err := migrations.EnsurePartitionsRange(ctx, db, far, far.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := "audit_log_p" + utcDay(far).Format("20060102")
	if len(created) != 1 || created[0] != want {
		t.Fatalf("created %q, want [%s]", created, want)
	}
	for _, id := range ids[2:] {
		if p := partitionOf(t, db, "audit_log", id); p != want {
			t.Errorf("row %s in %s, want %s", id, p, want)
		}
	}
	// A replay of the moved rows (and the skewed ones) lands nothing.
	if n := insert(t, db, "audit_log", ids, ts); n != 0 {
		t.Errorf("replay inserted %d rows, want 0", n)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 4 {
		t.Errorf("rows = %d, %v; want 4", n, err)
	}
	// Again: nothing to create.
	if created, err := migrations.EnsurePartitionsRange(ctx, db, far, far.Add(time.Hour)); err != nil || len(created) != 0 {
		t.Errorf("second ensure = %q, %v", created, err)
	}
}

func TestReplayAcrossPartitionBoundaryLandsOnce(t *testing.T) {
	t.Parallel()
	_, db := migrated(t)
	midnight := utcDay(time.Now()).Add(24 * time.Hour)
	ts := []time.Time{midnight.Add(-time.Microsecond), midnight, midnight.Add(time.Microsecond)}
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	if n := insert(t, db, "audit_log", ids, ts); n != 3 {
		t.Fatalf("inserted %d, want 3", n)
	}
	if a, b := partitionOf(t, db, "audit_log", ids[0]), partitionOf(t, db, "audit_log", ids[1]); a == b {
		t.Fatalf("rows on both sides of midnight share partition %s", a)
	}
	if n := insert(t, db, "audit_log", ids, ts); n != 0 {
		t.Errorf("replay inserted %d, want 0", n)
	}
}

func TestEnsurePartitionsConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, _ := migrated(t)
	from := utcDay(time.Now()).Add(10 * 24 * time.Hour)
	to := from.Add(30 * 24 * time.Hour)
	const n = 6
	var wg sync.WaitGroup
	results := make([][]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each caller its own pool, as separate writer processes have.
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(ctx)
			results[i], errs[i] = migrations.EnsurePartitionsRange(ctx, conn, from, to)
		}()
	}
	wg.Wait()
	total := 0
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
		for _, name := range results[i] {
			if seen[name] {
				t.Errorf("partition %s created twice", name)
			}
			seen[name] = true
			total++
		}
	}
	if total != 30 {
		t.Errorf("created %d partitions in all, want 30", total)
	}
}

func TestDropPartitionsWithHook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db := migrated(t)
	if _, err := db.Exec(ctx, `CREATE TABLE seal_marks (partition text, lo timestamptz, hi timestamptz, is_default bool)`); err != nil {
		t.Fatal(err)
	}
	old := utcDay(time.Now()).Add(-60 * 24 * time.Hour)
	if _, err := migrations.EnsurePartitionsRange(ctx, db, old, old.Add(5*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	var ts []time.Time
	for d := range 5 {
		for h := range 3 {
			ids = append(ids, uuid.New())
			ts = append(ts, old.Add(time.Duration(d)*24*time.Hour+time.Duration(h)*time.Hour))
		}
	}
	// And one skewed row in the default partition.
	ids = append(ids, uuid.New())
	ts = append(ts, time.Unix(86400, 0))
	insert(t, db, "audit_log", ids, ts)

	hook := func(ctx context.Context, tx pgx.Tx, p migrations.Partition) error {
		var lo, hi any
		if !p.Default {
			lo = p.From
		}
		hi = p.To
		_, err := tx.Exec(ctx, `INSERT INTO seal_marks VALUES ($1, $2, $3, $4)`, p.Name, lo, hi, p.Default)
		return err
	}
	// A failing hook keeps the partition.
	boom := errors.New("boom")
	dropped, err := migrations.DropPartitions(ctx, db, old.Add(2*24*time.Hour), migrations.WithBeforeDrop(
		func(context.Context, pgx.Tx, migrations.Partition) error { return boom }))
	if !errors.Is(err, boom) || len(dropped) != 0 {
		t.Fatalf("failing hook: dropped %v, err %v", dropped, err)
	}

	cut := old.Add(2*24*time.Hour + 12*time.Hour) // inside the third day: it stays
	start := time.Now()
	dropped, err = migrations.DropPartitions(ctx, db, cut, migrations.WithBeforeDrop(hook))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dropped %d partitions in %v", len(dropped), time.Since(start))
	if len(dropped) != 3 || dropped[0].From != old || dropped[1].From != old.Add(24*time.Hour) || !dropped[2].Default {
		t.Fatalf("dropped = %+v, want the two oldest days and the default's old rows", dropped)
	}
	var rows, marks int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&rows); err != nil || rows != 9 {
		t.Errorf("rows left = %d, %v; want 9", rows, err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM seal_marks`).Scan(&marks); err != nil || marks != 3 {
		t.Errorf("hook marks = %d, %v; want 3", marks, err)
	}
	var gone int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname LIKE 'audit\_log\_%' AND relkind = 'r' AND NOT relispartition
		AND relname NOT IN ('audit_log_rejects', 'audit_log_partitioning', 'audit_log_schema_migrations')
		AND relname NOT LIKE 'audit\_log\_seals%' AND relname NOT LIKE 'audit\_log\_checkpoints%' AND relname NOT LIKE 'audit\_log\_retention%'`).Scan(&gone); err != nil || gone != 0 {
		t.Errorf("%d detached tables left behind (%v)", gone, err)
	}
	parts, err := migrations.Partitions(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if !p.Default && !p.To.After(cut) {
			t.Errorf("partition %s [%s, %s) survived a cut at %s", p.Name, p.From, p.To, cut)
		}
	}
}

func TestReservedTableNameRefusedCleanly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	err := migrations.Up(ctx, url, migrations.WithTable("user"))
	if err == nil {
		t.Fatal(`WithTable("user"): no error`)
	}
	t.Logf("WithTable(\"user\"): %v", err)
	conn := pgtest.Connect(t, url)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("tables after a refused name = %d, %v; want none (no version table either)", n, err)
	}
	// The Go list matches the server's reserved words.
	rows, err := conn.Query(ctx, `SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')`)
	if err != nil {
		t.Fatal(err)
	}
	words, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range words {
		if migrations.ValidateTable(w) == nil {
			t.Errorf("reserved word %q accepted", w)
		}
	}
}

func TestFailedMigrationLeavesNoDirtyVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url, 1); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, url)
	// Something in the way of migration 2.
	if _, err := conn.Exec(ctx, `CREATE TABLE audit_log_partitioning (x int)`); err != nil {
		t.Fatal(err)
	}
	err := migrations.Up(ctx, url)
	if err == nil {
		t.Fatal("Up over a conflicting table: no error")
	}
	t.Logf("Up: %v", err)
	v, dirty, err := migrations.Version(ctx, url)
	if err != nil || v != 1 || dirty {
		t.Fatalf("version = %d dirty = %v, %v; want 1 clean", v, dirty, err)
	}
	if _, err := conn.Exec(ctx, `DROP TABLE audit_log_partitioning`); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, url); err != nil {
		t.Fatalf("Up after the obstacle is gone: %v", err)
	}
}

// loginRole creates a LOGIN role that is a member of group for the test and
// returns url with that user; it is dropped when the test ends (only this
// test's role: the shared group roles are never dropped).
func loginRole(t *testing.T, rawURL, group string) string {
	t.Helper()
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "otelaudit_t_" + hex.EncodeToString(b[:])
	admin := pgtest.Connect(t, pgtest.AdminURL())
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN IN ROLE %s`, name, group)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pgtest.AdminURL())
		if err != nil {
			t.Log(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP ROLE IF EXISTS `+name); err != nil {
			t.Logf("drop role %s: %v", name, err)
		}
	})
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(name)
	return u.String()
}

func TestRolesLeastPrivilege(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, owner := migrated(t)
	old := utcDay(time.Now()).Add(-30 * 24 * time.Hour)
	if _, err := migrations.EnsurePartitionsRange(ctx, owner, old, old.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	insert(t, owner, "audit_log", []uuid.UUID{uuid.New()}, []time.Time{time.Now()})

	writer := newPool(t, loginRole(t, url, "otelaudit_writer"))
	if n := insert(t, writer, "audit_log", []uuid.UUID{uuid.New()}, []time.Time{time.Now()}); n != 1 {
		t.Errorf("writer inserted %d rows, want 1", n)
	}
	if _, err := writer.CopyFrom(ctx, pgx.Identifier{"audit_log"},
		[]string{"request_id", "timestamp", "client_subject", "client_role", "tool_name", "backend_name", "response_status", "latency_ms"},
		pgx.CopyFromRows([][]any{{uuid.New(), time.Now(), "a", "r", "t", "b", "ok", int64(1)}})); err != nil {
		t.Errorf("writer COPY: %v", err)
	}
	if _, err := writer.Exec(ctx, `INSERT INTO audit_log_rejects (request_id, error, payload) VALUES ('x', 'e', '\x00')`); err != nil {
		t.Errorf("writer insert into rejects: %v", err)
	}
	for _, q := range []string{
		`UPDATE audit_log SET tool_name = 'x'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
		`DELETE FROM audit_log_default`,
		`SELECT tool_name FROM audit_log`,
		`UPDATE audit_log_rejects SET error = 'x'`,
		`DELETE FROM audit_log_rejects`,
		`UPDATE audit_log_partitioning SET min_retention = '0'`,
		`DROP TABLE audit_log_p` + old.Format("20060102"),
		`CREATE TABLE sneaky (x int)`,
	} {
		if _, err := writer.Exec(ctx, q); err == nil {
			t.Errorf("writer: %s succeeded", q)
		}
	}
	// Partition maintenance through the SECURITY DEFINER functions.
	far := utcDay(time.Now()).Add(20 * 24 * time.Hour)
	created, err := migrations.EnsurePartitionsRange(ctx, writer, far, far.Add(time.Hour))
	if err != nil || len(created) != 1 {
		t.Errorf("writer ensure = %q, %v", created, err)
	}
	var owns bool
	if err := owner.QueryRow(ctx, `SELECT pg_get_userbyid(relowner) = current_user FROM pg_class WHERE relname = $1`, created[0]).Scan(&owns); err != nil || !owns {
		t.Errorf("partition %s made by the writer is not the owner's: %v", created[0], err)
	}
	// Retention as the writer: refused inside min_retention, allowed beyond.
	dropped, err := migrations.DropPartitions(ctx, writer, old.Add(24*time.Hour))
	if err != nil || len(dropped) != 1 {
		t.Errorf("writer retention of 30-day-old data = %+v, %v", dropped, err)
	}
	if dropped, err := migrations.DropPartitions(ctx, writer, time.Now().Add(-time.Hour)); err == nil || len(dropped) != 0 {
		t.Errorf("writer dropped young partitions %+v, %v", dropped, err)
	} else {
		t.Logf("writer retention inside min_retention: %v", err)
	}

	reader := newPool(t, loginRole(t, url, "otelaudit_reader"))
	var n int
	if err := reader.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 3 {
		t.Errorf("reader count = %d, %v; want 3", n, err)
	}
	if _, err := migrations.Partitions(ctx, reader); err != nil {
		t.Errorf("reader partitions: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name, response_status, latency_ms) VALUES (gen_random_uuid(), now(), 'a','r','t','b','ok',1)`,
		`UPDATE audit_log SET tool_name = 'x'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		if _, err := reader.Exec(ctx, q); err == nil {
			t.Errorf("reader: %s succeeded", q)
		}
	}
	if _, err := migrations.EnsurePartitions(ctx, reader); err == nil {
		t.Error("reader could create partitions")
	}
}

func TestRolesShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Several databases migrated at once create (or find) the same roles.
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		url := pgtest.NewDatabase(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = migrations.Up(ctx, url)
			if errs[i] == nil {
				errs[i] = migrations.Migrate(ctx, url, 1) // down: must not drop the shared roles
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("database %d: %v", i, err)
		}
	}
	conn := pgtest.Connect(t, pgtest.AdminURL())
	var roles int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname IN ('otelaudit_writer', 'otelaudit_reader')`).Scan(&roles); err != nil || roles != 2 {
		t.Errorf("roles = %d, %v; want both", roles, err)
	}
}

// TestPartitionsCustomTable runs partition maintenance and retention on a
// renamed table: every function and name follows WithTable.
func TestPartitionsCustomTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt := migrations.WithTable("mcp_audit")
	_, db := migrated(t, opt)
	old := utcDay(time.Now()).Add(-30 * 24 * time.Hour)
	created, err := migrations.EnsurePartitionsRange(ctx, db, old, old.Add(time.Hour), opt)
	if err != nil || len(created) != 1 || created[0] != "mcp_audit_p"+old.Format("20060102") {
		t.Fatalf("ensure = %q, %v", created, err)
	}
	insert(t, db, "mcp_audit", []uuid.UUID{uuid.New(), uuid.New()}, []time.Time{old.Add(time.Minute), time.Now()})
	dropped, err := migrations.DropPartitions(ctx, db, old.Add(24*time.Hour), opt)
	if err != nil || len(dropped) != 1 || dropped[0].Name != created[0] {
		t.Fatalf("drop = %+v, %v", dropped, err)
	}
	var n, left int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM mcp_audit`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows = %d, %v; want 1", n, err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname LIKE 'mcp\_audit\_gone%'`).Scan(&left); err != nil || left != 0 {
		t.Errorf("detached tables left = %d, %v", left, err)
	}
}
