package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

const shutdownToken = "shutdown-test-token-0001"

// binDir holds the gateway binary built for the tests.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildGateway builds this command once per test binary.
var buildGateway = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "otelaudit-gateway-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "gateway")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

// TestSIGTERMFlushesInFlightCalls starts the gateway as a real process,
// puts tool calls in flight, sends SIGTERM, and checks that every call
// lands in audit_log: those that finish within shutdown_timeout as ok, those
// still running at the deadline cancelled and recorded as error, with the
// shutdown named in their error message (cancelled is for calls the client
// cancels).
func TestSIGTERMFlushesInFlightCalls(t *testing.T) {
	bin, err := buildGateway()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name            string
		shutdownTimeout string
		sleepMS         int
		wantStatus      string
	}{
		{"calls finish within the deadline", "20s", 1500, "ok"},
		// Cancelled by the gateway, not by the client: error, and the
		// message says why (the shutdown deadline).
		{"calls cancelled at the deadline", "1s", 8000, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t)
			cfgPath := filepath.Join(t.TempDir(), "gateway.yaml")
			cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
database_url: %q
shutdown_timeout: %s
# No periodic export: only the flush at shutdown writes the rows.
audit: {export_interval: 1h, max_batch_size: 4096, max_queue_size: 4096}
clients:
  - {subject: alice, role: admin, token: %s}
roles:
  admin: ["*"]
backends:
  - {name: demo, type: builtin}
`, dbURL, tc.shutdownTimeout, shutdownToken)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "-config", cfgPath)
			cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			addrc := make(chan string, 1)
			var logMu sync.Mutex
			var log strings.Builder
			go func() {
				re := regexp.MustCompile(`msg="gateway listening" addr=(\S+)`)
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					logMu.Lock()
					log.WriteString(sc.Text() + "\n")
					logMu.Unlock()
					if m := re.FindStringSubmatch(sc.Text()); m != nil {
						addrc <- m[1]
					}
				}
				exited <- cmd.Wait()
			}()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				if t.Failed() {
					logMu.Lock()
					t.Logf("gateway log:\n%s", log.String())
					logMu.Unlock()
				}
			})
			var addr string
			select {
			case addr = <-addrc:
			case err := <-exited:
				t.Fatalf("gateway exited before listening: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("gateway did not start listening")
			}
			endpoint := "http://" + addr + "/mcp"

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const sessions, perSession = 4, 3
			var wg sync.WaitGroup
			errs := make(chan error, sessions*perSession)
			for range sessions {
				s := connect(t, ctx, endpoint)
				for range perSession {
					wg.Go(func() {
						res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": tc.sleepMS}})
						switch {
						case tc.wantStatus == "ok" && err != nil:
							errs <- fmt.Errorf("in-flight call failed: %w", err)
						case tc.wantStatus == "ok" && res.IsError:
							errs <- fmt.Errorf("in-flight call: tool error")
						case tc.wantStatus != "ok" && err == nil:
							errs <- fmt.Errorf("call past the deadline succeeded")
						}
					})
				}
			}
			// Wait until every call is running in the gateway.
			waitUntil(t, 30*time.Second, func() bool {
				var h struct {
					Calls int `json:"calls_in_progress"`
				}
				resp, err := http.Get("http://" + addr + "/healthz")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				return json.NewDecoder(resp.Body).Decode(&h) == nil && h.Calls == sessions*perSession
			})
			sent := time.Now()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// The listener closes at once: new connections are refused
			// within moments (not after the calls finish).
			waitUntil(t, 2*time.Second, func() bool {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return true
				}
				c.Close()
				return false
			})
			if time.Since(sent) > time.Second {
				t.Errorf("listener still open %s after SIGTERM", time.Since(sent))
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("gateway exit: %v", err)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("gateway did not exit after SIGTERM")
			}
			t.Logf("gateway exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))

			conn := pgtest.Connect(t, dbURL)
			var total, want int
			err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE tool_name = 'sleep' AND response_status = $1 AND client_subject = 'alice'
				AND ($1 = 'ok' OR error_message LIKE '%gateway shutting down%'))
				FROM audit_log`, tc.wantStatus).Scan(&total, &want)
			if err != nil {
				t.Fatal(err)
			}
			if total != sessions*perSession || want != sessions*perSession {
				t.Errorf("audit_log has %d rows, %d of them alice/sleep/%s; want %d of each", total, want, tc.wantStatus, sessions*perSession)
				var status, msg string
				_ = conn.QueryRow(ctx, `SELECT response_status, coalesce(error_message, '') FROM audit_log LIMIT 1`).Scan(&status, &msg)
				t.Logf("a row: %s %q", status, msg)
			}
		})
	}
}

// waitUntil polls cond every 10 ms until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connect opens a session as alice; it is closed when the test ends.
func connect(t *testing.T, ctx context.Context, endpoint string) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: bearerRT{}}
	c := mcp.NewClient(&mcp.Implementation{Name: "shutdown-test", Version: "1"}, nil)
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type bearerRT struct{}

func (bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+shutdownToken)
	return http.DefaultTransport.RoundTrip(r)
}
