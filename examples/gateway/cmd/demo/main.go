// Command demo is the one-command tour of otelaudit: it starts the example
// gateway in-process against PostgreSQL, drives a scripted set of tool calls
// through a real MCP client (allowed, denied, failing, slow, timed out, one
// with secrets in its arguments, one without a token), stops the gateway so
// every audit record is flushed, and prints the resulting audit_log rows.
//
//	scripts/ensure-postgres.sh && go run ./examples/gateway/cmd/demo
//
// It writes to the database otelaudit_demo on 127.0.0.1:5432 (created when
// missing) unless OTELAUDIT_DATABASE_URL names another one.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.yaml.in/yaml/v3"

	"github.com/sentinel-gateway/otelaudit/examples/gateway/internal/gateway"
)

// DefaultDatabaseURL is the demo's database unless OTELAUDIT_DATABASE_URL
// is set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/otelaudit_demo?sslmode=disable"

// serviceName marks the demo's rows.
const serviceName = "otelaudit-demo"

func main() {
	configPath := flag.String("config", "examples/gateway/gateway.yaml", "gateway configuration the demo starts from")
	verbose := flag.Bool("v", false, "show the gateway's own log")
	flag.Parse()
	if err := run(*configPath, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(configPath string, verbose bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The demo shows rows in PostgreSQL: keep the records out of OTLP.
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"} {
		if os.Getenv(k) != "" {
			fmt.Printf("note: ignoring %s; the demo writes straight to PostgreSQL\n", k)
			os.Unsetenv(k)
		}
	}
	dbURL := os.Getenv("OTELAUDIT_DATABASE_URL")
	if dbURL == "" {
		dbURL = DefaultDatabaseURL
	}
	if created, err := gateway.EnsureDatabase(ctx, dbURL); err != nil {
		return err
	} else if created {
		fmt.Printf("created the database of %s\n", gateway.RedactURL(dbURL))
	}

	// A downstream MCP server for the gateway to proxy over streamable HTTP.
	inventory, err := startInventory()
	if err != nil {
		return err
	}
	defer inventory.Close()

	// The loaded configuration keeps only the tokens' hashes: the demo,
	// acting as the clients, reads the tokens from the file itself
	// (before Load, which unsets token_env variables).
	tokens, err := fileTokens(configPath)
	if err != nil {
		return err
	}
	cfg, err := gateway.Load(configPath)
	if err != nil {
		return err
	}
	cfg.DatabaseURL = dbURL
	cfg.ServiceName = serviceName
	cfg.CallTimeout = 2 * time.Second // so that the long sleep times out
	// A spool of its own (mode 0700, this user's), so the demo runs next to
	// a gateway.
	spool, err := os.MkdirTemp("", "otelaudit-demo-spool-")
	if err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	defer os.RemoveAll(spool)
	cfg.Audit.SpoolDir = spool
	cfg.Backends = append(cfg.Backends, gateway.BackendConfig{
		Name: "inventory", Type: gateway.BackendHTTP, URL: inventory.URL, ToolPrefix: "inventory_",
	})
	cfg.Roles["analyst"] = append(cfg.Roles["analyst"], "inventory_*")
	if err := cfg.Finish(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if tokens["alice"] == "" || tokens["bob"] == "" {
		return errors.New("the demo expects clients alice (admin) and bob (analyst) in " + configPath)
	}

	since, err := dbNow(ctx, dbURL)
	if err != nil {
		return err
	}
	if before := countRows(ctx, dbURL); before > 0 {
		fmt.Printf("%s already holds %d audit rows from earlier runs; only this run's rows are shown below\n", gateway.RedactURL(dbURL), before)
	}

	logger := slog.New(slog.DiscardHandler)
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	fmt.Printf("starting the gateway (audit rows -> %s)\n", gateway.RedactURL(dbURL))
	g, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = g.Close(ctx)
		return fmt.Errorf("listen: %w", err)
	}
	endpoint := "http://" + ln.Addr().String() + "/mcp"
	serveCtx, stopServing := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- g.Serve(serveCtx, ln) }()

	calls, scriptErr := script(ctx, endpoint, tokens)

	fmt.Println("\nstopping the gateway (in-flight calls finish, audit records are flushed)")
	stopServing()
	serveErr := <-served
	closeErr := g.Close(ctx)
	if err := errors.Join(scriptErr, serveErr, closeErr); err != nil {
		return err
	}

	n, err := printRows(ctx, dbURL, since)
	if err != nil {
		return err
	}
	if n != calls {
		return fmt.Errorf("%d calls made but %d audit rows written", calls, n)
	}
	fmt.Printf("\n%d calls, %d audit rows. Query them yourself:\n  psql '%s' -c 'SELECT * FROM audit_log ORDER BY id DESC LIMIT %d'\n", calls, n, gateway.RedactURL(dbURL), n)
	return nil
}

// step is one scripted call.
type step struct {
	who, why string
	tool     string
	args     map[string]any
}

// script drives the scripted calls and returns how many were made.
func script(ctx context.Context, endpoint string, tokens map[string]string) (int, error) {
	alice, err := connect(ctx, endpoint, tokens["alice"])
	if err != nil {
		return 0, err
	}
	defer alice.Close()
	bob, err := connect(ctx, endpoint, tokens["bob"])
	if err != nil {
		return 0, err
	}
	defer bob.Close()

	var names []string
	for t, err := range bob.Tools(ctx, nil) {
		if err != nil {
			return 0, fmt.Errorf("bob: list tools: %w", err)
		}
		names = append(names, t.Name)
	}
	fmt.Printf("bob (analyst) sees the tools: %s\n\n", strings.Join(names, ", "))

	sessions := map[string]*mcp.ClientSession{"alice": alice, "bob": bob}
	steps := []step{
		{"alice", "allowed", "echo", map[string]any{"text": "hello from alice"}},
		{"alice", "allowed", "add", map[string]any{"a": 2, "b": 40}},
		{"alice", "proxied to a downstream MCP server", "inventory_stock", map[string]any{"sku": "A-100"}},
		{"alice", "secrets in the arguments", "echo", map[string]any{"text": "log me in", "password": "hunter2", "api_key": "sk-live-0123456789"}},
		{"alice", "slow", "sleep", map[string]any{"ms": 1200}},
		{"alice", "failing", "fail", map[string]any{"message": "upstream exploded"}},
		{"alice", "longer than call_timeout (2s)", "sleep", map[string]any{"ms": 5000}},
		{"bob", "allowed", "echo", map[string]any{"text": "hi from bob"}},
		{"bob", "allowed, proxied", "inventory_stock", map[string]any{"sku": "B-200"}},
		{"bob", "denied by role", "sleep", map[string]any{"ms": 10}},
		{"bob", "denied by role", "fail", nil},
	}
	const line = "%-11s %-16s %-36s %s\n"
	fmt.Printf(line, "CALLER", "TOOL", "WHY", "WHAT THE CLIENT GOT")
	for _, s := range steps {
		res, err := sessions[s.who].CallTool(ctx, &mcp.CallToolParams{Name: s.tool, Arguments: s.args})
		fmt.Printf(line, s.who, s.tool, s.why, outcome(res, err))
	}
	// A request without a token never reaches the MCP server: send it raw.
	status, err := unauthenticatedCall(ctx, endpoint)
	if err != nil {
		return 0, err
	}
	fmt.Printf(line, "(no token)", "echo", "no bearer token", fmt.Sprintf("HTTP %d (Unauthorized)", status))
	return len(steps) + 1, nil
}

// connect opens an MCP session with the gateway as the owner of token.
func connect(ctx context.Context, endpoint, token string) (*mcp.ClientSession, error) {
	hc := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	client := mcp.NewClient(&mcp.Implementation{Name: "otelaudit-demo", Version: gateway.Version}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to the gateway: %w", err)
	}
	return s, nil
}

// bearer adds the Authorization header.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// outcome describes a call's result as the client saw it.
func outcome(res *mcp.CallToolResult, err error) string {
	if err != nil {
		return "MCP error: " + err.Error()
	}
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	s := strings.Join(parts, " ")
	if res.IsError {
		return "tool error: " + s
	}
	return "ok: " + s
}

// unauthenticatedCall posts a tools/call without a token and returns the
// HTTP status.
func unauthenticatedCall(ctx context.Context, endpoint string) (int, error) {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"let me in"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("unauthenticated call: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// startInventory starts a small downstream MCP server over streamable HTTP
// with one tool, stock.
func startInventory() (*downstream, error) {
	s := mcp.NewServer(&mcp.Implementation{Name: "inventory", Version: "1.0.0"}, nil)
	type in struct {
		SKU string `json:"sku" jsonschema:"the article number"`
	}
	type out struct {
		SKU     string `json:"sku"`
		InStock int    `json:"in_stock"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "stock", Description: "Units in stock of an article."},
		func(_ context.Context, _ *mcp.CallToolRequest, a in) (*mcp.CallToolResult, out, error) {
			return nil, out{SKU: a.SKU, InStock: 3 * len(a.SKU)}, nil
		})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("inventory server: %w", err)
	}
	srv := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &downstream{URL: "http://" + ln.Addr().String() + "/mcp", srv: srv}, nil
}

type downstream struct {
	URL string
	srv *http.Server
}

func (d *downstream) Close() { _ = d.srv.Close() }

// fileTokens returns the clients' tokens (token or token_env) of the
// configuration file, by subject.
func fileTokens(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var f struct {
		Clients []struct {
			Subject  string `yaml:"subject"`
			Token    string `yaml:"token"`
			TokenEnv string `yaml:"token_env"`
		} `yaml:"clients"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := map[string]string{}
	for _, c := range f.Clients {
		out[c.Subject] = c.Token
		if c.Token == "" && c.TokenEnv != "" {
			out[c.Subject] = os.Getenv(c.TokenEnv)
		}
	}
	return out, nil
}

// countRows returns how many rows audit_log holds (0 when it does not exist
// yet).
func countRows(ctx context.Context, dbURL string) int64 {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var n int64
	if conn.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n) != nil {
		return 0
	}
	return n
}

// dbNow returns the database's clock, which stamps created_at.
func dbNow(ctx context.Context, dbURL string) (time.Time, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return time.Time{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var t time.Time
	if err := conn.QueryRow(ctx, "SELECT now()").Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read database clock: %w", err)
	}
	return t, nil
}

// printRows prints the demo's audit_log rows written since since and
// returns how many there are.
func printRows(ctx context.Context, dbURL string, since time.Time) (int, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT client_subject, client_role, tool_name, backend_name, response_status,
		       latency_ms, coalesce(trace_id, ''), coalesce(request_args::text, ''), coalesce(error_message, '')
		FROM audit_log
		WHERE service_name = $1 AND created_at >= $2
		ORDER BY timestamp, id`, serviceName, since)
	if err != nil {
		return 0, fmt.Errorf("query audit_log: %w", err)
	}
	defer rows.Close()

	fmt.Println("\naudit_log rows written by this run:")
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SUBJECT\tROLE\tTOOL\tBACKEND\tSTATUS\tLATENCY\tTRACE ID\tREQUEST ARGS (REDACTED)\tERROR")
	n := 0
	for rows.Next() {
		var subject, role, tool, backend, status, trace, args, errMsg string
		var latency int64
		if err := rows.Scan(&subject, &role, &tool, &backend, &status, &latency, &trace, &args, &errMsg); err != nil {
			return 0, fmt.Errorf("read audit_log: %w", err)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d ms\t%s\t%s\t%s\n",
			subject, dash(role), dash(tool), dash(backend), status, latency, dash(trace), dash(compact(args)), dash(clip(errMsg, 60)))
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read audit_log: %w", err)
	}
	w.Flush()
	fmt.Print(buf.String())
	return n, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// compact re-encodes JSON without spaces.
func compact(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}
