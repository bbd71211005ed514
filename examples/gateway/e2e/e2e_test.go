// Package e2e tests the example gateway end to end with clients and servers
// nobody in this repository wrote: the official TypeScript MCP SDK client
// (client.mjs) calls the gateway, and @modelcontextprotocol/server-everything
// is a proxied downstream over stdio. Both come from npm, installed with
// `npm ci` from the package-lock.json in this directory when missing.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/examples/gateway/internal/gateway"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

const (
	aliceToken = "e2e-token-alice-000001"
	bobToken   = "e2e-token-bob-00000002"
	// carolToken is read from carolTokenEnv (token_env): the stdio
	// backend must not be able to read it back (get-env).
	carolToken    = "e2e-token-carol-000003"
	carolTokenEnv = "E2E_CAROL_TOKEN"
	// floodRequests unauthenticated requests run beside the sessions.
	floodRequests = 400
	// secret is sent in arguments and must appear nowhere in audit_log.
	secret = "s3cr3t-hunter2-e2e"
)

var npmOnce sync.Once
var npmErr error

// ensureNodeModules installs the npm dependencies from the lockfile when
// they are missing. It skips the test only when node or npm are absent, or
// node is older than the version 20 the TypeScript MCP SDK requires
// (scripts/ensure-tools.sh installs them on a machine without them).
func ensureNodeModules(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (scripts/ensure-tools.sh installs it)")
	}
	if out, err := exec.Command(node, "--version").Output(); err == nil {
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		if major, _, _ := strings.Cut(v, "."); atoi(major) < 20 {
			t.Skipf("node %s is older than the 20 the TypeScript MCP SDK needs", v)
		}
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed")
	}
	dir, err = filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	npmOnce.Do(func() {
		have := true
		for _, p := range []string{"@modelcontextprotocol/sdk/package.json", "@modelcontextprotocol/server-everything/dist/index.js"} {
			if _, err := os.Stat(filepath.Join(dir, "node_modules", p)); err != nil {
				have = false
			}
		}
		if have {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			npmErr = fmt.Errorf("npm ci: %w\n%s", err, out)
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
	return node, dir
}

// plan and result mirror what client.mjs reads and writes.
type call struct {
	Name         string         `json:"name"`
	Arguments    map[string]any `json:"arguments,omitempty"`
	Progress     bool           `json:"progress,omitempty"`
	AbortAfterMS int            `json:"abortAfterMs,omitempty"`
}

type session struct {
	Label     string  `json:"label"`
	Token     *string `json:"token"`
	ListTools bool    `json:"listTools"`
	Calls     []call  `json:"calls"`
}

type rawRequest struct {
	Label string         `json:"label"`
	Body  map[string]any `json:"body"`
}

type flood struct {
	Requests    int      `json:"requests"`
	Concurrency int      `json:"concurrency"`
	Bodies      []string `json:"bodies"`
	Tokens      []string `json:"tokens"`
	SessionID   string   `json:"sessionId"`
}

type plan struct {
	URL      string       `json:"url"`
	Sessions []session    `json:"sessions"`
	Raw      []rawRequest `json:"raw"`
	Flood    *flood       `json:"flood,omitempty"`
}

type callResult struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	IsError bool   `json:"isError"`
	Text    string `json:"text"`
	Error   string `json:"error"`
	Code    *int   `json:"code"`
	// Progress holds the notifications/progress the call received.
	Progress []map[string]any `json:"progress"`
}

type sessionResult struct {
	Label        string                  `json:"label"`
	ConnectError *struct{ Error string } `json:"connectError"`
	Tools        []string                `json:"tools"`
	Calls        []callResult            `json:"calls"`
}

type result struct {
	Sessions []sessionResult `json:"sessions"`
	Raw      []struct {
		Label  string `json:"label"`
		Status int    `json:"status"`
	} `json:"raw"`
	Flood struct {
		Sent      int            `json:"sent"`
		Status401 int            `json:"status401"`
		Other     map[string]int `json:"other"`
	} `json:"flood"`
}

// row is one audit_log row as the test checks it.
type row struct {
	Subject, Role, Tool, Backend, Status string
	TraceID, Whole                       string
	Args                                 map[string]any
	Attrs                                map[string]any
	ErrorMessage                         string
}

func (r row) String() string {
	return fmt.Sprintf("%s/%s %s@%s %s", r.Subject, r.Role, r.Tool, r.Backend, r.Status)
}

func TestTypeScriptClientThroughGatewayToServerEverything(t *testing.T) {
	node, dir := ensureNodeModules(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "")
	dbURL := pgtest.NewDatabase(t)

	cfg := &gateway.Config{
		DatabaseURL: dbURL,
		ServiceName: "otelaudit-e2e",
		CallTimeout: 3 * time.Second,
		Audit:       gateway.AuditConfig{ExportInterval: 100 * time.Millisecond},
		Anonymous:   gateway.AnonymousConfig{Window: 2 * time.Second},
		Clients: []gateway.ClientConfig{
			{Subject: "alice", Role: "admin", Token: aliceToken},
			{Subject: "bob", Role: "analyst", Token: bobToken},
			{Subject: "carol", Role: "admin", TokenEnv: carolTokenEnv},
		},
		Roles: map[string][]string{
			"admin":   {"*"},
			"analyst": {"echo", "add", "everything_echo", "everything_get-sum"},
		},
		Backends: []gateway.BackendConfig{
			{Name: "demo", Type: gateway.BackendBuiltin},
			{
				Name: "everything", Type: gateway.BackendStdio, ToolPrefix: "everything_",
				Command: node,
				Args:    []string{filepath.Join(dir, "node_modules/@modelcontextprotocol/server-everything/dist/index.js"), "stdio"},
			},
		},
	}
	t.Setenv(carolTokenEnv, carolToken)
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := gateway.New(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	if g.Tools()["everything_get-sum"] != "everything" {
		t.Fatalf("server-everything's get-sum is not served as everything_get-sum; tools: %v", g.Tools())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- g.Serve(serveCtx, ln) }()

	alice, bob, bad := aliceToken, bobToken, "e2e-token-nobody-knows-this"
	p := plan{
		URL: "http://" + ln.Addr().String() + "/mcp",
		Sessions: []session{
			{Label: "alice", Token: &alice, ListTools: true, Calls: []call{
				{Name: "echo", Arguments: map[string]any{"text": "hello", "password": secret}},
				{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}},
				{Name: "everything_echo", Arguments: map[string]any{"message": "via stdio"}},
				{Name: "everything_get-sum", Arguments: map[string]any{"a": 20, "b": 22}},
				{Name: "fail", Arguments: map[string]any{"message": "boom"}},
				{Name: "sleep", Arguments: map[string]any{"ms": 50}},
				{Name: "no_such_tool"},
				// Progress through the proxy: every notification.
				{Name: "everything_trigger-long-running-operation", Arguments: map[string]any{"duration": 1, "steps": 4}, Progress: true},
				// Cancelled by the caller (AbortController). The abort waits
				// 1.5 s (call_timeout is 3 s): notifications/cancelled is a
				// POST of its own, and one that overtakes its call (under
				// load) cancels nothing.
				{Name: "sleep", Arguments: map[string]any{"ms": 8000}, AbortAfterMS: 1500},
				// Past call_timeout (3 s), proxied.
				{Name: "everything_trigger-long-running-operation", Arguments: map[string]any{"duration": 6, "steps": 2}},
				// The stdio backend's environment.
				{Name: "everything_get-env"},
			}},
			{Label: "bob", Token: &bob, ListTools: true, Calls: []call{
				{Name: "echo", Arguments: map[string]any{"text": "bob here"}},
				{Name: "everything_get-sum", Arguments: map[string]any{"a": 1, "b": 1}},
				{Name: "sleep", Arguments: map[string]any{"ms": 10}},
				{Name: "everything_get-env"},
			}},
			{Label: "no token", Token: nil, Calls: []call{{Name: "echo"}}},
			{Label: "unknown token", Token: &bad, Calls: []call{{Name: "echo"}}},
		},
		Raw: []rawRequest{{Label: "tools/call without token", Body: map[string]any{
			"jsonrpc": "2.0", "id": 7, "method": "tools/call",
			"params": map[string]any{"name": "echo", "arguments": map[string]any{"text": "let me in", "password": secret}},
		}}},
		// Anonymous requests of every shape a client controls, beside the
		// sessions: long tool names and ids, the secret in arguments, a
		// long session id, no token and a wrong one.
		Flood: &flood{
			Requests: floodRequests, Concurrency: 16,
			Tokens:    []string{"", "e2e-flood-token-wrong-0001"},
			SessionID: strings.Repeat("S", 30_000),
			Bodies: []string{
				`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + strings.Repeat("T", 3000) + secret + `","arguments":{}}}`,
				`{"jsonrpc":"2.0","id":{"nested":["` + secret + `"]},"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `","blob":"` + strings.Repeat("x", 60_000) + `"}}}`,
				`{"jsonrpc":"2.0","id":"` + strings.Repeat("I", 4000) + `","method":"initialize","params":{}}`,
				"not json at all",
			},
		},
	}
	res := runClient(t, ctx, node, dir, p)

	stop()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if err := g.Close(ctx); err != nil {
		t.Fatalf("close gateway (flush audit records): %v", err)
	}

	checkClientView(t, res)
	rows := readRows(t, ctx, dbURL)
	checkRows(t, rows, res)
}

// runClient runs client.mjs with p.
func runClient(t *testing.T, ctx context.Context, node, dir string, p plan) result {
	t.Helper()
	in, _ := json.Marshal(p)
	cmd := exec.CommandContext(ctx, node, "client.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client.mjs: %v\nstderr:\n%s", err, stderr.String())
	}
	var res result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("client.mjs output: %v\n%s", err, stdout.String())
	}
	t.Logf("client.mjs output:\n%s", stdout.String())
	return res
}

// checkClientView checks what the TypeScript client saw.
func checkClientView(t *testing.T, res result) {
	t.Helper()
	if len(res.Sessions) != 4 || len(res.Raw) != 1 {
		t.Fatalf("client ran %d sessions and %d raw requests, want 4 and 1", len(res.Sessions), len(res.Raw))
	}
	a, b := res.Sessions[0], res.Sessions[1]
	for _, s := range []sessionResult{a, b} {
		if s.ConnectError != nil {
			t.Fatalf("%s could not connect: %s", s.Label, s.ConnectError.Error)
		}
	}
	if !slices.Contains(a.Tools, "everything_get-env") || !slices.Contains(a.Tools, "sleep") {
		t.Errorf("alice (admin) should see every tool, saw %v", a.Tools)
	}
	got := slices.Sorted(slices.Values(b.Tools))
	if want := []string{"add", "echo", "everything_echo", "everything_get-sum"}; !slices.Equal(got, want) {
		t.Errorf("bob (analyst) sees %v, want %v", got, want)
	}
	want := []struct {
		ok   bool
		text string
	}{{true, "hello"}, {true, "3"}, {true, "via stdio"}, {true, "42"}, {false, "boom"}, {true, "slept 50 ms"}, {false, "no_such_tool"},
		{true, "Long running operation completed"}, {false, "abort"}, {false, "timed out"}, {true, "PATH"}}
	for i, w := range want {
		c := a.Calls[i]
		if c.OK != w.ok || !strings.Contains(c.Text+c.Error, w.text) {
			t.Errorf("alice %s: ok=%v text=%q error=%q, want ok=%v and %q", c.Name, c.OK, c.Text, c.Error, w.ok, w.text)
		}
	}
	if p := a.Calls[7].Progress; len(p) != 4 || p[3]["progress"] != float64(4) || p[3]["total"] != float64(4) {
		t.Errorf("progress through the proxy: got %v, want 4 notifications ending at 4/4", p)
	}
	if c := a.Calls[9]; c.Code == nil || *c.Code != gateway.CodeRequestTimeout {
		t.Errorf("timed-out call: code %v (%s), want %d", c.Code, c.Error, gateway.CodeRequestTimeout)
	}
	env := a.Calls[10].Text
	for _, s := range []string{aliceToken, bobToken, carolToken, carolTokenEnv, "OTELAUDIT_DATABASE_URL"} {
		if strings.Contains(env, s) {
			t.Errorf("the stdio backend read %q from its environment (get-env):\n%s", s, env)
		}
	}
	if res.Flood.Status401 != floodRequests {
		t.Errorf("flood: %d of %d requests got 401 (%v)", res.Flood.Status401, floodRequests, res.Flood.Other)
	}
	for i, c := range b.Calls {
		denied := i >= 2
		if denied != (c.Code != nil && *c.Code == gateway.CodeForbidden) || c.OK == denied {
			t.Errorf("bob %s: ok=%v code=%v error=%q, want denied=%v", c.Name, c.OK, c.Code, c.Error, denied)
		}
	}
	for _, s := range res.Sessions[2:] {
		if s.ConnectError == nil {
			t.Errorf("%s: connected without a valid token", s.Label)
		}
	}
	if res.Raw[0].Status != 401 {
		t.Errorf("tools/call without token: HTTP %d, want 401", res.Raw[0].Status)
	}
}

// readRows returns every audit_log row in call order.
func readRows(t *testing.T, ctx context.Context, dbURL string) []row {
	t.Helper()
	conn := pgtest.Connect(t, dbURL)
	rs, err := conn.Query(ctx, `
		SELECT client_subject, client_role, tool_name, backend_name, response_status,
		       coalesce(trace_id, ''), coalesce(request_args, 'null'::jsonb), coalesce(error_message, ''),
		       coalesce(attributes, 'null'::jsonb), row_to_json(a)::text
		FROM audit_log a ORDER BY timestamp, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var rows []row
	for rs.Next() {
		var r row
		var args, attrs any
		if err := rs.Scan(&r.Subject, &r.Role, &r.Tool, &r.Backend, &r.Status, &r.TraceID, &args, &r.ErrorMessage, &attrs, &r.Whole); err != nil {
			t.Fatal(err)
		}
		r.Args, _ = args.(map[string]any)
		r.Attrs, _ = attrs.(map[string]any)
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

var traceIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkRows checks that each call made is exactly one row.
func checkRows(t *testing.T, rows []row, res result) {
	t.Helper()
	var authed, anon []row
	traces := map[string]bool{}
	for _, r := range rows {
		if strings.Contains(r.Whole, secret) {
			t.Errorf("row %s holds the secret: %s", r, r.Whole)
		}
		if !traceIDRE.MatchString(r.TraceID) || r.TraceID == strings.Repeat("0", 32) {
			t.Errorf("row %s: trace id %q", r, r.TraceID)
		} else if traces[r.TraceID] {
			t.Errorf("row %s: trace id %s shared with another row", r, r.TraceID)
		}
		traces[r.TraceID] = true
		if strings.Contains(r.Whole, "otelaudit.mapping.issues") || strings.Contains(r.Whole, "otelaudit.invalid") {
			t.Errorf("row %s was not mapped cleanly: %s", r, r.Whole)
		}
		if r.Subject == gateway.AnonymousSubject {
			if r.Role != gateway.NoRole {
				t.Errorf("row %s: anonymous with role %q", r, r.Role)
			}
			anon = append(anon, r)
		} else {
			authed = append(authed, r)
		}
	}
	want := []string{
		"alice/admin echo@demo ok",
		"alice/admin add@demo ok",
		"alice/admin everything_echo@everything ok",
		"alice/admin everything_get-sum@everything ok",
		"alice/admin fail@demo error",
		"alice/admin sleep@demo ok",
		"alice/admin no_such_tool@gateway error",
		"alice/admin everything_trigger-long-running-operation@everything ok",
		"alice/admin sleep@demo cancelled",
		"alice/admin everything_trigger-long-running-operation@everything timeout",
		"alice/admin everything_get-env@everything ok",
		"bob/analyst echo@demo ok",
		"bob/analyst everything_get-sum@everything ok",
		"bob/analyst sleep@demo denied",
		"bob/analyst everything_get-env@everything denied",
	}
	var got []string
	for _, r := range authed {
		got = append(got, r.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("authenticated rows:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	if len(authed) > 0 {
		if pw, _ := authed[0].Args["password"].(string); pw != "[REDACTED]" {
			t.Errorf("alice echo: password stored as %q, want [REDACTED]", pw)
		}
	}

	// Two failed connects (initialize without a valid token), the raw
	// tools/call and the flood: aggregated per client address and reason,
	// their counts add up to every refused request, and each row is small.
	var counted int
	for _, r := range anon {
		// What the row stands for is in its attributes; request_args
		// stay empty (no argument of the client's is stored).
		n, _ := r.Attrs[string(otelaudit.AggregateCountKey)].(float64)
		counted += int(n)
		if n < 1 {
			t.Errorf("anonymous row %s: %s %v", r, otelaudit.AggregateCountKey, r.Attrs[string(otelaudit.AggregateCountKey)])
		}
		for _, k := range []attribute.Key{otelaudit.AggregateFirstTimeKey, otelaudit.AggregateLastTimeKey, otelaudit.ClientAddressKey} {
			if v, _ := r.Attrs[string(k)].(string); v == "" {
				t.Errorf("anonymous row %s without %s: %.300s", r, k, r.Whole)
			}
		}
		if len(r.Whole) > 2048 {
			t.Errorf("anonymous row of %d bytes: %.300s", len(r.Whole), r.Whole)
		}
		for k := range r.Args {
			t.Errorf("anonymous row stores argument %q of the client's", k)
		}
		if r.Status != "denied" {
			t.Errorf("anonymous row %s", r)
		}
	}
	if want := 3 + res.Flood.Status401; counted != want {
		t.Errorf("anonymous rows count %d refused requests, want %d", counted, want)
	}
	// One client address, two reasons, windows of 2 s: a handful of rows
	// for 400 requests.
	if len(anon) == 0 || len(anon) > 40 {
		t.Errorf("%d anonymous rows for %d refused requests", len(anon), counted)
	}
	t.Logf("%d authenticated rows; %d anonymous rows for %d refused requests", len(authed), len(anon), counted)
	for _, r := range authed {
		if strings.Contains(r.ErrorMessage, "\n") {
			t.Errorf("row %s: error message with a line break: %q", r, r.ErrorMessage)
		}
	}
	if t.Failed() {
		for _, r := range rows {
			t.Log(r.Whole)
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
