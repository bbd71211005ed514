package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// OverflowClient is the client address (otelaudit.ClientAddressKey) of the
// row that counts refusals beyond the rate limit or from more client
// addresses than anonymous.max_clients.
const OverflowClient = "(other)"

// maxAnonFieldBytes bounds the tool name and JSON-RPC id an unauthenticated
// client can put in a row.
const maxAnonFieldBytes = 64

// Reasons a request is refused for want of a valid token.
const (
	reasonMissingToken = "missing bearer token"
	reasonInvalidToken = "invalid bearer token"
)

// AnonymousStats counts the requests refused for want of a valid token and
// what became of them.
type AnonymousStats struct {
	// Requests refused with HTTP 401.
	Requests int64 `json:"requests"`
	// Rows emitted for them (each stands for one or more requests).
	Rows int64 `json:"rows"`
	// Overflowed requests were counted in an overflow row (rate limit or
	// too many client addresses) instead of a row of their client's.
	Overflowed int64 `json:"overflowed"`
	// Unread requests were refused without reading their body
	// (anonymous.max_in_flight reached).
	Unread int64 `json:"unread"`
	// ConnsRefused counts connections closed at once because their client
	// address already had server.max_conns_per_client open.
	ConnsRefused int64 `json:"conns_refused"`
}

// anonKey identifies an aggregate: one client address, one reason.
type anonKey struct{ client, reason string }

// anonAgg is the refusals of one key within one window.
type anonAgg struct {
	first, last time.Time
	count       int64
	method      string // of the first request
	tool        string // of every request, "" once they differ
	mixed       bool
	id          string // JSON-RPC id of the first request
	httpMethod  string
	latency     time.Duration
}

func (g *anonAgg) add(o *anonAgg) {
	if o.first.Before(g.first) {
		g.first = o.first
	}
	if o.last.After(g.last) {
		g.last = o.last
	}
	g.count += o.count
	if o.tool != g.tool || o.mixed {
		g.mixed = true
	}
}

// anonAuditor aggregates the refusals of unauthenticated requests: one row
// per client address and reason per window, rows rate limited, refusals
// beyond the limit counted in one overflow row per reason and window, so
// that no rate of anonymous requests can crowd the audit queue.
type anonAuditor struct {
	cfg     AnonymousConfig
	auditor *instrumentation.Auditor
	tracer  trace.Tracer
	route   func(string) string
	limiter *rate.Limiter

	mu       sync.Mutex
	open     map[anonKey]*anonAgg
	overflow map[string]*anonAgg // by reason

	requests, rows, overflowed, unread atomic.Int64

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func newAnonAuditor(cfg AnonymousConfig, a *instrumentation.Auditor, tracer trace.Tracer, route func(string) string) *anonAuditor {
	z := &anonAuditor{
		cfg: cfg, auditor: a, tracer: tracer, route: route,
		limiter:  rate.NewLimiter(rate.Limit(cfg.RowsPerSecond), cfg.Burst),
		open:     map[anonKey]*anonAgg{},
		overflow: map[string]*anonAgg{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go z.loop()
	return z
}

// refused counts one request refused with 401.
func (z *anonAuditor) refused(client, reason, httpMethod string, peek rpcPeek, latency time.Duration) {
	z.requests.Add(1)
	if z.auditor == nil {
		return
	}
	now := time.Now()
	tool := peek.tool
	if tool == "" {
		// Not a tool call (initialize, the GET event stream, ...): name
		// what was attempted instead.
		tool = "(" + httpMethod + ")"
		if peek.method != "" {
			tool = "(" + capField(peek.method) + ")"
		}
	}
	tool = capField(tool)
	one := &anonAgg{first: now, last: now, count: 1, method: capField(peek.method), tool: tool,
		id: capField(peek.id), httpMethod: httpMethod, latency: latency}
	k := anonKey{client: client, reason: reason}
	z.mu.Lock()
	defer z.mu.Unlock()
	if g, ok := z.open[k]; ok {
		g.add(one)
		return
	}
	if len(z.open) >= z.cfg.MaxClients {
		z.overflowed.Add(1)
		z.toOverflow(reason, one)
		return
	}
	z.open[k] = one
}

// toOverflow folds g into the overflow aggregate of reason. z.mu is held.
func (z *anonAuditor) toOverflow(reason string, g *anonAgg) {
	if o, ok := z.overflow[reason]; ok {
		o.add(g)
		return
	}
	c := *g
	z.overflow[reason] = &c
}

// loop emits the aggregates whose window has passed.
func (z *anonAuditor) loop() {
	defer close(z.done)
	tick := z.cfg.Window / 4
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-z.stop:
			z.flush(time.Time{})
			return
		case now := <-t.C:
			z.flush(now)
		}
	}
}

type anonRow struct {
	key anonKey
	agg *anonAgg
}

// flush emits the aggregates opened at least a window before now, or every
// aggregate when now is zero. An aggregate the rate limiter refuses goes to
// its reason's overflow row, which is emitted once its own window has
// passed, whatever the limiter says: at most one per reason and window.
func (z *anonAuditor) flush(now time.Time) {
	all := now.IsZero()
	var out []anonRow
	z.mu.Lock()
	for k, g := range z.open {
		if !all && now.Sub(g.first) < z.cfg.Window {
			continue
		}
		delete(z.open, k)
		if all || z.limiter.Allow() {
			out = append(out, anonRow{k, g})
			continue
		}
		z.overflowed.Add(g.count)
		z.toOverflow(k.reason, g)
	}
	for reason, g := range z.overflow {
		if !all && now.Sub(g.first) < z.cfg.Window {
			continue
		}
		delete(z.overflow, reason)
		out = append(out, anonRow{anonKey{client: OverflowClient, reason: reason}, g})
	}
	z.mu.Unlock()
	for _, r := range out {
		z.emit(r.key, r.agg)
	}
}

// emit records one aggregate as a denied row of subject anonymous.
func (z *anonAuditor) emit(k anonKey, g *anonAgg) {
	tool := g.tool
	if g.mixed {
		tool = "(various)"
	}
	backend := GatewayBackend
	if z.route != nil && !strings.HasPrefix(tool, "(") {
		backend = z.route(tool)
	}
	ctx, span := z.tracer.Start(context.Background(), otelaudit.OperationExecuteTool+" "+tool,
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithTimestamp(g.first))
	defer span.End()
	what := "request"
	if g.count != 1 {
		what = "requests"
	}
	c := instrumentation.Call{
		Start:        g.first,
		Subject:      AnonymousSubject,
		Role:         NoRole,
		Tool:         tool,
		Backend:      backend,
		Status:       otelaudit.StatusDenied,
		ErrorType:    otelaudit.ErrorTypeUnauthenticated,
		ErrorMessage: fmt.Sprintf("HTTP 401: %s: %d %s from %s", k.reason, g.count, what, k.client),
		Latency:      g.latency,
		Method:       g.method,
		// What the row stands for goes to its attributes; it stores no
		// argument of the client's (request_args stays empty).
		Attributes: []attribute.KeyValue{
			otelaudit.AggregateCountKey.Int64(g.count),
			otelaudit.AggregateFirstTimeKey.String(g.first.UTC().Format(time.RFC3339Nano)),
			otelaudit.AggregateLastTimeKey.String(g.last.UTC().Format(time.RFC3339Nano)),
			otelaudit.ClientAddressKey.String(k.client),
		},
	}
	if g.count == 1 {
		c.JSONRPCID = g.id
	}
	z.auditor.Record(ctx, c)
	z.rows.Add(1)
}

// close emits every open aggregate and stops the loop.
func (z *anonAuditor) close() {
	z.stopOnce.Do(func() { close(z.stop) })
	<-z.done
}

// stats returns the running totals.
func (z *anonAuditor) stats() AnonymousStats {
	return AnonymousStats{
		Requests:   z.requests.Load(),
		Rows:       z.rows.Load(),
		Overflowed: z.overflowed.Load(),
		Unread:     z.unread.Load(),
	}
}

// capField bounds a value an unauthenticated client chose: at most
// maxAnonFieldBytes, valid UTF-8 cut on a rune boundary, no NUL or other
// control characters.
func capField(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) <= maxAnonFieldBytes {
		return s
	}
	cut := maxAnonFieldBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
