package exporter_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// Fail-closed covers every way of losing a record: for each cause, a
// gateway in fail-closed mode refuses calls (and audits them as denied once
// the pipeline is back) instead of serving them and losing their records,
// and the pipeline recovers by itself when the cause goes away.

// failClosed is an Auditor in fail-closed mode over an exporter, with a
// wrapped tool handler that counts the calls reaching the backend.
type failClosed struct {
	exp     *exporter.Exporter
	proc    sdklog.Processor
	lp      *sdklog.LoggerProvider
	handler instrumentation.ToolHandler
	backend atomic.Int64
}

func newFailClosed(t *testing.T, url string, opts []exporter.Option, popts ...sdklog.BatchProcessorOption) *failClosed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exp, err := exporter.New(ctx, append([]exporter.Option{exporter.WithDatabaseURL(url)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f := &failClosed{exp: exp}
	f.proc = exporter.NewProcessor(exp, append([]sdklog.BatchProcessorOption{sdklog.WithExportInterval(10 * time.Millisecond)}, popts...)...)
	f.lp = sdklog.NewLoggerProvider(sdklog.WithProcessor(f.proc))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.lp.Shutdown(ctx)
	})
	aud := instrumentation.New(instrumentation.WithLoggerProvider(f.lp), instrumentation.WithFailClosed(exp),
		instrumentation.WithTracerProvider(noop.NewTracerProvider()))
	f.handler = aud.Wrap(func(context.Context, instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
		f.backend.Add(1)
		return instrumentation.ToolResult{Value: "ok"}, nil
	})
	return f
}

func (f *failClosed) call() error {
	_, err := f.handler(instrumentation.ContextWithIdentity(context.Background(), "bob", "dev"),
		instrumentation.ToolRequest{Tool: "echo", Backend: "demo"})
	return err
}

// serve makes n calls that must be served.
func (f *failClosed) serve(t *testing.T, n int) {
	t.Helper()
	for range n {
		if err := f.call(); err != nil {
			t.Fatalf("call refused while the pipeline is healthy: %v (Health: %v)", err, f.exp.Health(context.Background()))
		}
	}
}

// refuse makes n calls that must be refused without reaching the backend.
func (f *failClosed) refuse(t *testing.T, n int) {
	t.Helper()
	before := f.backend.Load()
	for range n {
		if err := f.call(); !errors.Is(err, instrumentation.ErrAuditUnavailable) {
			t.Fatalf("call = %v while the pipeline cannot store records, want ErrAuditUnavailable", err)
		}
	}
	if f.backend.Load() != before {
		t.Fatal("a refused call reached the backend")
	}
}

// waitUnhealthy waits until Health fails and returns its error.
func (f *failClosed) waitUnhealthy(t *testing.T) error {
	t.Helper()
	var err error
	waitFor(t, "Health to fail", func() bool { err = f.exp.Health(context.Background()); return err != nil })
	if !errors.Is(err, exporter.ErrUnavailable) {
		t.Fatalf("Health = %v, want ErrUnavailable", err)
	}
	return err
}

func (f *failClosed) waitHealthy(t *testing.T) {
	t.Helper()
	waitFor(t, "Health to recover by itself", func() bool { return f.exp.Health(context.Background()) == nil })
}

// waitRows makes one call (which lets the Auditor emit the refusals it
// kept while the pipeline was down) and waits until audit_log holds ok rows
// of served calls, that one included, and denied rows of refused ones
// (marked audit_unavailable).
func (f *failClosed) waitRows(t *testing.T, url string, ok, denied int) {
	t.Helper()
	f.serve(t, 1)
	conn := pgtest.Connect(t, url)
	var gotOK, gotDenied int
	waitFor(t, "the served and refused calls' rows", func() bool {
		_ = f.lp.ForceFlush(context.Background())
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE response_status = 'ok'),
			count(*) FILTER (WHERE response_status = 'denied' AND attributes->>'error.type' = 'audit_unavailable') FROM audit_log`).Scan(&gotOK, &gotDenied); err != nil {
			t.Fatal(err)
		}
		return gotOK >= ok+1 && gotDenied >= denied
	})
	if gotOK != ok+1 || gotDenied != denied {
		t.Errorf("rows: %d ok, want %d; %d denied, want %d", gotOK, ok+1, gotDenied, denied)
	}
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Cause 1: the processor's queue is full (the exporter is stuck retrying
// against an unreachable PostgreSQL, without a spool). Health fails before
// any record is refused, so a sequential caller loses none.
func TestFailClosedQueueFull(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	proxy := pgtest.NewProxy(t, "127.0.0.1:5432")
	const queue = 8
	f := newFailClosed(t, proxy.URL(url), []exporter.Option{exporter.WithRetry(exporter.RetryConfig{Enabled: true,
		InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond})}, // no limit but the export timeout
		exporter.WithQueueSize(queue), sdklog.WithExportTimeout(5*time.Minute))
	f.serve(t, 1)
	waitFor(t, "the first row", func() bool { return f.exp.Stats().Written == 1 })

	proxy.SetRefuse(true)
	proxy.CutAll()
	// One batch goes to the stuck exporter, then the queue fills: every call
	// is served while the queue has room, and refused once it has none.
	served := 0
	for f.exp.Health(context.Background()) == nil {
		f.serve(t, 1)
		served++
		if served > 10*queue {
			t.Fatalf("%d calls served and Health still nil", served)
		}
		time.Sleep(2 * time.Millisecond) // let the processor hand a batch to the exporter
	}
	if err := f.waitUnhealthy(t); !strings.Contains(err.Error(), "queue") {
		t.Errorf("Health = %v, want it to name the queue", err)
	}
	f.refuse(t, 5)
	if d := f.proc.(interface{ Dropped() int64 }).Dropped(); d != 0 {
		t.Errorf("processor dropped %d records: calls were served and their records lost", d)
	}

	proxy.SetRefuse(false)
	f.waitHealthy(t)
	f.waitRows(t, url, 1+served, 5)
	if d := f.proc.(interface{ Dropped() int64 }).Dropped(); d != 0 {
		t.Errorf("processor dropped %d records", d)
	}
	if st := f.exp.Stats(); st.Dropped != 0 {
		t.Errorf("exporter dropped %d records", st.Dropped)
	}
}

// Cause 2: writes fail with an error no retry can fix (the audit table is
// gone). Without a spool the record in flight is lost (and counted); with
// one it waits in the spool. Health fails until the table is back.
func TestFailClosedPermanentWriteError(t *testing.T) {
	for _, withSpool := range []bool{false, true} {
		name := "no_spool"
		if withSpool {
			name = "spool"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewDatabase(t)
			var opts []exporter.Option
			if withSpool {
				opts = append(opts, exporter.WithSpool(t.TempDir(), 1<<30))
			}
			f := newFailClosed(t, url, opts)
			f.serve(t, 1)
			waitFor(t, "the first row", func() bool { return f.exp.Stats().Written == 1 })

			conn := pgtest.Connect(t, url)
			if _, err := conn.Exec(context.Background(), `ALTER TABLE audit_log RENAME TO audit_log_away`); err != nil {
				t.Fatal(err)
			}
			f.serve(t, 1) // not known yet: the next write finds out
			if err := f.waitUnhealthy(t); !strings.Contains(err.Error(), "no retry") {
				t.Errorf("Health = %v, want it to name the permanent write failure", err)
			}
			f.refuse(t, 5)
			if withSpool { // Health fails as soon as the write does; the append follows
				waitFor(t, "the record to be spooled", func() bool { return f.exp.Stats().Spooled == 1 })
			}
			st := f.exp.Stats()
			if st.WriteErrors == 0 {
				t.Errorf("write error not counted: %+v", st)
			}
			if withSpool && (st.Dropped != 0 || st.Spooled != 1) {
				t.Errorf("stats %+v, want the record spooled, none dropped", st)
			}
			if !withSpool && st.DroppedByReason[exporter.DropExportFailed] != 1 {
				t.Errorf("stats %+v, want the record in flight dropped and counted (export_failed)", st)
			}

			if _, err := conn.Exec(context.Background(), `ALTER TABLE audit_log_away RENAME TO audit_log`); err != nil {
				t.Fatal(err)
			}
			f.waitHealthy(t)
			ok := 2
			if !withSpool {
				ok = 1
			}
			f.waitRows(t, url, ok, 5)
		})
	}
}

// Cause 3: a spool append fails with EFBIG (the file size limit) while
// PostgreSQL is unreachable. The child process runs under RLIMIT_FSIZE.
func TestFailClosedSpoolAppendFails(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolEFBIGChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "OTELAUDIT_EFBIG_URL="+url, "OTELAUDIT_EFBIG_SPOOL="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestSpoolEFBIGChild") {
		t.Fatal("the child did not run its test")
	}
}

// TestSpoolEFBIGChild is the process of TestFailClosedSpoolAppendFails; it
// does nothing in a normal test run.
func TestSpoolEFBIGChild(t *testing.T) {
	url, dir := os.Getenv("OTELAUDIT_EFBIG_URL"), os.Getenv("OTELAUDIT_EFBIG_SPOOL")
	if url == "" || dir == "" {
		t.Skip("helper process for TestFailClosedSpoolAppendFails")
	}
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails with EFBIG instead of killing the process
	proxy := pgtest.NewProxy(t, "127.0.0.1:5432")
	f := newFailClosed(t, proxy.URL(url), []exporter.Option{exporter.WithSpool(dir, 1<<30)})
	f.serve(t, 1)
	waitFor(t, "the first row", func() bool { return f.exp.Stats().Written == 1 })

	proxy.SetRefuse(true)
	proxy.CutAll()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	// Smaller than one spooled record: every append fails.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 64, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	f.serve(t, 1)
	if err := f.waitUnhealthy(t); !strings.Contains(err.Error(), "file too large") {
		t.Errorf("Health = %v, want it to name EFBIG", err)
	}
	f.refuse(t, 5)
	if st := f.exp.Stats(); st.SpoolErrors == 0 {
		t.Errorf("spool errors not counted: %+v", st)
	}

	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	f.waitHealthy(t) // the waiting batch is spooled; PostgreSQL is still away
	f.serve(t, 1)
	proxy.SetRefuse(false)
	f.waitRows(t, url, 3, 5)
	if st := f.exp.Stats(); st.Dropped != 0 {
		t.Errorf("stats %+v: records lost", st)
	}
}
