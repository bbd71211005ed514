package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/verify"
)

// collect keeps clones of the records emitted, to hand them to Export in
// batches of the test's choosing.
type collect struct{ records []sdklog.Record }

func (c *collect) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *collect) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *collect) Shutdown(context.Context) error                         { return nil }
func (c *collect) ForceFlush(context.Context) error                       { return nil }

var callSeq atomic.Int64 // records may be made by several goroutines

// records returns n audit records with varied content: unicode, escapes,
// numbers, nested arguments, errors and empty values.
func records(n int) []sdklog.Record { return recordsAt(n, time.Now()) }

// recordsAt is records with timestamps just before at.
func recordsAt(n int, at time.Time) []sdklog.Record {
	var c collect
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(&c))
	l := lp.Logger("trail")
	for range n {
		i := int(callSeq.Add(1))
		status := otelaudit.StatusOK
		attrs := []attribute.KeyValue{
			otelaudit.RequestIDKey.String(uuid.Must(uuid.NewV7()).String()),
			otelaudit.UserIDKey.String(fmt.Sprintf("user-%d@exämple.com", i%7)),
			otelaudit.UserRolesKey.StringSlice([]string{"analyst", "admin"}[:1+i%2]),
			otelaudit.ToolNameKey.String(fmt.Sprintf("tool_%d", i%5)),
			otelaudit.BackendNameKey.String("backend \"quoted\" \\ 中文"),
			otelaudit.ToolCallArgumentsKey.String(fmt.Sprintf(`{"query":"q%d \u00e9\n😀","limit":%d,"ratio":%d.50,"big":123456789012345678901234567890,"nested":{"b":[1,{"c":null}],"a":true},"empty":""}`, i, i, i)),
			otelaudit.LatencyMSKey.Int64(int64(i * 3)),
			otelaudit.MCPMethodNameKey.String(otelaudit.MethodToolsCall),
			otelaudit.MCPSessionIDKey.String(fmt.Sprintf("session-%d", i%3)),
		}
		if i%4 == 0 {
			status = otelaudit.StatusError
			attrs = append(attrs, otelaudit.ErrorMessageKey.String(fmt.Sprintf("backend said: \"no\" (%d)", i)), otelaudit.ErrorTypeKey.String("tool_error"))
		}
		attrs = append(attrs, otelaudit.ResponseStatusKey.String(string(status)))
		var r log.Record
		r.SetEventName(otelaudit.EventName)
		r.SetTimestamp(at.Add(-time.Duration(n-i%n) * time.Millisecond))
		r.AddAttributes(attrs...)
		l.Emit(context.Background(), r)
	}
	return c.records
}

// trail is a sealed, signed, anchored audit trail written through the
// real exporter: stream A (batches of 20, 20, 20) then, after a restart,
// stream B (batches of 20 and a last one of 10). base is a copy of the
// database after A only; final after B.
type trail struct {
	base, final string // database names (templates)
	anchor      string
	pub         ed25519.PublicKey
	priv        ed25519.PrivateKey
}

var shared *trail

func buildTrail(t *testing.T) *trail {
	t.Helper()
	if shared != nil {
		return shared
	}
	ctx := context.Background()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "otelaudit-trail-")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trail{anchor: filepath.Join(dir, "checkpoints.jsonl"), pub: pub, priv: priv}
	url, drop, err := pgtest.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = drop // the templates live until the test binary ends (see TestMain)
	tr.final = dbName(url)
	writeStream := func(sizes ...int) {
		exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url), exporter.WithSigningKey(priv),
			exporter.WithAnchorFile(tr.anchor), exporter.WithCheckpointInterval(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range sizes {
			if err := exp.Export(ctx, records(n)); err != nil {
				t.Fatal(err)
			}
		}
		if err := exp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	writeStream(20, 20, 20)
	tr.base = copyDatabase(t, tr.final, false)
	writeStream(20, 10)
	cleanups = append(cleanups, drop, func() error { return dropDatabase(tr.base) }, func() error { return os.RemoveAll(dir) })
	shared = tr
	return tr
}

var cleanups []func() error

func TestMain(m *testing.M) {
	if url := os.Getenv("OTELAUDIT_VERIFY_CHILD"); url != "" {
		childWriter(url, os.Getenv("OTELAUDIT_VERIFY_ANCHOR"))
		return
	}
	code := m.Run()
	for _, c := range cleanups {
		_ = c()
	}
	os.Exit(code)
}

func dbName(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}

// copyDatabase makes a fresh copy of the database named from and returns
// its name; with cleanup, the copy is dropped when the test ends.
func copyDatabase(t *testing.T, from string, cleanup bool) string {
	t.Helper()
	ctx := context.Background()
	admin := pgtest.Connect(t, pgtest.AdminURL())
	name := fmt.Sprintf("%s_c%d", from, time.Now().UnixNano()%1e9)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{from}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if cleanup {
		t.Cleanup(func() { _ = dropDatabase(name) })
	}
	return name
}

func dropDatabase(name string) error {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// tamper runs sql on a fresh copy of the database named db as the
// superuser, with the append-only triggers bypassed (session_replication_role
// = replica, which only a superuser may set: that is what an attacker with
// the database's keys does), and returns the copy's URL.
func tamper(t *testing.T, db string, sql ...string) string {
	t.Helper()
	name := copyDatabase(t, db, true)
	url := pgtest.WithDatabase(pgtest.AdminURL(), name)
	conn := pgtest.Connect(t, url)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	for _, s := range sql {
		tag, err := conn.Exec(ctx, s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if tag.RowsAffected() == 0 && !strings.HasPrefix(s, "SET") {
			t.Fatalf("%s: changed nothing: the test would prove nothing", s)
		}
	}
	return url
}

func run(t *testing.T, url string, opts ...verify.Option) *verify.Report {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx) // at once: the database may be copied next
	rep, err := verify.Run(ctx, conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// caught asserts that verify found tampering and that its first finding is
// of kind and names what match says (row id, seal).
func caught(t *testing.T, rep *verify.Report, kind string, match func(verify.Finding) bool) {
	t.Helper()
	if rep.Intact() {
		t.Fatalf("verify found nothing; want %s", kind)
	}
	f := rep.First()
	t.Logf("first finding: %s", f)
	if f.Kind != kind || (match != nil && !match(*f)) {
		for _, f := range rep.Findings {
			t.Logf("finding: %s", f)
		}
		t.Fatalf("first finding %s, want kind %s naming the damaged row or seal", f, kind)
	}
}

// rowAt returns id, request_id, seal stream and seq of the n-th row by id.
func rowAt(t *testing.T, db string, n int) (id int64, req uuid.UUID, stream uuid.UUID, seq int64) {
	t.Helper()
	queryTemplate(t, db, func(conn *pgx.Conn) error {
		return conn.QueryRow(context.Background(), `SELECT id, request_id, seal_stream, seal_seq FROM audit_log ORDER BY id OFFSET $1 LIMIT 1`, n).Scan(&id, &req, &stream, &seq)
	})
	return
}

// queryTemplate runs f on a connection to a template database and closes it
// at once (a template with a connection cannot be copied).
func queryTemplate(t *testing.T, db string, f func(*pgx.Conn) error) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.WithDatabase(pgtest.AdminURL(), db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := f(conn); err != nil {
		t.Fatal(err)
	}
}

func integrityOpts(tr *trail) []verify.Option {
	return []verify.Option{verify.WithPublicKey(tr.pub), verify.WithAnchorFile(tr.anchor)}
}
