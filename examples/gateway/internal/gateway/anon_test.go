package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
)

// TestAnonymousFloodCostsNoAuthenticatedRow floods the gateway with
// unauthenticated requests of every shape an attacker controls (3 kB tool
// names, 60 kB session ids, object JSON-RPC ids, 60 kB arguments, no token,
// a wrong token, GETs) from 20 client addresses, while a real client makes
// 300 calls, with an audit queue of only 512 records. Every authenticated
// call must be exactly one row; anonymous rows must be bounded in number
// (by the window, the rate limit and the client cap) and in size, and
// their counts must add up to every refused request.
func TestAnonymousFloodCostsNoAuthenticatedRow(t *testing.T) {
	cfg := demoConfig()
	cfg.Audit.MaxQueueSize, cfg.Audit.MaxBatchSize = 512, 256
	cfg.Anonymous = AnonymousConfig{Window: 250 * time.Millisecond, RowsPerSecond: 10, Burst: 5, MaxClients: 8}
	cfg.Server = ServerConfig{MaxConnsPerClient: 64}
	tg := startGateway(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	big := strings.Repeat("t", 3000)
	shapes := []struct {
		method, token, session, body string
	}{
		{"POST", "", "", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + big + `","arguments":{}}}`},
		{"POST", "nope-not-a-token-at-all", strings.Repeat("s", 60_000), `{"jsonrpc":"2.0","id":{"a":[1,2,3]},"method":"tools/call","params":{"name":"echo"}}`},
		{"POST", "", "", `{"jsonrpc":"2.0","id":"` + strings.Repeat("i", 5000) + `","method":"tools/call","params":{"name":"echo","arguments":{"blob":"` + strings.Repeat("x", 60_000) + `","password":"hunter2-flood"}}}`},
		{"POST", "wrong-token-wrong-token", "", `{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}`},
		{"GET", "", "", ""},
		{"POST", "", "", "not json \x00\xff"},
	}
	var sent atomic.Int64
	stopFlood := make(chan struct{})
	var flood sync.WaitGroup
	for w := range 20 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(w+1))}}
		hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
		flood.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopFlood:
					return
				default:
				}
				sh := shapes[(i+w)%len(shapes)]
				var body io.Reader
				if sh.body != "" {
					body = strings.NewReader(sh.body)
				}
				req, _ := http.NewRequestWithContext(ctx, sh.method, tg.base+"/mcp", body)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if sh.token != "" {
					req.Header.Set("Authorization", "Bearer "+sh.token)
				}
				if sh.session != "" {
					req.Header.Set("Mcp-Session-Id", sh.session)
				}
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					sent.Add(1)
				}
			}
		})
	}

	start := time.Now()
	const calls = 300
	s := tg.connect(ctx, testToken, nil)
	var cw sync.WaitGroup
	var failed atomic.Int64
	for i := range calls {
		cw.Go(func() {
			if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": fmt.Sprint(i)}}); err != nil {
				failed.Add(1)
			}
		})
		if i%50 == 49 {
			cw.Wait()
		}
	}
	cw.Wait()
	// Keep flooding for at least 3 s, over several windows.
	time.Sleep(time.Until(start.Add(3 * time.Second)))
	close(stopFlood)
	flood.Wait()
	elapsed := time.Since(start)
	if failed.Load() != 0 {
		t.Errorf("%d of the real client's calls failed", failed.Load())
	}
	stats := tg.g.AnonymousStats()
	tg.finish()

	rows := tg.rows()
	var alice, anon int
	var counted int64
	var biggest int
	for _, r := range rows {
		switch r.Subject {
		case "alice":
			alice++
			if r.Status != "ok" || r.Tool != "echo" {
				t.Errorf("alice row %s %s", r.Tool, r.Status)
			}
		case AnonymousSubject:
			anon++
			biggest = max(biggest, len(r.Whole))
			n, _ := r.Attrs[string(otelaudit.AggregateCountKey)].(float64)
			counted += int64(n)
			if r.Args != nil {
				t.Errorf("anonymous row with request_args %v", r.Args)
			}
			if c, _ := r.Attrs[string(otelaudit.ClientAddressKey)].(string); c == "" {
				t.Errorf("anonymous row without %s: %.300s", otelaudit.ClientAddressKey, r.Whole)
			}
			for _, k := range []attribute.Key{otelaudit.AggregateFirstTimeKey, otelaudit.AggregateLastTimeKey} {
				if v, _ := r.Attrs[string(k)].(string); v == "" {
					t.Errorf("anonymous row without %s: %.300s", k, r.Whole)
				} else if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
					t.Errorf("anonymous row: %s %q: %v", k, v, err)
				}
			}
			if strings.Contains(r.Whole, "hunter2-flood") || strings.Contains(r.Whole, "sssssssss") || strings.Contains(r.Whole, "xxxxxxxx") {
				t.Errorf("anonymous row holds what the client sent: %.300s", r.Whole)
			}
			if _, ok := r.Args["blob"]; ok {
				t.Errorf("anonymous row stored arguments: %.300s", r.Whole)
			}
		default:
			t.Errorf("unexpected row %+v", r)
		}
	}
	if alice != calls {
		t.Errorf("alice: %d rows for %d calls", alice, calls)
	}
	// Per window: at most one row per reason of the overflow, rate-limited
	// rows otherwise; at the end every open aggregate (at most MaxClients)
	// and the overflow rows.
	a := cfg.Anonymous
	windows := math.Ceil(elapsed.Seconds()/a.Window.Seconds()) + 1
	bound := a.Burst + int(math.Ceil(a.RowsPerSecond*elapsed.Seconds())) + int(2*windows) + a.MaxClients + 2
	t.Logf("%d anonymous requests refused (%d seen by the flooders) in %s: %d rows (bound %d), largest %d bytes; %d overflowed, %d unread, %d connections refused; %d alice rows",
		stats.Requests, sent.Load(), elapsed.Round(time.Millisecond), anon, bound, biggest, stats.Overflowed, stats.Unread, stats.ConnsRefused, alice)
	if stats.Requests < 500 {
		t.Errorf("only %d anonymous requests: the flood did not happen", stats.Requests)
	}
	if anon > bound || anon == 0 {
		t.Errorf("%d anonymous rows, want 1..%d", anon, bound)
	}
	if biggest > 2048 {
		t.Errorf("an anonymous row is %d bytes", biggest)
	}
	if counted != stats.Requests {
		t.Errorf("anonymous rows count %d requests, the gateway refused %d", counted, stats.Requests)
	}
}

// TestRefusedBeforeTheToolIsAudited sends authenticated tools/call requests
// the MCP layer refuses before any tool runs: without a session (before
// initialize), with an unknown session, with another caller's session, with
// a Content-Type the transport refuses.
// Each is one denied row of its caller; the client-chosen session id is not
// stored.
func TestRefusedBeforeTheToolIsAudited(t *testing.T) {
	tg := startGateway(t, demoConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bob := tg.connect(ctx, testBobToken, nil)

	post := func(token, session string, id any, contentType ...string) (int, map[string]any) {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
			"params": map[string]any{"name": "echo", "arguments": map[string]any{"text": "early"}}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.base+"/mcp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if len(contentType) > 0 {
			req.Header.Set("Content-Type", contentType[0])
		}
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := post(testToken, "", 11)
	if e, _ := out["error"].(map[string]any); status != http.StatusBadRequest || e["code"] != float64(-32600) {
		t.Errorf("tools/call before initialize: HTTP %d %v, want 400 and JSON-RPC -32600", status, out)
	}
	if status, _ := post(testToken, "no-such-session-id", 12); status != http.StatusNotFound {
		t.Errorf("unknown session: HTTP %d, want 404", status)
	}
	if status, _ := post(testToken, bob.ID(), 13); status != http.StatusForbidden {
		t.Errorf("bob's session: HTTP %d, want 403", status)
	}
	if status, _ := post(testBobToken, bob.ID(), 14, "text/plain"); status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: HTTP %d, want 415", status)
	}
	tg.finish()
	var got []string
	for _, r := range tg.rows() {
		got = append(got, fmt.Sprintf("%s %s %s %s", r.Subject, r.Tool, r.Status, r.ErrorType))
		if strings.Contains(r.Whole, "no-such-session-id") || strings.Contains(r.Whole, bob.ID()) {
			t.Errorf("row stores the client's session id: %s", r.Whole)
		}
	}
	want := []string{
		"alice echo denied session_not_initialized",
		"alice echo denied session_not_found",
		"alice echo denied session_user_mismatch",
		"bob echo denied http_415",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestToolsListFilteredByRole: tools/list shows each caller only what its
// role may call.
func TestToolsListFilteredByRole(t *testing.T) {
	tg := startGateway(t, demoConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		token string
		want  string
	}{{testToken, "add echo fail sleep"}, {testBobToken, "add echo"}} {
		res, err := tg.connect(ctx, c.token, nil).ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		slicesSort(names)
		if got := strings.Join(names, " "); got != c.want {
			t.Errorf("tools/list: %q, want %q", got, c.want)
		}
	}
}
