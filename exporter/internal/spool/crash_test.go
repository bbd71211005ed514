package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	crashDirEnv   = "OTELAUDIT_SPOOL_CRASH_DIR"
	crashStartEnv = "OTELAUDIT_SPOOL_CRASH_START"
	crashSegSize  = 64 << 10
)

// TestCrashHelper is the child process of TestCrashRecovery: it appends
// batches start, start+1, … to the spool as fast as it can, printing
// "app N" after each Append returns, while a replayer goroutine acks them
// more slowly, printing "ack N" after each Ack returns. It runs until killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	start, _ := strconv.ParseUint(os.Getenv(crashStartEnv), 10, 64)
	s, err := Open(dir, 1<<30, WithSegmentSize(crashSegSize))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	go func() {
		for {
			b, ok, err := s.Oldest()
			if err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			if !ok || rand.IntN(3) == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			if len(b.Data) < 8 || !bytes.Equal(b.Data, payload(binary.LittleEndian.Uint64(b.Data), len(b.Data))) {
				fmt.Println("error corrupt batch", b)
				os.Exit(2)
			}
			i := binary.LittleEndian.Uint64(b.Data)
			if err := s.Ack(b); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			fmt.Println("ack", i) // one write(2) on an unbuffered pipe: atomic
		}
	}()
	for i := start; ; i++ {
		if err := s.Append(payload(i, varSize(i))); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("app", i)
	}
}

// TestCrashRecovery kills a process that appends and acks with SIGKILL at a
// random moment, several times over the same directory, and checks that the
// reopened spool replays every batch the child reported appended and not
// acknowledged, in order, intact, and at most one reported-acked batch again.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the helper process")
	}
	dir := t.TempDir()
	var start uint64
	for round := range 4 {
		lastApp, lastAck, sawApp := int64(start)-1, int64(start)-1, false
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashStartEnv+"="+strconv.FormatUint(start, 10))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var childErr string
		first := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				kind, num, _ := strings.Cut(sc.Text(), " ")
				n, err := strconv.ParseInt(num, 10, 64)
				mu.Lock()
				switch {
				case kind == "app" && err == nil:
					lastApp = max(lastApp, n)
					if !sawApp {
						sawApp = true
						close(first)
					}
				case kind == "ack" && err == nil:
					lastAck = max(lastAck, n)
				case kind == "error":
					childErr = sc.Text()
				}
				mu.Unlock()
			}
		}()
		select {
		case <-first:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: child appended nothing", round)
		}
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		<-readDone
		_ = cmd.Wait()
		mu.Lock()
		app, ack, cerr := lastApp, lastAck, childErr
		mu.Unlock()
		if cerr != "" {
			t.Fatalf("round %d: child failed: %s", round, cerr)
		}

		s, err := Open(dir, 1<<30, WithSegmentSize(crashSegSize))
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		st := s.Stats()
		got := indices(t, drain(t, s))
		s.Close()
		if len(got) == 0 {
			// The replayer caught up: fine only if every reported append was
			// acknowledged (the last ack may have gone unreported).
			if app > ack+1 {
				t.Fatalf("round %d: nothing replayed; child reported app %d ack %d", round, app, ack)
			}
			t.Logf("round %d: reported appended ≤%d acked ≤%d; spool empty", round, app, ack)
			start = uint64(max(app, ack)) + 1
			continue
		}
		for k := 1; k < len(got); k++ {
			if got[k] != got[k-1]+1 {
				t.Fatalf("round %d: replay not contiguous at %d: %d after %d", round, k, got[k], got[k-1])
			}
		}
		firstGot, lastGot := int64(got[0]), int64(got[len(got)-1])
		// The first replayed batch follows the last reported ack; one more
		// ack may have completed without being reported.
		if firstGot != ack+1 && firstGot != ack+2 {
			t.Fatalf("round %d: replay starts at %d, last reported ack %d", round, firstGot, ack)
		}
		// Every reported append is there; one more may have completed.
		if lastGot != app && lastGot != app+1 {
			t.Fatalf("round %d: replay ends at %d, last reported append %d", round, lastGot, app)
		}
		if st.CorruptRecords > 1 {
			t.Fatalf("round %d: %d damaged regions, at most one torn tail expected: %+v", round, st.CorruptRecords, st)
		}
		t.Logf("round %d: reported appended ≤%d acked ≤%d; replayed %d..%d (%d batches, %d segments); torn tail bytes %d",
			round, app, ack, firstGot, lastGot, len(got), st.Segments, st.CorruptBytes)
		start = uint64(lastGot) + 1
	}
}
