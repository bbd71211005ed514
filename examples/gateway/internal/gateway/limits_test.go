package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSlowBodyClientsAreCut opens connections that send their headers and
// 10 bytes of a 1,000-byte body, then stall: with a valid token (cut by
// server.read_timeout) and without one (cut by
// server.unauthenticated_timeout). Every connection must be closed within
// its limit plus a second, while a real client's calls go through.
func TestSlowBodyClientsAreCut(t *testing.T) {
	cfg := demoConfig()
	cfg.Server = ServerConfig{ReadTimeout: time.Second, UnauthenticatedTimeout: 500 * time.Millisecond}
	tg := startGateway(t, cfg)
	addr := strings.TrimPrefix(tg.base, "http://")

	const each = 25
	type result struct {
		authed bool
		took   time.Duration
		err    error
	}
	results := make(chan result, 2*each)
	var wg sync.WaitGroup
	for i := range 2 * each {
		authed := i%2 == 0
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{authed, 0, err}
				return
			}
			defer c.Close()
			auth := ""
			if authed {
				auth = "Authorization: Bearer " + testToken + "\r\n"
			}
			start := time.Now()
			fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"", auth)
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			// Read until the server closes the connection.
			_, err = io.Copy(io.Discard, c)
			results <- result{authed, time.Since(start), err}
		})
	}
	// A real client meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := tg.connect(ctx, testToken, nil)
	for range 5 {
		if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
			t.Errorf("real client: %v", err)
		}
	}
	wg.Wait()
	close(results)
	var worst [2]time.Duration
	for r := range results {
		limit := cfg.Server.UnauthenticatedTimeout
		if r.authed {
			limit = cfg.Server.ReadTimeout
		}
		if r.err != nil {
			t.Errorf("authed=%v: connection not closed by the server: %v (after %s)", r.authed, r.err, r.took)
		} else if r.took > limit+time.Second {
			t.Errorf("authed=%v: closed after %s, limit %s", r.authed, r.took, limit)
		}
		i := 0
		if r.authed {
			i = 1
		}
		worst[i] = max(worst[i], r.took)
	}
	t.Logf("slowest close: unauthenticated %s (limit %s), authenticated %s (limit %s)",
		worst[0].Round(time.Millisecond), cfg.Server.UnauthenticatedTimeout, worst[1].Round(time.Millisecond), cfg.Server.ReadTimeout)
}

// TestLongCallOutlivesReadTimeout checks that the read timeout bounds
// reading the request only: a call that takes longer than it still answers.
func TestLongCallOutlivesReadTimeout(t *testing.T) {
	cfg := demoConfig()
	cfg.Server = ServerConfig{ReadTimeout: 300 * time.Millisecond}
	tg := startGateway(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := tg.connect(ctx, testToken, nil)
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": 1200}})
	if err != nil || res.IsError {
		t.Fatalf("sleep 1200 ms with a 300 ms read timeout: %v %+v", err, res)
	}
}

// TestHeaderLimit sends a 600,000-byte Mcp-Session-Id: refused with 431
// before any handler runs, so it leaves no row.
func TestHeaderLimit(t *testing.T) {
	tg := startGateway(t, demoConfig())
	req, _ := http.NewRequest(http.MethodPost, tg.base+"/mcp", strings.NewReader(`{}`))
	req.Header.Set("Mcp-Session-Id", strings.Repeat("s", 600_000))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("600 kB header: HTTP %d, want 431", resp.StatusCode)
	}
	tg.finish()
	if rows := tg.rows(); len(rows) != 0 {
		t.Errorf("%d rows, want none", len(rows))
	}
}

// TestConnectionCapPerClient holds server.max_conns_per_client idle
// connections open: the next one from the same address is closed at once,
// one from another address is served.
func TestConnectionCapPerClient(t *testing.T) {
	cfg := demoConfig()
	cfg.Server = ServerConfig{MaxConnsPerClient: 4, ReadHeaderTimeout: time.Minute}
	tg := startGateway(t, cfg)
	addr := strings.TrimPrefix(tg.base, "http://")
	for range cfg.Server.MaxConnsPerClient {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// The server accepts asynchronously: wait until it counts the four.
	waitFor(t, 5*time.Second, func() bool {
		cl := tg.g.conns.Load() // set when Serve starts
		if cl == nil {
			return false
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return cl.open["127.0.0.1"] == cfg.Server.MaxConnsPerClient
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Errorf("connection over the cap was served: %q", line)
	}
	if got := tg.g.AnonymousStats().ConnsRefused; got != 1 {
		t.Errorf("ConnsRefused = %d, want 1", got)
	}
	// Another client address (127.0.0.2 is loopback too on Linux).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := hc.Get(tg.base + "/healthz")
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("another address: HTTP %d", resp.StatusCode)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleAndHeaderTimeouts: a keep-alive connection idle past
// server.idle_timeout, and one that never finishes its headers within
// server.read_header_timeout, are closed by the server.
func TestIdleAndHeaderTimeouts(t *testing.T) {
	cfg := demoConfig()
	cfg.Server = ServerConfig{IdleTimeout: 400 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond}
	tg := startGateway(t, cfg)
	addr := strings.TrimPrefix(tg.base, "http://")
	for _, c := range []struct {
		name  string
		send  string
		limit time.Duration
	}{
		{"idle", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", cfg.Server.IdleTimeout},
		{"slow headers", "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthoriz", cfg.Server.ReadHeaderTimeout},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprint(conn, c.send)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(io.Discard, conn) // the response (if any), then EOF when the server closes
		took := time.Since(start)
		if err != nil {
			t.Errorf("%s: not closed by the server: %v", c.name, err)
		} else if took > c.limit+time.Second {
			t.Errorf("%s: closed after %s, limit %s", c.name, took, c.limit)
		}
		t.Logf("%s: closed after %s (limit %s)", c.name, took.Round(time.Millisecond), c.limit)
	}
}
