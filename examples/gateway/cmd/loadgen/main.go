// Command loadgen measures what auditing costs the example gateway. It
// starts the gateway in-process on loopback, once with audit off and once
// with audit on (in the same run, alternating the order each round), drives
// it with many concurrent MCP sessions for a bounded time, and reports
// calls/s and the p50, p99 and max latency of a tool call as the client sees
// it. With audit on it checks that audit_log holds exactly one row per call.
//
//	scripts/ensure-postgres.sh && go run ./examples/gateway/cmd/loadgen -duration 10s
//
// Rows go to the database otelaudit_loadgen on 127.0.0.1:5432 (created when
// missing) unless OTELAUDIT_DATABASE_URL names another one.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sentinel-gateway/otelaudit/examples/gateway/internal/gateway"
)

// DefaultDatabaseURL is used unless OTELAUDIT_DATABASE_URL is set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/otelaudit_loadgen?sslmode=disable"

const token = "loadgen-token-0000000001"

type options struct {
	duration, warmup time.Duration
	sessions, rounds int
	rate             float64
	queue, batch     int
	interval         time.Duration
	discard          bool
	tool             string
	dbURL            string
	cpuprofile       string
	gc               string
	anonymous        int
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per mode and round")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per mode and round (its calls are audited and counted too)")
	flag.IntVar(&o.sessions, "sessions", 32, "concurrent MCP sessions, each calling in a loop")
	flag.Float64Var(&o.rate, "rate", 2000, "target calls/s over all sessions (each session paced evenly); 0 calls as fast as possible, which on a small machine measures CPU saturation rather than the latency audit adds")
	flag.IntVar(&o.queue, "max-queue-size", 8192, "audit batch processor queue (records), as in gateway.yaml")
	flag.IntVar(&o.batch, "max-batch-size", 2048, "audit batch processor export batch (records)")
	flag.DurationVar(&o.interval, "export-interval", 200*time.Millisecond, "audit batch processor export interval")
	flag.IntVar(&o.anonymous, "anonymous", 0, "workers flooding the gateway with unauthenticated tools/call requests (3 kB tool names, 60 kB arguments, a wrong token) beside the sessions, in both modes: authenticated rows must still equal calls")
	flag.BoolVar(&o.discard, "discard", false, "audit on, but the records are discarded by a no-op exporter instead of written to PostgreSQL: the cost of the instrumentation alone")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds of (off, on); the order alternates each round")
	flag.StringVar(&o.tool, "tool", "echo", "builtin tool to call: echo or add")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each measured phase to this file prefix (PREFIX-on.pprof, PREFIX-off.pprof)")
	gcMode := flag.String("gc", "limit", `garbage collector regime: "limit" runs both modes with GOGC=off and the -memlimit memory limit, so that both collect at about the same heap size; with Go's defaults ("default") the audit queue's preallocated ring (max_queue_size records, tens of MB of live heap) makes GC much rarer with audit on than off, and audit on looks cheaper than off`)
	memLimit := flag.Int64("memlimit", 256<<20, "memory limit in bytes for -gc limit")
	flag.Parse()
	switch *gcMode {
	case "limit":
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(*memLimit)
	case "default":
	default:
		fmt.Fprintf(os.Stderr, "loadgen: -gc: want limit or default, got %q\n", *gcMode)
		os.Exit(2)
	}
	o.gc = *gcMode
	o.dbURL = os.Getenv("OTELAUDIT_DATABASE_URL")
	if o.dbURL == "" {
		o.dbURL = DefaultDatabaseURL
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// result is one mode's measurement.
type result struct {
	audit     bool
	calls     int64 // every call made, warm-up included
	measured  []time.Duration
	errors    int64
	elapsed   time.Duration
	rows      int64
	flushTime time.Duration
	// anonRequests were refused with 401 by the gateway; anonRows are the
	// anonymous rows they became.
	anonRequests, anonRows int64
	// cpu is the CPU time (user+system) of this process, gateway and
	// clients together, during the measured phase.
	cpu time.Duration
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(o options) error {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"} {
		os.Unsetenv(k)
	}
	ctx := context.Background()
	if _, err := gateway.EnsureDatabase(ctx, o.dbURL); err != nil {
		return err
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	runID := hex.EncodeToString(id[:])
	pace := "as fast as possible"
	if o.rate > 0 {
		pace = fmt.Sprintf("paced at %.0f calls/s", o.rate)
	}
	fmt.Printf("loadgen run %s: %d sessions %s, tool %s, %s measured (+%s warm-up) per mode, %d round(s), GC %s, GOMAXPROCS %d\n",
		runID, o.sessions, pace, o.tool, o.duration, o.warmup, o.rounds, o.gc, runtime.GOMAXPROCS(0))

	var results []*result
	for round := range o.rounds {
		modes := []bool{false, true}
		if round%2 == 1 {
			modes = []bool{true, false}
		}
		for _, audit := range modes {
			r, err := measure(ctx, o, audit, fmt.Sprintf("otelaudit-loadgen-%s-%d", runID, round))
			if err != nil {
				return err
			}
			results = append(results, r)
			sorted := slices.Sorted(slices.Values(r.measured))
			fmt.Printf("  round %d, audit %-3s: %6d calls, %5.0f calls/s, p50 %s, p99 %s, max %s, CPU %.0f µs/call\n", round+1, onOff(r.audit),
				len(r.measured), float64(len(r.measured))/r.elapsed.Seconds(), ms(pct(sorted, 0.5)), ms(pct(sorted, 0.99)), ms(sorted[len(sorted)-1]),
				float64(r.cpu.Microseconds())/float64(len(r.measured)))
		}
	}
	return report(o, results)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// printLimits prints the server limits in effect once per run.
var printLimits sync.Once

// measure starts a gateway with audit on or off and drives it.
func measure(ctx context.Context, o options, audit bool, service string) (*result, error) {
	cfg := &gateway.Config{
		DatabaseURL: o.dbURL,
		ServiceName: service,
		Audit: gateway.AuditConfig{
			Enabled:        &audit,
			MaxQueueSize:   o.queue,
			MaxBatchSize:   o.batch,
			ExportInterval: o.interval,
		},
		Clients:  []gateway.ClientConfig{{Subject: "loadgen", Role: "load", Token: token}},
		Roles:    map[string][]string{"load": {"*"}},
		Backends: []gateway.BackendConfig{{Name: "demo", Type: gateway.BackendBuiltin}},
	}
	if audit && o.discard {
		cfg.AuditExporter = discardExporter{}
	}
	if err := cfg.Finish(); err != nil {
		return nil, err
	}
	printLimits.Do(func() {
		s := cfg.Server
		fmt.Printf("gateway limits on (the defaults): read_header_timeout %s, read_timeout %s, idle_timeout %s, max_header_bytes %d, unauthenticated_timeout %s, max_conns_per_client %d\n",
			s.ReadHeaderTimeout, s.ReadTimeout, s.IdleTimeout, s.MaxHeaderBytes, s.UnauthenticatedTimeout, s.MaxConnsPerClient)
	})
	g, err := gateway.New(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = g.Close(ctx)
		return nil, err
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- g.Serve(serveCtx, ln) }()

	r := &result{audit: audit}
	stopFlood := flood(ctx, o.anonymous, "http://"+ln.Addr().String()+"/mcp")
	err = drive(ctx, o, "http://"+ln.Addr().String()+"/mcp", r)
	stopFlood()

	stop()
	serveErr := <-served
	flushStart := time.Now()
	closeErr := g.Close(ctx)
	r.flushTime = time.Since(flushStart)
	if err := errors.Join(err, serveErr, closeErr); err != nil {
		return nil, err
	}
	r.anonRequests = g.AnonymousStats().Requests
	if audit && o.discard {
		r.rows = exported.Swap(0)
	} else if audit {
		if r.rows, r.anonRows, err = countRows(ctx, o.dbURL, service); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// drive runs o.sessions sessions calling o.tool in a loop: first for the
// warm-up, then for the measured duration.
func drive(ctx context.Context, o options, endpoint string, r *result) error {
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: o.sessions * 2,
		Proxy:               nil,
	}}
	hc.Transport = bearer{next: hc.Transport}
	sessions := make([]*mcp.ClientSession, o.sessions)
	for i := range sessions {
		c := mcp.NewClient(&mcp.Implementation{Name: "loadgen", Version: gateway.Version}, nil)
		s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
		if err != nil {
			return fmt.Errorf("session %d: connect: %w", i, err)
		}
		sessions[i] = s
	}
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}()

	var args any = map[string]any{"text": "load test payload", "request": 42}
	if o.tool == "add" {
		args = map[string]any{"a": 20, "b": 22}
	}
	var calls, errs atomic.Int64
	phase := func(d time.Duration, record bool) [][]time.Duration {
		lat := make([][]time.Duration, len(sessions))
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for i, s := range sessions {
			wg.Go(func() {
				// With a rate, session i calls at start + offset + k*interval.
				var interval time.Duration
				next := time.Now()
				if o.rate > 0 {
					interval = time.Duration(float64(time.Second) * float64(len(sessions)) / o.rate)
					next = next.Add(interval * time.Duration(i) / time.Duration(len(sessions)))
				}
				for time.Now().Before(deadline) {
					if interval > 0 {
						if d := time.Until(next); d > 0 {
							time.Sleep(d)
						}
						next = next.Add(interval)
						if !time.Now().Before(deadline) {
							break
						}
					}
					t0 := time.Now()
					res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: o.tool, Arguments: args})
					el := time.Since(t0)
					calls.Add(1)
					if err != nil || res.IsError {
						errs.Add(1)
					}
					if record {
						lat[i] = append(lat[i], el)
					}
				}
			})
		}
		wg.Wait()
		return lat
	}
	phase(o.warmup, false)
	if o.cpuprofile != "" {
		f, err := os.Create(fmt.Sprintf("%s-%s.pprof", o.cpuprofile, onOff(r.audit)))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := processCPU()
	start := time.Now()
	lat := phase(o.duration, true)
	r.elapsed = time.Since(start)
	r.cpu = processCPU() - cpu0
	for _, l := range lat {
		r.measured = append(r.measured, l...)
	}
	r.calls, r.errors = calls.Load(), errs.Load()
	return nil
}

// exported counts the records a discardExporter has been given.
var exported atomic.Int64

// discardExporter counts and drops audit records.
type discardExporter struct{}

func (discardExporter) Export(_ context.Context, recs []sdklog.Record) error {
	exported.Add(int64(len(recs)))
	return nil
}
func (discardExporter) Shutdown(context.Context) error   { return nil }
func (discardExporter) ForceFlush(context.Context) error { return nil }

// bearer adds the loadgen's token.
type bearer struct{ next http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return b.next.RoundTrip(r)
}

// report prints the figures per mode, every round merged.
func report(o options, results []*result) error {
	type agg struct {
		lat                 []time.Duration
		elapsed             time.Duration
		calls, errors, rows int64
		anonReq, anonRows   int64
		flush               time.Duration
		cpu                 time.Duration
	}
	by := map[bool]*agg{false: {}, true: {}}
	for _, r := range results {
		a := by[r.audit]
		a.lat = append(a.lat, r.measured...)
		a.elapsed += r.elapsed
		a.calls += r.calls
		a.errors += r.errors
		a.rows += r.rows
		a.anonReq += r.anonRequests
		a.anonRows += r.anonRows
		a.flush = max(a.flush, r.flushTime)
		a.cpu += r.cpu
	}
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "audit\tcalls/s\tp50\tp99\tmax\tCPU/call\tmeasured calls\tall calls\terrors\taudit rows\t")
	p99 := map[bool]time.Duration{}
	for _, audit := range []bool{false, true} {
		a := by[audit]
		slices.Sort(a.lat)
		if len(a.lat) == 0 {
			return errors.New("no calls measured")
		}
		p99[audit] = pct(a.lat, 0.99)
		rows := "-"
		if audit {
			rows = fmt.Sprint(a.rows)
		}
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t%.0f µs\t%d\t%d\t%d\t%s\t\n", onOff(audit),
			float64(len(a.lat))/a.elapsed.Seconds(), ms(pct(a.lat, 0.50)), ms(p99[audit]), ms(a.lat[len(a.lat)-1]),
			float64(a.cpu.Microseconds())/float64(len(a.lat)),
			len(a.lat), a.calls, a.errors, rows)
	}
	w.Flush()
	on := by[true]
	fmt.Printf("\naudit adds %+.1f%% to p99 (goal: at most +5%%)\n", 100*(float64(p99[true])/float64(p99[false])-1))
	if on.rows != on.calls {
		return fmt.Errorf("audit on: %d calls but %d audit rows (%d missing)", on.calls, on.rows, on.calls-on.rows)
	}
	what := "audit rows"
	if o.discard {
		what = "records exported (discarded)"
	}
	fmt.Printf("audit on: %d calls, %d %s: none missing\n", on.calls, on.rows, what)
	if o.anonymous > 0 {
		for _, audit := range []bool{false, true} {
			a := by[audit]
			fmt.Printf("anonymous flood (%d workers), audit %s: %d requests refused (%.0f/s)", o.anonymous, onOff(audit), a.anonReq, float64(a.anonReq)/a.elapsed.Seconds())
			if audit && !o.discard {
				fmt.Printf(", %d anonymous rows", a.anonRows)
			}
			fmt.Println()
		}
	}
	return nil
}

// pct returns the q-quantile of sorted (nearest rank).
func pct(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// countRows counts the authenticated and the anonymous rows of one
// measurement.
func countRows(ctx context.Context, dbURL, service string) (authed, anon int64, err error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE client_subject <> $2), count(*) FILTER (WHERE client_subject = $2)
		FROM audit_log WHERE service_name = $1`, service, gateway.AnonymousSubject).Scan(&authed, &anon)
	if err != nil {
		return 0, 0, fmt.Errorf("count rows: %w", err)
	}
	return authed, anon, nil
}

// flood starts workers sending unauthenticated tools/call requests of the
// shapes an attacker controls until the returned func is called.
func flood(ctx context.Context, workers int, endpoint string) (stop func()) {
	if workers <= 0 {
		return func() {}
	}
	body := `{"jsonrpc":"2.0","id":{"x":1},"method":"tools/call","params":{"name":"` + strings.Repeat("t", 3000) +
		`","arguments":{"blob":"` + strings.Repeat("x", 60_000) + `"}}}`
	done := make(chan struct{})
	var wg sync.WaitGroup
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for i := range workers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if i%2 == 0 {
					req.Header.Set("Authorization", "Bearer not-a-token-of-the-gateway")
				}
				if resp, err := hc.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	return func() { close(done); wg.Wait() }
}
