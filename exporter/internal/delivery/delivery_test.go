package delivery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/spool"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

var (
	errDown      = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused") // no SQLSTATE: transient
	errPermanent = errors.New("relation \"audit_log\" does not exist")
)

func retryable(err error) bool { return !errors.Is(err, errPermanent) }

// fakeWriter stores rows by request id, idempotently, unless fail says why
// not.
type fakeWriter struct {
	mu     sync.Mutex
	stored map[uuid.UUID]int
	fail   atomic.Pointer[error]
	calls  atomic.Int64
}

func newFakeWriter() *fakeWriter { return &fakeWriter{stored: map[uuid.UUID]int{}} }

func (w *fakeWriter) failWith(err error) {
	if err == nil {
		w.fail.Store(nil)
		return
	}
	w.fail.Store(&err)
}

func (w *fakeWriter) Write(ctx context.Context, rows []auditrow.Row) (pgwriter.Result, error) {
	w.calls.Add(1)
	if e := w.fail.Load(); e != nil {
		return pgwriter.Result{}, *e
	}
	if err := ctx.Err(); err != nil {
		return pgwriter.Result{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var r pgwriter.Result
	for _, row := range rows {
		if w.stored[row.RequestID] > 0 {
			r.Duplicates++
			continue
		}
		w.stored[row.RequestID]++
		r.Inserted++
	}
	return r, nil
}

func (w *fakeWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.stored)
}

// fakeSpool is an in-memory spool whose Append fails while fail is set.
type fakeSpool struct {
	mu      sync.Mutex
	batches [][]byte
	max     int // batches; 0: unbounded
	fail    atomic.Pointer[error]
	notify  chan struct{}
}

func newFakeSpool() *fakeSpool { return &fakeSpool{notify: make(chan struct{}, 1)} }

func (s *fakeSpool) failWith(err error) {
	if err == nil {
		s.fail.Store(nil)
		return
	}
	s.fail.Store(&err)
}

func (s *fakeSpool) AppendRecords(b []byte, _ int) error {
	if e := s.fail.Load(); e != nil {
		return fmt.Errorf("spool: append to 00000000000000000001.seg: %w", *e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 && len(s.batches) >= s.max {
		return spool.ErrFull
	}
	s.batches = append(s.batches, append([]byte(nil), b...))
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *fakeSpool) Oldest() (spool.Batch, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.batches) == 0 {
		return spool.Batch{}, false, nil
	}
	return spool.Batch{Data: s.batches[0]}, true, nil
}

func (s *fakeSpool) Ack(spool.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = s.batches[1:]
	return nil
}

func (s *fakeSpool) Len() int                  { s.mu.Lock(); defer s.mu.Unlock(); return len(s.batches) }
func (s *fakeSpool) Bytes() int64              { return int64(s.Len()) }
func (s *fakeSpool) Appended() <-chan struct{} { return s.notify }

type handled struct {
	mu   sync.Mutex
	errs []error
}

func (h *handled) Handle(err error) { h.mu.Lock(); h.errs = append(h.errs, err); h.mu.Unlock() }
func (h *handled) len() int         { h.mu.Lock(); defer h.mu.Unlock(); return len(h.errs) }

// catchHandled installs a global error handler for the test; the tests that
// call it do not run in parallel.
func catchHandled(t *testing.T) *handled {
	h := &handled{}
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(h)
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	return h
}

type fixture struct {
	d      *Delivery
	w      *fakeWriter
	sp     *fakeSpool
	reader *sdkmetric.ManualReader
	probe  atomic.Pointer[error]
}

func newFixture(t *testing.T, withSpool bool, mod ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{w: newFakeWriter(), reader: sdkmetric.NewManualReader()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
	cfg := Config{
		Writer:    f.w,
		Retryable: retryable,
		Probe: func(context.Context) error {
			if e := f.probe.Load(); e != nil {
				return *e
			}
			return nil
		},
		Retry:          Retry{Enabled: true, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxElapsedTime: 20 * time.Millisecond},
		ProbeInterval:  5 * time.Millisecond,
		ReportInterval: time.Hour,
		Meter:          mp.Meter("test"),
	}
	if withSpool {
		f.sp = newFakeSpool()
		cfg.Spool = f.sp
	}
	for _, m := range mod {
		m(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return f
}

// down makes both the writer and the probe fail with err (nil: healthy).
func (f *fixture) down(err error) {
	f.w.failWith(err)
	if err == nil {
		f.probe.Store(nil)
	} else {
		f.probe.Store(&err)
	}
}

func rows(n int) []auditrow.Row {
	r := make([]auditrow.Row, n)
	for i := range r {
		r[i] = auditrow.Row{RequestID: uuid.Must(uuid.NewV7()), Timestamp: time.Now(), ToolName: "t", ResponseStatus: "ok"}
	}
	return r
}

// eventually waits for cond, failing the test after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// metricSum returns the sum of the named counter's points whose attribute
// key has value val ("" matches every point).
func (f *fixture) metricSum(t *testing.T, name, key, val string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if v, ok := p.Attributes.Value(attribute.Key(key)); key == "" || ok && v.AsString() == val {
					n += p.Value
				}
			}
		}
	}
	return n
}

func TestWritesAndCountsOnce(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	b := rows(10)
	if err := f.d.Deliver(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Deliver(ctx, b); err != nil { // a replay of the same batch
		t.Fatal(err)
	}
	st := f.d.Stats()
	if st.Written != 10 || st.Duplicates != 10 || f.w.count() != 10 {
		t.Errorf("stats %+v, stored %d; want 10 written once, 10 duplicates", st, f.w.count())
	}
	if got := f.metricSum(t, "otelaudit.exporter.rows.written", "", ""); got != st.Written {
		t.Errorf("metric rows.written = %d, Stats.Written = %d", got, st.Written)
	}
	if got := f.metricSum(t, "otelaudit.exporter.rows.duplicate", "", ""); got != st.Duplicates {
		t.Errorf("metric rows.duplicate = %d, Stats.Duplicates = %d", got, st.Duplicates)
	}
	if err := f.d.Health(); err != nil {
		t.Errorf("Health = %v", err)
	}
}

func TestConcurrencySplitsAndWritesEveryRowOnce(t *testing.T) {
	f := newFixture(t, false, func(c *Config) { c.Concurrency = 3 })
	if err := f.d.Deliver(context.Background(), rows(1000)); err != nil {
		t.Fatal(err)
	}
	if c := f.w.calls.Load(); c != 3 {
		t.Errorf("%d writes, want 3 parts", c)
	}
	if f.w.count() != 1000 || f.d.Stats().Written != 1000 {
		t.Errorf("stored %d, stats %+v", f.w.count(), f.d.Stats())
	}
}

// Without a spool: PostgreSQL away loses the batch (counted) and Health
// fails until the probe finds PostgreSQL back.
func TestNoSpoolDownDropsAndFailsHealthUntilBack(t *testing.T) {
	f := newFixture(t, false)
	f.down(errDown)
	err := f.d.Deliver(context.Background(), rows(7))
	if err == nil {
		t.Fatal("Deliver = nil while PostgreSQL is down and there is no spool")
	}
	if st := f.d.Stats(); st.Dropped != 7 || st.DroppedByReason[telemetry.ReasonExportFailed] != 7 {
		t.Errorf("stats %+v, want 7 dropped (export_failed)", st)
	}
	if got := f.metricSum(t, telemetry.RecordsDropped.Name, string(telemetry.ReasonKey), telemetry.ReasonExportFailed); got != 7 {
		t.Errorf("metric dropped{export_failed} = %d, want 7", got)
	}
	if err := f.d.Health(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Health = %v, want ErrUnavailable", err)
	}
	f.down(nil)
	eventually(t, "Health to recover", func() bool { return f.d.Health() == nil })
}

// With a spool: the batch is spooled, Health stays nil, the replayer
// writes it once PostgreSQL is back.
func TestSpoolCarriesAnOutage(t *testing.T) {
	f := newFixture(t, true)
	f.down(errDown)
	b := rows(5)
	if err := f.d.Deliver(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Deliver(context.Background(), rows(5)); err != nil { // straight to the spool
		t.Fatal(err)
	}
	if err := f.d.Health(); err != nil {
		t.Errorf("Health = %v with a spool that has room", err)
	}
	if st := f.d.Stats(); st.Spooled != 10 || f.sp.Len() != 2 {
		t.Fatalf("stats %+v, spool %d batches", st, f.sp.Len())
	}
	f.down(nil)
	eventually(t, "replay", func() bool { return f.d.Stats().Replayed == 10 })
	if f.w.count() != 10 || f.sp.Len() != 0 {
		t.Errorf("stored %d, spool %d", f.w.count(), f.sp.Len())
	}
}

// A permanent write error (missing table): Health fails, the error is
// reported (once per interval) and counted; it recovers by itself when the
// table is back, without traffic.
func TestPermanentWriteErrorFailsHealthAndRecovers(t *testing.T) {
	for _, withSpool := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", withSpool), func(t *testing.T) {
			h := catchHandled(t)
			f := newFixture(t, withSpool)
			f.down(errPermanent)
			err := f.d.Deliver(context.Background(), rows(3))
			if withSpool != (err == nil) {
				t.Fatalf("Deliver = %v (spool %v)", err, withSpool)
			}
			if err := f.d.Health(); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Health = %v, want ErrUnavailable", err)
			}
			for range 5 {
				_ = f.d.Deliver(context.Background(), rows(1))
			}
			st := f.d.Stats()
			if st.WriteErrors+st.ReplayErrors == 0 {
				t.Errorf("no write or replay error counted: %+v", st)
			}
			if h.len() == 0 {
				t.Error("nothing reported through otel.Handle")
			}
			if h.len() > 2 {
				t.Errorf("%d reports: not rate-limited", h.len())
			}
			if withSpool {
				if st.Dropped != 0 || st.Spooled != 8 {
					t.Errorf("stats %+v, want every row spooled and none dropped", st)
				}
			} else if st.Dropped != 8 {
				t.Errorf("stats %+v, want 8 dropped", st)
			}
			f.down(nil)
			eventually(t, "Health to recover", func() bool { return f.d.Health() == nil })
			if withSpool {
				eventually(t, "replay", func() bool { return f.w.count() == 8 })
			}
		})
	}
}

// A spool append that fails other than by being full (ENOSPC, EFBIG): Health
// fails while Deliver waits and retries; when the cause goes away the batch
// is spooled and Health recovers; nothing is lost.
func TestSpoolAppendErrorFailsHealthThenRecovers(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EFBIG} {
		t.Run(errno.Error(), func(t *testing.T) {
			catchHandled(t)
			f := newFixture(t, true)
			f.down(errDown)
			f.sp.failWith(&fs.PathError{Op: "write", Path: "seg", Err: errno})
			done := make(chan error, 1)
			go func() { done <- f.d.Deliver(context.Background(), rows(4)) }()
			eventually(t, "Health to fail", func() bool { return errors.Is(f.d.Health(), ErrUnavailable) })
			if err := f.d.Health(); !errors.Is(err, errno) && !containsErrno(err, errno) {
				t.Errorf("Health = %v, want it to name %v", err, errno)
			}
			f.sp.failWith(nil)
			if err := <-done; err != nil {
				t.Fatalf("Deliver = %v", err)
			}
			if err := f.d.Health(); err != nil {
				t.Errorf("Health after the disk recovered = %v", err)
			}
			st := f.d.Stats()
			if st.Spooled != 4 || st.Dropped != 0 || st.SpoolErrors == 0 {
				t.Errorf("stats %+v, want 4 spooled, none dropped, spool errors counted", st)
			}
		})
	}
}

func containsErrno(err error, errno syscall.Errno) bool {
	return err != nil && strings.Contains(err.Error(), errno.Error())
}

// A spool append error that outlasts the Export context drops the batch,
// counted as spool_error.
func TestSpoolAppendErrorUntilDeadlineIsCounted(t *testing.T) {
	catchHandled(t)
	f := newFixture(t, true)
	f.down(errDown)
	f.sp.failWith(syscall.EFBIG)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.d.Deliver(ctx, rows(6)); err == nil {
		t.Fatal("Deliver = nil although the spool never took the batch")
	}
	if st := f.d.Stats(); st.DroppedByReason[telemetry.ReasonSpoolError] != 6 {
		t.Errorf("stats %+v, want 6 dropped (spool_error)", st)
	}
	if !errors.Is(f.d.Health(), ErrUnavailable) {
		t.Error("Health = nil after a failed spool append")
	}
}

// A spool failure outlives the Deliver that met it (its context ended): with
// no more traffic (a fail-closed gateway sends none), Health recovers once
// the spool takes writes again, through the background probe; and once
// PostgreSQL is back with the spool empty.
func TestSpoolFailureRecoversWithoutTraffic(t *testing.T) {
	catchHandled(t)
	for _, cause := range []string{"disk", "postgres"} {
		t.Run(cause, func(t *testing.T) {
			f := newFixture(t, true)
			f.down(errDown)
			f.sp.failWith(syscall.ENOSPC)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if err := f.d.Deliver(ctx, rows(2)); err == nil {
				t.Fatal("Deliver = nil although the spool never took the batch")
			}
			time.Sleep(20 * f.d.cfg.ProbeInterval) // the loop runs; the cause is still there
			if !errors.Is(f.d.Health(), ErrUnavailable) {
				t.Fatal("Health = nil while the spool still fails")
			}
			if cause == "disk" {
				f.sp.failWith(nil)
			} else {
				f.down(nil)
			}
			eventually(t, "Health to recover", func() bool { return f.d.Health() == nil })
			if st := f.d.Stats(); st.Dropped != 2 || st.Spooled != 0 {
				t.Errorf("stats %+v, want the 2 records of the failed Deliver dropped, nothing else", st)
			}
		})
	}
}

// A full spool drops the batch at once (without SpoolWait), counted, Health
// fails until the replayer makes room.
func TestSpoolFullDropsAndRecoversAfterReplay(t *testing.T) {
	f := newFixture(t, true)
	f.sp.max = 1
	f.down(errDown)
	if err := f.d.Deliver(context.Background(), rows(2)); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Deliver(context.Background(), rows(3)); err == nil {
		t.Fatal("Deliver = nil with the spool full")
	}
	if st := f.d.Stats(); st.DroppedByReason[telemetry.ReasonSpoolFull] != 3 || st.Spooled != 2 {
		t.Errorf("stats %+v", st)
	}
	if !errors.Is(f.d.Health(), ErrUnavailable) {
		t.Error("Health = nil with the spool full")
	}
	f.down(nil)
	eventually(t, "Health to recover", func() bool { return f.d.Health() == nil })
	eventually(t, "replay", func() bool { return f.w.count() == 2 })
}

// Records the processor refuses make Health fail while it refuses.
func TestQueueFullFailsHealth(t *testing.T) {
	f := newFixture(t, true)
	var full atomic.Bool
	f.d.SetQueueFull(full.Load)
	full.Store(true)
	if !errors.Is(f.d.Health(), ErrUnavailable) {
		t.Error("Health = nil while the queue is full")
	}
	full.Store(false)
	if err := f.d.Health(); err != nil {
		t.Errorf("Health = %v once the queue has room", err)
	}
}

// A failed replay is counted and reported (rate-limited) and the batch
// stays in the spool.
func TestFailedReplayIsCountedAndKept(t *testing.T) {
	h := catchHandled(t)
	f := newFixture(t, true, func(c *Config) { c.Probe = nil })
	f.w.failWith(errDown)
	if err := f.d.Deliver(context.Background(), rows(2)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replay failures", func() bool { return f.d.Stats().ReplayErrors >= 3 })
	if f.sp.Len() != 1 {
		t.Errorf("spool holds %d batches, want the one that failed to replay", f.sp.Len())
	}
	if n := h.len(); n == 0 || n > 2 {
		t.Errorf("%d reports through otel.Handle, want 1 (rate-limited)", n)
	}
	if got := f.metricSum(t, "otelaudit.exporter.errors", "kind", "replay"); got != f.d.Stats().ReplayErrors && got == 0 {
		t.Errorf("metric errors{replay} = %d", got)
	}
	f.w.failWith(nil)
	eventually(t, "replay", func() bool { return f.w.count() == 2 })
}

// Records the spool reports as corrupt are counted as dropped, once each,
// and reported.
func TestSpoolCorruptRecordsAreCounted(t *testing.T) {
	h := catchHandled(t)
	f := newFixture(t, true)
	f.d.Corrupt(3, spool.ErrCorrupt)
	f.d.Corrupt(2, spool.ErrCorrupt)
	if st := f.d.Stats(); st.DroppedByReason[telemetry.ReasonSpoolCorrupt] != 5 || st.Dropped != 5 {
		t.Errorf("stats %+v, want 5 dropped (spool_corrupt)", st)
	}
	if got := f.metricSum(t, telemetry.RecordsDropped.Name, string(telemetry.ReasonKey), telemetry.ReasonSpoolCorrupt); got != 5 {
		t.Errorf("metric dropped{spool_corrupt} = %d, want 5", got)
	}
	if h.len() != 1 {
		t.Errorf("%d reports, want 1 (rate-limited)", h.len())
	}
}

// Close makes a Deliver waiting for the spool give up, counted as shutdown.
func TestCloseEndsAWaitForTheSpool(t *testing.T) {
	catchHandled(t)
	f := newFixture(t, true, func(c *Config) { c.SpoolWait = true })
	f.sp.max = 1
	f.down(errDown)
	if err := f.d.Deliver(context.Background(), rows(1)); err != nil {
		t.Fatal(err)
	}
	f.probe.Store(&errDown) // keep the replayer from making room
	done := make(chan error, 1)
	go func() { done <- f.d.Deliver(context.Background(), rows(4)) }()
	eventually(t, "Health to fail", func() bool { return f.d.Health() != nil })
	if err := f.d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("Deliver = nil after Close")
	}
	if st := f.d.Stats(); st.DroppedByReason[telemetry.ReasonShutdown] != 4 {
		t.Errorf("stats %+v, want 4 dropped (shutdown)", st)
	}
}
