package pgauditexporter

// Helpers that build the otelcol-audit distribution (through
// collector-config/build.sh, which skips the build while the binary is newer
// than its inputs) and run it with the shipped configurations.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// repoRoot is the otelaudit repository, two levels up from this module.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// collectorBinary returns the otelcol-audit binary, building it once per
// test process when it is missing or stale. OTELCOL_AUDIT_BIN overrides it.
func collectorBinary(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: skipping the tests that build and run otelcol-audit")
	}
	root := repoRoot(tb)
	buildOnce.Do(func() {
		if p := os.Getenv("OTELCOL_AUDIT_BIN"); p != "" {
			buildBin = p
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "collector-config", "build.sh"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("collector-config/build.sh: %v\n%s", err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		buildBin = lines[len(lines)-1]
		fmt.Fprintf(os.Stderr, "otelcol-audit ready in %s (%s)\n", time.Since(start).Round(time.Millisecond), buildBin)
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildBin
}

// freeAddr returns a local address nothing listens on right now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// collectorProcess is otelcol-audit running a shipped configuration
// (collector-config/gateway.yaml unless said otherwise).
type collectorProcess struct {
	tb     testing.TB
	bin    string
	env    []string
	config string // file name in collector-config

	HTTPAddr, GRPCAddr, HealthAddr, MetricsAddr string
	QueueDir                                    string
	// Token is the OTLP bearer token the Collector accepts (the only line
	// of its token file, OTELAUDIT_OTLP_TOKEN_FILE).
	Token string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startCollector runs otelcol-audit with the shipped configuration config
// (a file name in collector-config) on fresh local ports and a fresh queue
// directory, with env, the variables of that configuration, on top of an
// environment without any other OTELAUDIT_* variable.
func startCollector(tb testing.TB, config string, env ...string) *collectorProcess {
	tb.Helper()
	c := &collectorProcess{
		tb:          tb,
		bin:         collectorBinary(tb),
		HTTPAddr:    freeAddr(tb),
		GRPCAddr:    freeAddr(tb),
		HealthAddr:  freeAddr(tb),
		MetricsAddr: freeAddr(tb),
		QueueDir:    filepath.Join(tb.TempDir(), "queue"),
		config:      config,
	}
	_, metricsPort, _ := net.SplitHostPort(c.MetricsAddr)
	c.env = append(cleanEnv(),
		"OTELAUDIT_QUEUE_DIR="+c.QueueDir,
		"OTELAUDIT_OTLP_HTTP_ENDPOINT="+c.HTTPAddr,
		"OTELAUDIT_OTLP_GRPC_ENDPOINT="+c.GRPCAddr,
		"OTELAUDIT_HEALTH_ENDPOINT="+c.HealthAddr,
		"OTELAUDIT_METRICS_HOST=127.0.0.1",
		"OTELAUDIT_METRICS_PORT="+metricsPort,
	)
	c.env = append(c.env, env...)
	tb.Cleanup(func() {
		c.Stop()
		if tb.Failed() {
			tb.Logf("otelcol-audit (%s) output:\n%s", config, c.logs.String())
		}
	})
	c.Start()
	return c
}

// writeToken writes a token file holding token and returns its path.
func writeToken(tb testing.TB, token string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token+" written by the e2e tests\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// newGateway starts otelcol-audit with gateway.yaml against databaseURL,
// accepting one OTLP bearer token (Token).
func newGateway(tb testing.TB, databaseURL string) *collectorProcess {
	tb.Helper()
	token := "test-token-" + rand.Text()
	c := startCollector(tb, "gateway.yaml",
		"OTELAUDIT_DATABASE_URL="+databaseURL,
		"OTELAUDIT_OTLP_TOKEN_FILE="+writeToken(tb, token),
		"OTELAUDIT_TRACES_ENDPOINT="+freeAddr(tb),
		"OTELAUDIT_TRACES_INSECURE=true",
	)
	c.Token = token
	return c
}

// newAgent starts otelcol-audit with agent.yaml, forwarding to the gateway
// tier gw with the bearer token token.
func newAgent(tb testing.TB, gw *collectorProcess, token string) *collectorProcess {
	tb.Helper()
	return startCollector(tb, "agent.yaml",
		"OTELAUDIT_GATEWAY_ENDPOINT=http://"+gw.HTTPAddr,
		"OTELAUDIT_GATEWAY_TOKEN_FILE="+writeToken(tb, token),
	)
}

// AuthHeader is the OTLP header that authenticates a client to the
// Collector: Authorization: Bearer <Token>.
func (c *collectorProcess) AuthHeader() map[string]string {
	return map[string]string{"Authorization": "Bearer " + c.Token}
}

// Start runs the Collector and waits until its health check reports ready.
func (c *collectorProcess) Start() {
	c.tb.Helper()
	cmd := exec.Command(c.bin, "--config", filepath.Join(repoRoot(c.tb), "collector-config", c.config))
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = &c.logs, &c.logs
	if err := cmd.Start(); err != nil {
		c.tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-done:
			c.tb.Fatalf("otelcol-audit exited on start:\n%s", c.logs.String())
		default:
		}
		resp, err := client.Get("http://" + c.HealthAddr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("otelcol-audit not healthy after 60s:\n%s", c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to die.
func (c *collectorProcess) Kill() { c.signal(syscall.SIGKILL, 10*time.Second) }

// Stop shuts the Collector down gracefully (SIGTERM), killing it after 30s.
func (c *collectorProcess) Stop() { c.signal(syscall.SIGTERM, 30*time.Second) }

func (c *collectorProcess) signal(sig syscall.Signal, wait time.Duration) {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Metric returns the sum of the Prometheus samples of name on the
// Collector's own metrics endpoint.
func (c *collectorProcess) Metric(name string) (float64, error) {
	resp, err := http.Get("http://" + c.MetricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(body.String(), "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum, nil
}
