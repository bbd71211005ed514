package exporter_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// crashSpace makes the child's request ids predictable: call i has
// uuid.NewSHA1(crashSpace, i), so the parent can check which calls landed.
var crashSpace = uuid.MustParse("0b8a3c4d-2e1f-4a5b-9c6d-7e8f90a1b2c3")

func crashID(i int) uuid.UUID { return uuid.NewSHA1(crashSpace, []byte(strconv.Itoa(i))) }

// TestCrashChild is the process TestSIGKILLWithSpool kills. It does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	url, dir := os.Getenv("OTELAUDIT_CRASH_URL"), os.Getenv("OTELAUDIT_CRASH_SPOOL")
	if url == "" || dir == "" {
		t.Skip("helper process for TestSIGKILLWithSpool")
	}
	p := newPipeline(t, url, exporter.WithSpool(dir, 1<<30))
	fmt.Println("ready")
	// Wait until the parent has stopped PostgreSQL.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	for i := 0; ; {
		<-tick.C
		for range 10 { // 2,000 calls/s
			p.call(crashID(i))
			i++
		}
		if i%200 == 0 {
			fmt.Printf("progress emitted=%d spooled=%d\n", i, p.exp.Stats().Spooled)
		}
	}
}

// TestSIGKILLWithSpool kills a process with SIGKILL while its spool holds
// batches; a new exporter on the same spool directory replays them: every
// spooled row lands once, and what was lost is only what had not reached the
// spool yet (in the processor's memory).
func TestSIGKILLWithSpool(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "OTELAUDIT_CRASH_URL="+cluster.URL(), "OTELAUDIT_CRASH_SPOOL="+dir)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("child exited: %v", lines.Err())
		}
		return lines.Text()
	}
	for next() != "ready" {
	}
	cluster.Stop()
	fmt.Fprintln(stdin, "go")

	var emitted, spooled int
	for spooled < 6000 {
		line := next()
		if _, err := fmt.Sscanf(line, "progress emitted=%d spooled=%d", &emitted, &spooled); err != nil {
			continue
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// A new process (here: a new exporter) on the same spool directory.
	cluster.Start()
	p := newPipeline(t, cluster.URL(), exporter.WithSpool(dir, 1<<30))
	conn := pgtest.Connect(t, cluster.URL())
	waitFor(t, "the spool to drain", func() bool { return p.exp.Stats().SpoolBacklog == 0 })
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, rows)
	for i := range ids {
		ids[i] = crashID(i)
	}
	// The rows are exactly calls 0..rows-1: batches reach the spool in
	// order, so what landed has no hole and no duplicate.
	exactlyOnce(t, cluster.URL(), ids)
	if rows < spooled {
		t.Errorf("%d rows after replay, but the child had spooled %d before the kill", rows, spooled)
	}
	st := p.exp.Stats()
	t.Logf("at SIGKILL: %d calls emitted, %d rows spooled (last report); replayed %d rows; %d calls were only in memory (processor queue and the batch being spooled)",
		emitted, spooled, st.Replayed, emitted-rows)
	if lost := emitted - rows; lost > 2048+512+200 {
		t.Errorf("%d calls lost at the kill; the bound is the queue (2048) plus one batch (512)", emitted-rows)
	}
}
