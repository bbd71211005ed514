package exporter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// Hostile input never costs a legitimate row, and no secret leaves the
// process: hostile records of every kind (through the Auditor, and raw
// records straight on a Logger, as the Collector path receives them from
// anyone who speaks OTLP) mixed with a concurrent client's legitimate calls,
// through the real stack into a real PostgreSQL, with fail-closed off and on.

// hostileSecrets are the secrets of hostileArgs: none may appear in any
// column of audit_log or audit_log_rejects, nor in any span.
var hostileSecrets = []string{
	"hunter2-pw", "Bearer-x-tok", "u-pw-9", "k-query-1", "sk-S3CR3TS3CR3T", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
	"xoxb-123456789012-abcdefghijkl", "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
	"MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn", "dsn-pw-7", "p1-in-json", "bytes-secret", "correct-horse-battery", "nv-pair-tok",
	"Zm9vYmFyLXN0cmlwZQ", "glpat-abcdefghij0123456789",
}

// hostileArgs holds every redaction shape (the representative set of
// instrumentation's TestRedactionShapes, whose table is not exported):
// secret keys, header lists, name/value pairs, URL userinfo, query
// parameters, key=value text, value patterns under innocuous keys, JSON in a
// []string and in a []byte.
func hostileArgs() map[string]any {
	return map[string]any{
		"password": "hunter2-pw",
		"headers": []any{
			[]any{"Authorization", "Bearer Bearer-x-tok"},
			map[string]any{"name": "X-Api-Key", "value": "k-query-1"},
			map[string]any{"name": "Authorization", "value": "nv-pair-tok"},
		},
		"db":      "postgres://u:u-pw-9@h/db?api_key=k-query-1",
		"note":    "use sk-S3CR3TS3CR3T or ghp_abcdefghijklmnopqrstuvwxyz0123456789 or xoxb-123456789012-abcdefghijkl",
		"aws":     "AKIAIOSFODNN7EXAMPLE",
		"jwt":     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
		"pem":     "-----BEGIN PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END PRIVATE KEY-----",
		"conn":    "host=db password=dsn-pw-7",
		"configs": []string{`{"token":"p1-in-json"}`},
		"blob":    []byte(`{"secret":"bytes-secret"}`),
		"pin":     "correct-horse-battery",
		"cb":      "https://h/cb?access_token=Zm9vYmFyLXN0cmlwZQ&x=1",
		"gitlab":  "glpat-abcdefghij0123456789",
		"header":  "Authorization: Bearer Bearer-x-tok",
	}
}

// hostileValues are the oversized and malformed values, made once.
type hostileValues struct {
	big     string // 4 KiB (over PostgreSQL's btree row limit of ~2.7 KB) of two-byte runes and a one-byte tail: a cut at 256 bytes falls inside a rune
	session string // 600,000 bytes, as the Mcp-Session-Id that was stored
	id1MiB  string // a JSON-RPC id of 1 MiB
	idObj   string // a JSON-RPC id that is an object
	junk    string // 64 KiB: twenty of them are over the mapping's 1 MiB of attributes
	errMB   string // error text of 3 MiB quoting the call's secrets
	bad     string // NUL bytes and invalid UTF-8, over 256 bytes, multi-byte at the cut
	args3M  json.RawMessage
	deep    json.RawMessage // 10,000 levels
	refused json.RawMessage // a number PostgreSQL refuses, and a secret
	quote   func(any) string
}

func newHostileValues() *hostileValues {
	quote := func(v any) string { return fmt.Sprintf("rejected %v (%q)", v, fmt.Sprint(v)) }
	q := quote(hostileArgs())
	return &hostileValues{
		big:     strings.Repeat("é", 2<<10) + "x",
		session: strings.Repeat("s", 600_000),
		junk:    strings.Repeat("j", 64<<10),
		id1MiB:  strings.Repeat("7", 1<<20),
		idObj:   `{"id":{"nested":[1,2,{"x":"` + strings.Repeat("o", 8<<10) + `"}]}}`,
		errMB:   q + strings.Repeat(" and again "+q, (3<<20)/len(q)),
		bad:     "a\x00b\xffc\xc3" + strings.Repeat("ü", 200) + "\x00\xfe",
		args3M:  json.RawMessage(`{"blob":"` + strings.Repeat("x", 3<<20) + `"}`),
		deep:    json.RawMessage(strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat(`}`, 10000)),
		refused: json.RawMessage(`{"n": 1e1000000, "password": "hunter2-pw"}`),
		quote:   quote,
	}
}

// countEmits counts the audit records that enter the exporter's processor:
// every one must end as a row, a reject, a duplicate or a counted drop.
type countEmits struct {
	sdklog.Processor
	emitted atomic.Int64
}

func (c *countEmits) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if r.EventName() == otelaudit.EventName {
		c.emitted.Add(1)
	}
	return c.Processor.OnEmit(ctx, r)
}

// hostileRig is the stack under test.
type hostileRig struct {
	exp    *exporter.Exporter
	proc   *countEmits
	lp     *sdklog.LoggerProvider
	aud    *instrumentation.Auditor
	raw    log.Logger
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	v      *hostileValues
	url    string

	mu       sync.Mutex
	allowed  []uuid.UUID // legitimate calls served
	refused  []uuid.UUID // legitimate calls refused (ErrAuditUnavailable returned)
	hostileN atomic.Int64
	hostileR atomic.Int64 // hostile calls refused in fail-closed mode
}

func newHostileRig(t *testing.T, failClosed bool, opts ...instrumentation.Option) *hostileRig {
	t.Helper()
	r := &hostileRig{v: newHostileValues(), spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	r.url = pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exp, err := exporter.New(ctx, exporter.WithDatabaseURL(r.url),
		exporter.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))))
	if err != nil {
		t.Fatal(err)
	}
	r.exp = exp
	r.proc = &countEmits{Processor: exporter.NewProcessor(exp, sdklog.WithExportInterval(50*time.Millisecond), exporter.WithQueueSize(hostileQueue))}
	r.lp = sdklog.NewLoggerProvider(sdklog.WithProcessor(r.proc))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = r.lp.Shutdown(ctx)
		_ = tp.Shutdown(ctx)
	})
	o := []instrumentation.Option{instrumentation.WithLoggerProvider(r.lp), instrumentation.WithTracerProvider(tp)}
	if failClosed {
		o = append(o, instrumentation.WithFailClosed(exp))
	}
	r.aud = instrumentation.New(append(o, opts...)...)
	r.raw = r.lp.Logger("hostile-otlp-sender")
	return r
}

// legit makes one legitimate call the way a gateway using Record does.
func (r *hostileRig) legit() {
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7())
	c := instrumentation.Call{RequestID: id, Subject: "alice", Role: "admin", Tool: "search", Backend: "docs",
		Args: map[string]any{"q": "report", "limit": 10}, Latency: 3 * time.Millisecond}
	if err := r.aud.Allow(ctx); err != nil {
		c.Err = err
		r.aud.Record(ctx, c)
		r.mu.Lock()
		r.refused = append(r.refused, id)
		r.mu.Unlock()
		return
	}
	r.aud.Record(ctx, c)
	r.mu.Lock()
	r.allowed = append(r.allowed, id)
	r.mu.Unlock()
}

// hostile makes the i-th hostile call through the Auditor: every field
// oversized, NUL bytes and invalid UTF-8, arguments PostgreSQL refuses, deep
// nesting, every redaction shape, error text quoting the secrets. The
// megabyte kinds come once in a hundred.
func (r *hostileRig) hostile(i int) {
	ctx := context.Background()
	v := r.v
	n := strconv.Itoa(i)
	ok := func(context.Context, instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
		return instrumentation.ToolResult{Value: "ok"}, nil
	}
	quoteErr := func(_ context.Context, req instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
		return instrumentation.ToolResult{}, errors.New(v.quote(req.Args))
	}
	quoteResult := func(_ context.Context, req instrumentation.ToolRequest) (instrumentation.ToolResult, error) {
		return instrumentation.ToolResult{IsError: true, ErrorMessage: v.quote(req.Args)}, nil
	}
	invoke := func(req instrumentation.ToolRequest, h instrumentation.ToolHandler) {
		if _, err := r.aud.Invoke(ctx, req, h); errors.Is(err, instrumentation.ErrAuditUnavailable) {
			r.hostileR.Add(1)
		}
	}
	record := func(c instrumentation.Call) {
		if err := r.aud.Allow(ctx); err != nil {
			c.Err = err
			r.hostileR.Add(1)
		}
		r.aud.Record(ctx, c)
	}
	r.hostileN.Add(1)
	if i%100 == 99 {
		switch (i / 100) % 3 {
		case 0:
			invoke(instrumentation.ToolRequest{Tool: "rpc-id-1mib", JSONRPCID: v.id1MiB, Args: hostileArgs()}, ok)
		case 1:
			record(instrumentation.Call{Tool: "error-mb", Args: hostileArgs(), ErrorMessage: v.errMB, Status: otelaudit.StatusError})
		case 2:
			invoke(instrumentation.ToolRequest{Tool: "args-3mib", Args: v.args3M}, ok)
		}
		return
	}
	switch i % 13 {
	case 0:
		invoke(instrumentation.ToolRequest{Tool: v.big + n, Args: hostileArgs()}, ok)
	case 1:
		invoke(instrumentation.ToolRequest{Tool: "big-backend", Backend: v.big + n}, ok)
	case 2:
		invoke(instrumentation.ToolRequest{Tool: "big-identity", Subject: v.big + n, Role: v.big}, ok)
	case 3:
		invoke(instrumentation.ToolRequest{Tool: "big-session", SessionID: v.session + n, Method: v.big}, ok)
	case 4:
		invoke(instrumentation.ToolRequest{Tool: "rpc-id-object", JSONRPCID: v.idObj + n}, ok)
	case 5:
		record(instrumentation.Call{Tool: v.bad + n, Backend: v.bad, Subject: v.bad, Role: v.bad, Method: v.bad,
			SessionID: v.bad, JSONRPCID: v.bad, ErrorType: v.bad, ErrorMessage: v.bad + v.quote(hostileArgs()),
			Args: hostileArgs(), Status: otelaudit.StatusError})
	case 6:
		invoke(instrumentation.ToolRequest{Tool: "pg-refuses-" + n, Args: v.refused}, ok)
	case 7:
		invoke(instrumentation.ToolRequest{Tool: "deep-raw", Args: v.deep}, ok)
	case 8:
		deep := any("bottom")
		for range 100 {
			deep = map[string]any{"a": deep, "token": "Bearer-x-tok"}
		}
		invoke(instrumentation.ToolRequest{Tool: "deep-map", Args: deep}, ok)
	case 9:
		invoke(instrumentation.ToolRequest{Tool: "shapes", Args: hostileArgs()}, ok)
	case 10:
		invoke(instrumentation.ToolRequest{Tool: "quotes-in-error", Args: hostileArgs()}, quoteErr)
	case 11:
		invoke(instrumentation.ToolRequest{Tool: "quotes-in-result", Args: hostileArgs()}, quoteResult)
	case 12:
		args := hostileArgs()
		record(instrumentation.Call{Tool: "record-quotes", Args: args, Err: errors.New(v.quote(args))})
	}
}

// rawHostile emits the i-th raw record straight on a Logger, bypassing the
// Auditor's bounds and redaction (no secrets: nothing in the process made
// these records): the mapping's caps must hold them.
func (r *hostileRig) rawHostile(i int) {
	v := r.v
	n := strconv.Itoa(i)
	attrs := []attribute.KeyValue{attribute.Bool("hostile.raw", true), attribute.Int("hostile.n", i)}
	switch i % 10 {
	case 0: // every field oversized, the JSON-RPC id an object
		attrs = append(attrs, otelaudit.RequestIDKey.String(v.big+n), otelaudit.ToolNameKey.String(v.big),
			otelaudit.BackendNameKey.String(v.big), otelaudit.UserIDKey.String(v.big),
			otelaudit.UserRolesKey.StringSlice([]string{v.big, v.big}), otelaudit.MCPSessionIDKey.String(v.session),
			otelaudit.JSONRPCRequestIDKey.Map(attribute.String("x", v.big), attribute.Int("y", 1)),
			otelaudit.ResponseStatusKey.String(v.big), otelaudit.MCPMethodNameKey.String(v.big),
			otelaudit.ErrorMessageKey.String(v.big), otelaudit.ErrorTypeKey.String(v.big))
	case 1: // NUL bytes and invalid UTF-8 everywhere
		attrs = append(attrs, otelaudit.RequestIDKey.String(v.bad+n), otelaudit.ToolNameKey.String(v.bad),
			otelaudit.BackendNameKey.String(v.bad), otelaudit.UserIDKey.String(v.bad),
			otelaudit.UserRolesKey.StringSlice([]string{v.bad}), otelaudit.MCPSessionIDKey.String(v.bad),
			otelaudit.JSONRPCRequestIDKey.String(v.bad), otelaudit.ResponseStatusKey.String(v.bad),
			otelaudit.MCPMethodNameKey.String(v.bad), otelaudit.ErrorMessageKey.String(v.bad),
			otelaudit.ErrorTypeKey.String(v.bad), otelaudit.ToolCallArgumentsKey.String("{\"a\":\"\x00\xff\"}"))
	case 2: // a number PostgreSQL refuses
		attrs = append(attrs, otelaudit.RequestIDKey.String(uuid.NewString()), otelaudit.ToolNameKey.String("raw-pg-refuses"),
			otelaudit.ToolCallArgumentsKey.String(`{"n": 1e1000000}`))
	case 3: // arguments nested 10,000 deep
		attrs = append(attrs, otelaudit.ToolNameKey.String("raw-deep"+n), otelaudit.ToolCallArgumentsKey.String(string(v.deep)))
	case 4: // over 1 MiB of unknown attributes (once in 50)
		if i%50 == 4 {
			for k := range 20 {
				attrs = append(attrs, attribute.String("junk."+strconv.Itoa(k), v.junk))
			}
		}
		attrs = append(attrs, otelaudit.ToolNameKey.String("raw-junk"))
	case 5: // a JSON-RPC id of 1 MiB (once in 50), else of 4 KiB
		id := v.big
		if i%50 == 5 {
			id = v.id1MiB
		}
		attrs = append(attrs, otelaudit.ToolNameKey.String("raw-rpc-id"), otelaudit.JSONRPCRequestIDKey.String(id))
	case 6: // error text of 3 MiB (once in 50), else of 4 KiB
		msg := v.big
		if i%50 == 6 {
			msg = strings.Repeat("E", 3<<20)
		}
		attrs = append(attrs, otelaudit.ToolNameKey.String("raw-error"), otelaudit.ErrorMessageKey.String(msg))
	case 7: // wrong types
		attrs = append(attrs, otelaudit.ToolNameKey.String("raw-types"), otelaudit.UserIDKey.Int(42),
			otelaudit.UserRolesKey.String(v.big), otelaudit.LatencyMSKey.String("15"),
			otelaudit.JSONRPCRequestIDKey.StringSlice([]string{v.big, v.bad}), otelaudit.MCPSessionIDKey.Int64(-1))
	case 8: // only a tool: everything else missing, the id derived
		attrs = append(attrs, otelaudit.ToolNameKey.String("raw-only-tool"))
	case 9: // arguments of 3 MiB (once in 50), else 4 KiB
		args := `{"x":"` + v.big + `"}`
		if i%50 == 9 {
			args = string(v.args3M)
		}
		attrs = append(attrs, otelaudit.ToolNameKey.String("raw-args"), otelaudit.ToolCallArgumentsKey.String(args))
	}
	var rec log.Record
	rec.SetEventName(otelaudit.EventName)
	rec.SetTimestamp(time.Now())
	rec.AddAttributes(attrs...)
	r.raw.Emit(context.Background(), rec)
	r.hostileN.Add(1)
}

// run drives the three sources concurrently for d, each on its own ticker:
// per tick one legitimate call, six hostile calls through the Auditor and
// three raw hostile records (one legitimate in ten): 2,000 records/s with a
// 5 ms tick, 400/s with the race detector (25 ms), which makes the
// Auditor's redaction and the mapping several times slower.
func (r *hostileRig) run(d time.Duration) time.Duration {
	tick := 5 * time.Millisecond
	if raceEnabled {
		tick = 25 * time.Millisecond
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	source := func(perTick int, f func(int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(tick)
			defer t.Stop()
			i := 0
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				for range perTick {
					f(i)
					i++
				}
			}
		}()
	}
	start := time.Now()
	source(1, func(int) { r.legit() })
	source(6, r.hostile)
	source(3, r.rawHostile)
	time.Sleep(d)
	close(stop)
	wg.Wait()
	return time.Since(start)
}

// droppedByReason reads otelaudit.records.dropped{reason} from the
// exporter's meter provider (the processor's and the exporter's drops).
func (r *hostileRig) droppedByReason(t *testing.T) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "otelaudit.records.dropped" {
				continue
			}
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					reason, _ := dp.Attributes.Value("reason")
					out[reason.AsString()] += dp.Value
				}
			}
		}
	}
	return out
}

func TestHostileLoadNeverCostsALegitimateRow(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		name := "fail-open"
		if failClosed {
			name = "fail-closed"
		}
		t.Run(name, func(t *testing.T) { testHostileLoad(t, failClosed) })
	}
}

func testHostileLoad(t *testing.T, failClosed bool) {
	ctx := context.Background()
	r := newHostileRig(t, failClosed)
	elapsed := r.run(hostileDuration)

	// In fail-closed mode the refusals are emitted once the pipeline is
	// healthy again (the next allowed call drains them).
	conn := pgtest.Connect(t, r.url)
	var rows, rejects int64
	var dropped map[string]int64
	var drops int64
	accounted := func() bool {
		_ = r.lp.ForceFlush(ctx)
		if failClosed {
			_ = r.aud.Allow(ctx)
		}
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM audit_log_rejects)`).Scan(&rows, &rejects); err != nil {
			t.Fatal(err)
		}
		dropped = r.droppedByReason(t)
		drops = 0
		for _, n := range dropped {
			drops += n
		}
		st := r.exp.Stats()
		return rows+rejects+drops+st.Duplicates == r.proc.emitted.Load() && r.exp.Health(ctx) == nil
	}
	stopped := time.Now()
	deadline := stopped.Add(30 * time.Second)
	for !accounted() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every record accounted for %v after the load stopped", time.Since(stopped).Round(time.Millisecond))
	st := r.exp.Stats()
	emitted := r.proc.emitted.Load()
	r.mu.Lock()
	allowed, refused := r.allowed, r.refused
	r.mu.Unlock()
	legitN := len(allowed) + len(refused)
	t.Logf("%d records emitted in %v (%.0f/s): %d legitimate (%d served, %d refused), %d hostile (%d refused); "+
		"%d rows, %d rejects, %d duplicates, dropped %v; exporter stats %+v", emitted, elapsed.Round(time.Millisecond),
		float64(emitted)/elapsed.Seconds(), legitN, len(allowed), len(refused), r.hostileN.Load(), r.hostileR.Load(),
		rows, rejects, st.Duplicates, dropped, st)

	// Every record is accounted for: a row, a reject, a duplicate or a
	// drop counted with its reason.
	if rows+rejects+drops+st.Duplicates != emitted {
		t.Errorf("%d rows + %d rejects + %d dropped %v + %d duplicates != %d records emitted",
			rows, rejects, drops, dropped, st.Duplicates, emitted)
	}
	if st.Rejected != rejects {
		t.Errorf("exporter counted %d rejected, audit_log_rejects holds %d", st.Rejected, rejects)
	}
	for reason, n := range st.DroppedByReason {
		if dropped[reason] < n {
			t.Errorf("exporter dropped %d (%s), the metric says %d", n, reason, dropped[reason])
		}
	}
	if st.Skipped != 0 {
		t.Errorf("%d records skipped as not audit events", st.Skipped)
	}
	if rejects == 0 {
		t.Error("no reject: the records PostgreSQL refuses did not reach it (the test does not test isolation)")
	}
	if minLegit := int(hostileDuration/time.Second) * 25; legitN < minLegit {
		t.Errorf("only %d legitimate calls in %v: the load did not run", legitN, elapsed)
	}
	if !failClosed && len(refused) > 0 {
		t.Errorf("%d calls refused in fail-open mode", len(refused))
	}

	// Every legitimate call is exactly one row: served ones ok, refused
	// ones denied (reported to the caller as refused, never allowed and
	// lost).
	check := func(ids []uuid.UUID, status otelaudit.Status) {
		t.Helper()
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i] = id.String()
		}
		var missing, dup, wrong int
		if err := conn.QueryRow(ctx, `WITH want AS (SELECT unnest($1::uuid[]) AS id),
			got AS (SELECT want.id, count(a.request_id) AS n, count(*) FILTER (WHERE a.response_status <> $2) AS bad
				FROM want LEFT JOIN audit_log a ON a.request_id = want.id GROUP BY want.id)
			SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1), coalesce(sum(bad), 0) FROM got`,
			strs, string(status)).Scan(&missing, &dup, &wrong); err != nil {
			t.Fatal(err)
		}
		if missing > 0 || dup > 0 || wrong > 0 {
			t.Errorf("%d legitimate calls (%s): %d without a row, %d with more than one, %d with another status",
				len(ids), status, missing, dup, wrong)
		}
	}
	check(allowed, otelaudit.StatusOK)
	check(refused, otelaudit.StatusDenied)

	// No secret of the test table in any column of audit_log or
	// audit_log_rejects (the payload is the refused row, byte for byte).
	for _, q := range []string{
		`SELECT s, count(*) FROM audit_log t, unnest($1::text[]) s WHERE strpos(t::text, s) > 0 GROUP BY s`,
		`SELECT s, count(*) FROM audit_log_rejects t, unnest($1::text[]) s
			WHERE strpos(t::text, s) > 0 OR position(convert_to(s, 'UTF8') IN t.payload) > 0 GROUP BY s`,
	} {
		leaks, err := conn.Query(ctx, q, hostileSecrets)
		if err != nil {
			t.Fatal(err)
		}
		for leaks.Next() {
			var s string
			var n int
			if err := leaks.Scan(&s, &n); err != nil {
				t.Fatal(err)
			}
			t.Errorf("%d rows hold the secret %q (%.40s…)", n, s, q)
		}
		if err := leaks.Err(); err != nil {
			t.Fatal(err)
		}
		leaks.Close()
	}
	// Nor in any span.
	spans := r.spans.Ended()
	if len(spans) == 0 {
		t.Error("no spans recorded")
	}
	leaked := 0
	for _, sp := range spans {
		texts := []string{sp.Name(), sp.Status().Description}
		for _, kv := range sp.Attributes() {
			texts = append(texts, kv.Value.String())
		}
		for _, ev := range sp.Events() {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Value.String())
			}
		}
		for _, txt := range texts {
			for _, sec := range hostileSecrets {
				if strings.Contains(txt, sec) && leaked < 10 {
					leaked++
					t.Errorf("span %.40q holds %q: %.200q", sp.Name(), sec, txt)
				}
			}
		}
	}

	// The hostile rows land bounded: capped columns within their caps,
	// arguments and attributes within the mapping's 1 MiB, rows made by the
	// Auditor within its 64 KiB argument limit plus markers.
	var maxField, maxErr, maxArgs, maxAttrs, maxRow, maxAuditorRow int
	if err := conn.QueryRow(ctx, `SELECT
			max(greatest(octet_length(tool_name), octet_length(backend_name), octet_length(client_subject),
				octet_length(client_role), octet_length(response_status),
				coalesce(octet_length(attributes->>'mcp.session.id'), 0), coalesce(octet_length(attributes->>'jsonrpc.request.id'), 0),
				coalesce(octet_length(attributes->>'mcp.method.name'), 0), coalesce(octet_length(attributes->>'error.type'), 0))),
			coalesce(max(octet_length(error_message)), 0),
			coalesce(max(octet_length(request_args::text)), 0), coalesce(max(octet_length(attributes::text)), 0),
			max(octet_length(t::text)),
			coalesce(max(octet_length(t::text)) FILTER (WHERE NOT (attributes ? 'hostile.raw' OR attributes ? 'otelaudit.truncated')), 0)
		FROM audit_log t`).Scan(&maxField, &maxErr, &maxArgs, &maxAttrs, &maxRow, &maxAuditorRow); err != nil {
		t.Fatal(err)
	}
	t.Logf("largest: capped field %d B, error text %d B, arguments %d B, attributes %d B, row %d B, row made by the Auditor %d B",
		maxField, maxErr, maxArgs, maxAttrs, maxRow, maxAuditorRow)
	// The marker kinds did land: a cut session id with the original's size,
	// an attributes object and arguments replaced by their markers.
	var cutSession, cutAttrs, cutArgs int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE (attributes->>$1)::bigint >= 600000),
			count(*) FILTER (WHERE attributes ? 'otelaudit.truncated'), count(*) FILTER (WHERE request_args ? 'otelaudit.truncated')
		FROM audit_log`, string(otelaudit.TruncatedSizeKey(otelaudit.MCPSessionIDKey))).Scan(&cutSession, &cutAttrs, &cutArgs); err != nil {
		t.Fatal(err)
	}
	if cutSession == 0 || cutAttrs == 0 || cutArgs == 0 {
		t.Errorf("markers: %d cut session ids, %d attributes markers, %d arguments markers; want some of each", cutSession, cutAttrs, cutArgs)
	}
	if maxField > otelaudit.DefaultMaxFieldBytes {
		var which string
		_ = conn.QueryRow(ctx, `SELECT concat_ws(' ', tool_name, octet_length(tool_name), octet_length(backend_name), octet_length(client_subject),
				octet_length(client_role), octet_length(response_status),
				octet_length(attributes->>'mcp.session.id'), octet_length(attributes->>'jsonrpc.request.id'),
				octet_length(attributes->>'mcp.method.name'), octet_length(attributes->>'error.type')) FROM audit_log t
			WHERE greatest(octet_length(tool_name), octet_length(backend_name), octet_length(client_subject),
				octet_length(client_role), octet_length(response_status),
				coalesce(octet_length(attributes->>'mcp.session.id'), 0), coalesce(octet_length(attributes->>'jsonrpc.request.id'), 0),
				coalesce(octet_length(attributes->>'mcp.method.name'), 0), coalesce(octet_length(attributes->>'error.type'), 0)) > $1 LIMIT 1`,
			otelaudit.DefaultMaxFieldBytes).Scan(&which)
		t.Logf("over the cap: %.300s", which)
		t.Errorf("a capped field of %d bytes landed (cap %d)", maxField, otelaudit.DefaultMaxFieldBytes)
	}
	if maxErr > otelaudit.DefaultMaxErrorBytes {
		t.Errorf("error text of %d bytes landed (cap %d)", maxErr, otelaudit.DefaultMaxErrorBytes)
	}
	if maxArgs > otelaudit.MaxStoredArgsBytes+1024 || maxAttrs > otelaudit.MaxStoredArgsBytes+1024 {
		t.Errorf("arguments of %d bytes or attributes of %d bytes landed (cap %d)", maxArgs, maxAttrs, otelaudit.MaxStoredArgsBytes)
	}
	if maxRow > 2*otelaudit.MaxStoredArgsBytes+64<<10 {
		t.Errorf("a row of %d bytes landed", maxRow)
	}
	if maxAuditorRow > otelaudit.DefaultMaxArgsBytes+32<<10 {
		t.Errorf("a row made by the Auditor of %d bytes landed (arguments limit %d)", maxAuditorRow, otelaudit.DefaultMaxArgsBytes)
	}
}

// hostileDuration is how long the load runs.
const hostileDuration = 8 * time.Second

// hostileQueue is the processor's queue: four times the default, so that
// the machine's scheduling stalls (tests share two cores) are absorbed; the
// log says how long the backlog took to drain after the load stopped.
const hostileQueue = 4 * exporter.DefaultQueueSize
