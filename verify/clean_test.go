package verify_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
	"github.com/sentinel-gateway/otelaudit/verify"
)

// Trails that went through trouble without anyone tampering verify clean.

func intact(t *testing.T, url string, opts ...verify.Option) *verify.Report {
	t.Helper()
	rep := run(t, url, opts...)
	if !rep.Intact() {
		for _, f := range rep.Findings {
			t.Errorf("finding: %s", f)
		}
		t.FailNow()
	}
	return rep
}

func TestTwoWritersAtOnceVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	anchor := t.TempDir() + "/a.jsonl"
	var wg sync.WaitGroup
	for range 2 {
		exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url), exporter.WithAnchorFile(anchor))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for range 10 {
				if err := exp.Export(ctx, records(30)); err != nil {
					t.Error(err)
				}
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rep := intact(t, url, verify.WithAnchorFile(anchor))
	if rep.Rows != 600 || len(rep.Streams) != 2 || rep.AnchorEntries != 2 {
		t.Fatalf("%d rows, %d streams, %d anchor entries; want 600, 2, 2", rep.Rows, len(rep.Streams), rep.AnchorEntries)
	}
	for _, s := range rep.Streams {
		if s.State != verify.StateIntact || s.Seals != 11 {
			t.Errorf("stream %+v: want intact with 10 batch seals and a close", s)
		}
	}
}

// TestSpoolOutageAndReplaysVerify: PostgreSQL refuses connections, batches
// go to the spool, come back and are replayed; some batches are exported
// twice. Every row once, every seal checks out.
func TestSpoolOutageAndReplaysVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewMigratedDatabase(t)
	proxy := pgtest.NewProxy(t, "127.0.0.1:5432")
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(proxy.URL(url)), exporter.WithMigrate(false),
		exporter.WithSpool(t.TempDir(), 1<<28))
	if err != nil {
		t.Fatal(err)
	}
	again := records(20)
	for i := range 6 {
		if i == 2 {
			proxy.SetRefuse(true)
			proxy.CutAll()
		}
		if i == 4 {
			proxy.SetRefuse(false)
		}
		if err := exp.Export(ctx, records(20)); err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
		if err := exp.Export(ctx, again); err != nil { // a retried batch
			t.Fatalf("export again %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for exp.Stats().SpoolBacklog > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := exp.Stats()
	if st.SpoolBacklog > 0 || st.Spooled == 0 || st.Replayed == 0 {
		t.Fatalf("stats %+v: want batches spooled and all replayed", st)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rep := intact(t, url)
	if rep.Rows != 140 {
		t.Fatalf("%d rows, want 140 (7 distinct batches of 20)", rep.Rows)
	}
	t.Logf("%d rows, %d seals, spooled %d, replayed %d, duplicates %d", rep.Rows, rep.Seals, st.Spooled, st.Replayed, st.Duplicates)
}

// TestRetentionInTheMiddleVerifies drops an old partition (rows 10 days
// old, some sealed together with today's rows): the trail still verifies,
// and a deletion retention did not make is still caught.
func TestRetentionInTheMiddleVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, pool := pgtest.NewMigratedPool(t)
	old := time.Now().Add(-10 * 24 * time.Hour)
	if _, err := migrations.EnsurePartitionsRange(ctx, pool, old.Add(-24*time.Hour), old.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	exp, err := exporter.New(ctx, exporter.WithPool(pool), exporter.WithMigrate(false))
	if err != nil {
		t.Fatal(err)
	}
	mixed := append(recordsAt(10, old), records(10)...)
	for _, b := range [][]sdklog.Record{recordsAt(20, old), mixed, records(20), recordsAt(5, old), records(20)} {
		if err := exp.Export(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	intact(t, url)
	dropped, err := migrations.DropPartitions(ctx, pool, time.Now().Add(-5*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if len(dropped) == 0 || left != 50 {
		t.Fatalf("dropped %v, %d rows left; want the old partition gone and 50 rows left", dropped, left)
	}
	rep := intact(t, url)
	if rep.RetainedSeals != 3 {
		t.Errorf("retained seals = %d, want 3 (two old batches, one mixed)", rep.RetainedSeals)
	}
	// A row deleted from a batch retention did not touch is still caught.
	pool.Close()
	tampered := tamper(t, dbName(url), `DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)`)
	caught(t, run(t, tampered), "row_count", nil)
}

// TestKilledWriterIsUnclosedNotTampered runs a writer in a child process,
// SIGKILLs it mid-stream, and expects verify to report the stream as
// unclosed (a warning), not as tampering.
func TestKilledWriterIsUnclosedNotTampered(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	anchor := t.TempDir() + "/a.jsonl"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OTELAUDIT_VERIFY_CHILD="+url, "OTELAUDIT_VERIFY_ANCHOR="+anchor)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "wrote 5") {
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	rep := intact(t, url, verify.WithAnchorFile(anchor))
	if len(rep.Streams) != 1 || rep.Streams[0].State != verify.StateUnclosed || rep.Rows < 50 {
		t.Fatalf("streams %+v, %d rows; want one unclosed stream with at least 50 rows", rep.Streams, rep.Rows)
	}
	if len(rep.Warnings) == 0 || rep.Warnings[0].Kind != "stream_unclosed" {
		t.Fatalf("warnings %v, want stream_unclosed", rep.Warnings)
	}
	t.Logf("warning: %s", rep.Warnings[0])
}

// childWriter is the killed writer: it exports batches of 10 until killed,
// checkpointing every 50 ms.
func childWriter(url, anchor string) {
	ctx := context.Background()
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(url), exporter.WithAnchorFile(anchor),
		exporter.WithCheckpointInterval(50*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := 1; ; i++ {
		if err := exp.Export(ctx, records(10)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if i == 5 {
			time.Sleep(200 * time.Millisecond) // let a checkpoint happen
		}
		fmt.Printf("wrote %d\n", i)
	}
}
