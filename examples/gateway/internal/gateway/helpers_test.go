package gateway

import (
	"context"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// testGateway is a gateway serving on a loopback port, auditing into a
// database of its own.
type testGateway struct {
	t      *testing.T
	g      *Gateway
	base   string // http://127.0.0.1:port
	dbURL  string
	stop   context.CancelFunc
	served chan error
	closed bool
}

// startGateway starts a gateway for cfg (Finish is called here) with its
// own database; it is stopped when the test ends.
func startGateway(t *testing.T, cfg *Config) *testGateway {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "")
	tg := &testGateway{t: t, dbURL: pgtest.NewDatabase(t)}
	cfg.DatabaseURL = tg.dbURL
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.g = g
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	tg.stop, tg.served = stop, make(chan error, 1)
	go func() { tg.served <- g.Serve(serveCtx, ln) }()
	tg.base = "http://" + ln.Addr().String()
	t.Cleanup(func() { tg.finish() })
	return tg
}

// finish stops serving and flushes the audit records.
func (tg *testGateway) finish() {
	if tg.closed {
		return
	}
	tg.closed = true
	tg.stop()
	if err := <-tg.served; err != nil {
		tg.t.Errorf("serve: %v", err)
	}
	if err := tg.g.Close(context.Background()); err != nil {
		tg.t.Errorf("close: %v", err)
	}
}

// connect opens an MCP session with token; it is closed when the test ends.
func (tg *testGateway) connect(ctx context.Context, token string, opts *mcp.ClientOptions) *mcp.ClientSession {
	tg.t.Helper()
	hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+token)
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts)
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tg.base + "/mcp", HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		tg.t.Fatalf("connect: %v", err)
	}
	tg.t.Cleanup(func() { _ = s.Close() })
	return s
}

// auditRow is one audit_log row as these tests read it.
type auditRow struct {
	Subject, Role, Tool, Backend, Status, ErrorType, ErrorMessage, TraceID string
	Args                                                                   map[string]any
	Attrs                                                                  map[string]any
	Whole                                                                  string
}

// rows returns every audit_log row, in time order. Call finish first.
func (tg *testGateway) rows() []auditRow {
	tg.t.Helper()
	conn := pgtest.Connect(tg.t, tg.dbURL)
	ctx := context.Background()
	rs, err := conn.Query(ctx, `SELECT client_subject, client_role, tool_name, backend_name, response_status,
		coalesce(attributes->>'error.type', ''), coalesce(error_message, ''), coalesce(trace_id, ''),
		coalesce(request_args, 'null'::jsonb), coalesce(attributes, 'null'::jsonb), row_to_json(a)::text
		FROM audit_log a ORDER BY timestamp, id`)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer rs.Close()
	var out []auditRow
	for rs.Next() {
		var r auditRow
		var args, attrs any
		if err := rs.Scan(&r.Subject, &r.Role, &r.Tool, &r.Backend, &r.Status, &r.ErrorType, &r.ErrorMessage, &r.TraceID, &args, &attrs, &r.Whole); err != nil {
			tg.t.Fatal(err)
		}
		r.Args, _ = args.(map[string]any)
		r.Attrs, _ = attrs.(map[string]any)
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		tg.t.Fatal(err)
	}
	return out
}

// demoConfig is a gateway with the builtin backend, alice (admin, every
// tool) and bob (analyst: echo and add).
func demoConfig() *Config {
	return &Config{
		Audit: AuditConfig{ExportInterval: 50 * time.Millisecond},
		Clients: []ClientConfig{
			{Subject: "alice", Role: "admin", Token: testToken},
			{Subject: "bob", Role: "analyst", Token: testBobToken},
		},
		Roles:    map[string][]string{"admin": {"*"}, "analyst": {"echo", "add"}},
		Backends: []BackendConfig{{Name: "demo", Type: BackendBuiltin}},
	}
}

const testBobToken = "gateway-test-token-bob-02"

func slicesSort(s []string) { slices.Sort(s) }
