package exporter_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// pipeline is an Auditor wired to an exporter, as a gateway wires it.
type pipeline struct {
	exp  *exporter.Exporter
	proc sdklog.Processor
	lp   *sdklog.LoggerProvider
	aud  *instrumentation.Auditor
}

func newPipeline(t *testing.T, url string, opts ...exporter.Option) *pipeline {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exp, err := exporter.New(ctx, append([]exporter.Option{exporter.WithDatabaseURL(url)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{exp: exp, proc: exporter.NewProcessor(exp)}
	p.lp = sdklog.NewLoggerProvider(sdklog.WithProcessor(p.proc))
	p.aud = instrumentation.New(instrumentation.WithLoggerProvider(p.lp), instrumentation.WithTracerProvider(noop.NewTracerProvider()))
	t.Cleanup(func() { _ = p.lp.Shutdown(context.Background()) })
	return p
}

// call records one call with a known request id.
func (p *pipeline) call(id uuid.UUID) time.Duration {
	start := time.Now()
	p.aud.Record(context.Background(), instrumentation.Call{
		RequestID: id, Subject: "alice", Role: "admin", Tool: "search", Backend: "docs",
		Args: map[string]any{"q": "report", "limit": 10, "password": "hunter2"}, Latency: 3 * time.Millisecond,
	})
	return time.Since(start)
}

// drain flushes the processor and waits until the spool is empty.
func (p *pipeline) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.lp.ForceFlush(ctx); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	for {
		st := p.exp.Stats()
		if st.Replayed == st.Spooled {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("spool not drained: %+v", st)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exactlyOnce checks that audit_log holds each id once and nothing else.
func exactlyOnce(t *testing.T, url string, ids []uuid.UUID) {
	t.Helper()
	conn := pgtest.Connect(t, url)
	rows, err := conn.Query(context.Background(), `SELECT request_id FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[uuid.UUID]int, len(ids))
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	missing, dup := 0, 0
	for _, id := range ids {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
		delete(seen, id)
	}
	if missing > 0 || dup > 0 || len(seen) > 0 {
		t.Errorf("%d calls: %d missing, %d duplicated, %d unknown rows", len(ids), missing, dup, len(seen))
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// load records calls at rate per second until stop is closed, and returns
// the ids and the latency of each Record.
func load(p *pipeline, rate int, stop <-chan struct{}) ([]uuid.UUID, []time.Duration) {
	const tick = 5 * time.Millisecond
	perTick := rate * int(tick) / int(time.Second)
	var ids []uuid.UUID
	var lat []time.Duration
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return ids, lat
		case <-t.C:
		}
		for range perTick {
			id := uuid.Must(uuid.NewV7())
			lat = append(lat, p.call(id))
			ids = append(ids, id)
		}
	}
}

// TestOutage stops PostgreSQL for 30 s while 2,000 calls/s flow through the
// Auditor. The spool carries the outage: afterwards every call is exactly
// one row, nothing was dropped, Health stayed nil, and Record never waited
// for I/O. It logs Record's latency before, during and after the outage.
func TestOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage")
	}
	// Not parallel: the latency it measures should not be the other load
	// tests' CPU contention.
	cluster := pgtest.StartCluster(t)
	p := newPipeline(t, cluster.URL(), exporter.WithSpool(t.TempDir(), 1<<30))

	var (
		mu      sync.Mutex
		phase   = "before"
		byPhase = map[string][]time.Duration{}
		ids     []uuid.UUID
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		const tick = 5 * time.Millisecond
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			mu.Lock()
			ph := phase
			mu.Unlock()
			for range 10 { // 10 calls per 5 ms: 2,000 calls/s
				id := uuid.Must(uuid.NewV7())
				d := p.call(id)
				mu.Lock()
				byPhase[ph] = append(byPhase[ph], d)
				ids = append(ids, id)
				mu.Unlock()
			}
		}
	}()
	setPhase := func(s string) { mu.Lock(); phase = s; mu.Unlock() }

	time.Sleep(5 * time.Second)
	setPhase("outage")
	cluster.Stop()
	outageStart := time.Now()
	deadline := time.After(30 * time.Second)
	sawUnhealthy := false
	for waiting := true; waiting; {
		select {
		case <-deadline:
			waiting = false
		case <-time.After(500 * time.Millisecond):
			// With a spool that has room, the pipeline stays healthy.
			if err := p.exp.Health(context.Background()); err != nil {
				sawUnhealthy = true
			}
		}
	}
	spooled := p.exp.Stats().Spooled
	cluster.Start()
	setPhase("after")
	outage := time.Since(outageStart)
	time.Sleep(5 * time.Second)
	close(stop)
	<-done
	p.drain(t)

	st := p.exp.Stats()
	dropped := p.proc.(interface{ Dropped() int64 }).Dropped()
	t.Logf("outage %.1fs, %d calls; spooled %d rows during the outage; stats %+v; processor dropped %d", outage.Seconds(), len(ids), spooled, st, dropped)
	for _, ph := range []string{"before", "outage", "after"} {
		d := byPhase[ph]
		t.Logf("Record latency %-6s n=%d p50=%v p99=%v max=%v", ph, len(d), percentile(d, 0.5), percentile(d, 0.99), percentile(d, 1))
	}
	if spooled == 0 {
		t.Error("nothing was spooled during the outage")
	}
	if sawUnhealthy {
		t.Error("Health reported an error although the spool had room")
	}
	if st.Dropped != 0 || dropped != 0 {
		t.Errorf("dropped: exporter %d, processor %d", st.Dropped, dropped)
	}
	exactlyOnce(t, cluster.URL(), ids)

	// Latency: the figures are logged above, and the 100 µs bar is measured
	// by `make test-outage` and recorded in BENCHMARKS.md. Here the bound is
	// generous on purpose: a Record that waits for the database, the network
	// or the disk (a connect attempt, the retry budget, an fsync) takes
	// milliseconds at its median and tens of milliseconds at p99, while a
	// busy machine only stretches the tail of a memory operation.
	p50, p99 := percentile(byPhase["outage"], 0.5), percentile(byPhase["outage"], 0.99)
	if p50 > 2*time.Millisecond || p99 > 50*time.Millisecond {
		t.Errorf("Record during the outage: p50 %v, p99 %v; want p50 <= 2ms, p99 <= 50ms (a call that blocks on I/O)", p50, p99)
	}
}

// interrupted counts the COPYs that failed on the way, with no answer from
// PostgreSQL: the proof that a cut hit a write while it ran.
type interrupted struct{ n atomic.Int64 }

func (c *interrupted) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (c *interrupted) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *interrupted) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return ctx
}

func (c *interrupted) TraceCopyFromEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceCopyFromEndData) {
	c.count(d.Err)
}

func (c *interrupted) count(err error) {
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) {
		c.n.Add(1)
	}
}

// TestConnectionsCutMidBatch cuts every connection between the exporter and
// PostgreSQL again and again under load: no call is lost or duplicated, and
// at least one write was cut while it ran.
func TestConnectionsCutMidBatch(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	proxy := pgtest.NewProxy(t, "127.0.0.1:5432")
	pc, err := pgxpool.ParseConfig(proxy.URL(url))
	if err != nil {
		t.Fatal(err)
	}
	cut := &interrupted{}
	pc.ConnConfig.Tracer = cut
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p := newPipeline(t, "", exporter.WithPool(pool), exporter.WithSpool(t.TempDir(), 1<<30))

	stop := make(chan struct{})
	var cuts atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
				cuts.Add(int64(proxy.CutAll()))
			}
		}
	}()
	var ids []uuid.UUID
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		ids, _ = load(p, 2000, stop)
	}()
	// Load for at least 8 s, and until a write has been cut (at most 60 s).
	start := time.Now()
	for time.Since(start) < 8*time.Second || cut.n.Load() == 0 && time.Since(start) < time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	<-loadDone
	p.drain(t)
	st := p.exp.Stats()
	t.Logf("%d calls, %d connections cut, %d writes interrupted; stats %+v", len(ids), cuts.Load(), cut.n.Load(), st)
	if cut.n.Load() == 0 {
		t.Error("no write was interrupted: the test tested nothing")
	}
	if st.Dropped != 0 {
		t.Errorf("dropped %d", st.Dropped)
	}
	exactlyOnce(t, url, ids)
}

// TestSpoolFullDropsAreCountedExactly fills a small spool while PostgreSQL
// is down: every batch is either spooled (and lands later) or dropped and
// counted, nothing else.
func TestSpoolFullDropsAreCountedExactly(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	exp, err := exporter.New(context.Background(), exporter.WithDatabaseURL(cluster.URL()),
		exporter.WithSpool(t.TempDir(), 256<<10), exporter.WithRetry(exporter.RetryConfig{Enabled: true,
			InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	cluster.Stop()

	var ids []uuid.UUID
	var spooledIDs []uuid.UUID
	var failed int
	for b := range 40 {
		batch := make([]sdklog.Record, 50)
		batchIDs := make([]uuid.UUID, 50)
		for i := range batch {
			batchIDs[i] = uuid.Must(uuid.NewV7())
			batch[i] = record(benchAttrs(batchIDs[i], i)...)
		}
		ids = append(ids, batchIDs...)
		if err := exp.Export(context.Background(), batch); err != nil {
			failed += len(batch)
			if b == 0 {
				t.Fatalf("first batch not spooled: %v", err)
			}
		} else {
			spooledIDs = append(spooledIDs, batchIDs...)
		}
	}
	st := exp.Stats()
	if st.Spooled+st.Dropped != int64(len(ids)) || st.Dropped != int64(failed) || st.Dropped == 0 {
		t.Fatalf("spooled %d + dropped %d != %d calls (Export reported %d dropped)", st.Spooled, st.Dropped, len(ids), failed)
	}
	if err := exp.Health(context.Background()); err == nil {
		t.Error("Health = nil with PostgreSQL down and the spool full")
	}
	cluster.Start()
	deadline := time.Now().Add(time.Minute)
	for exp.Stats().Replayed < st.Spooled && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	exactlyOnce(t, cluster.URL(), spooledIDs)
	if err := exp.Health(context.Background()); err != nil {
		t.Errorf("Health after recovery: %v", err)
	}
	t.Logf("%d calls: %d spooled and replayed, %d dropped and counted", len(ids), st.Spooled, st.Dropped)
}

// TestFailClosed: with PostgreSQL down and no spool, calls are refused
// before they reach the backend; once PostgreSQL is back they are served and
// audited again, and the refusals are recorded as denied.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	exp, err := exporter.New(context.Background(), exporter.WithDatabaseURL(cluster.URL()),
		exporter.WithRetry(exporter.RetryConfig{Enabled: true, InitialInterval: 10 * time.Millisecond,
			MaxInterval: 50 * time.Millisecond, MaxElapsedTime: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(exporter.NewProcessor(exp, sdklog.WithExportInterval(20*time.Millisecond))))
	defer lp.Shutdown(context.Background())
	aud := instrumentation.New(instrumentation.WithLoggerProvider(lp), instrumentation.WithFailClosed(exp),
		instrumentation.WithTracerProvider(noop.NewTracerProvider()))
	var backendCalls atomic.Int64
	handler := aud.Wrap(func(ctx context.Context, req instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
		backendCalls.Add(1)
		return instrumentation.ToolResult{Value: "ok"}, nil
	})
	call := func() error {
		_, err := handler(instrumentation.ContextWithIdentity(context.Background(), "bob", "dev"), instrumentation.ToolRequest{Tool: "echo", Backend: "demo"})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("healthy call: %v", err)
	}
	if err := lp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	cluster.Stop()
	// The pipeline learns PostgreSQL is gone from the next export.
	if err := call(); err != nil {
		t.Fatalf("call before the failure is known: %v", err)
	}
	_ = lp.ForceFlush(context.Background())
	if err := exp.Health(context.Background()); err == nil {
		t.Fatal("Health = nil with PostgreSQL down and no spool")
	}
	served := backendCalls.Load()
	refused := 0
	for range 5 {
		if err := call(); err == nil {
			t.Fatal("call served while the audit pipeline is down")
		} else if err.Error() != instrumentation.ErrAuditUnavailable.Error() {
			t.Fatalf("refusal error = %v", err)
		}
		refused++
	}
	if backendCalls.Load() != served {
		t.Fatal("a refused call reached the backend")
	}
	if d := exp.Stats().Dropped; d != 1 {
		t.Errorf("exporter dropped %d records, want 1 (the call made before the outage was known)", d)
	}

	cluster.Start()
	deadline := time.Now().Add(30 * time.Second)
	for exp.Health(context.Background()) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := call(); err != nil {
		t.Fatalf("call after recovery: %v", err)
	}
	// The refusals are emitted once the pipeline is healthy again.
	conn := pgtest.Connect(t, cluster.URL())
	var ok, denied int
	for time.Now().Before(deadline) {
		_ = lp.ForceFlush(context.Background())
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE response_status = 'ok'),
			count(*) FILTER (WHERE response_status = 'denied' AND attributes->>'error.type' = 'audit_unavailable') FROM audit_log`).Scan(&ok, &denied); err != nil {
			t.Fatal(err)
		}
		if denied == refused && ok == 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok != 2 || denied != refused {
		t.Errorf("rows: %d ok (want 2: before and after the outage), %d denied (want %d)", ok, denied, refused)
	}
}
