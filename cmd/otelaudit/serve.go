package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

func init() { rootCmd.AddCommand(newServeCmd()) }

//go:embed web
var webFiles embed.FS

// envServeToken is read when --token-file is not given.
const envServeToken = "OTELAUDIT_SERVE_TOKEN"

// minTokenLen is the shortest bearer token serve accepts.
const minTokenLen = 16

type serveOptions struct {
	listen         string
	tokenFile      string
	traceURL       string
	verifyInterval time.Duration
	anchor         string
	queryTimeout   time.Duration
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a read-only web viewer of the audit trail",
		Long: `serve runs a read-only web page over the audit trail: the calls newest
first with the query filters, live updates and keyset paging; a call's
arguments, attributes, error, latency and trace link; calls per minute by
status and the top tools, subjects and errors of the window; and the
integrity state of every writer stream.

Everything the page needs is embedded in the binary: nothing is fetched
from elsewhere at run time. It listens on 127.0.0.1:8080 by default. Bound
to any other address it requires a bearer token (--token-file, or
$` + envServeToken + `; at least 16 characters) and refuses to start
without one; open the page as http://HOST:PORT/#token=TOKEN or paste the
token when asked. Run it with the otelaudit_reader role: it never writes.

--trace-url makes trace ids links: {trace_id} and {span_id} are replaced,
for example http://jaeger:16686/trace/{trace_id} (Jaeger),
http://grafana:3000/explore?left={"datasource":"tempo","queries":[{"query":"{trace_id}"}]}
(Grafana Tempo).`,
		Example: `  otelaudit serve
  otelaudit serve --trace-url 'http://localhost:16686/trace/{trace_id}'
  OTELAUDIT_SERVE_TOKEN=$(openssl rand -hex 24) otelaudit serve --listen 0.0.0.0:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, o) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token the API requires (default $"+envServeToken+")")
	fs.StringVar(&o.traceURL, "trace-url", os.Getenv("OTELAUDIT_TRACE_URL"), "URL template of a trace, with {trace_id} and {span_id} (default $OTELAUDIT_TRACE_URL)")
	fs.DurationVar(&o.verifyInterval, "verify-interval", 15*time.Minute, "how often the integrity state is recomputed (0: only at start)")
	fs.StringVar(&o.anchor, "anchor", "", "checkpoint anchor file (JSON Lines) the integrity check verifies against")
	fs.DurationVar(&o.queryTimeout, "query-timeout", 10*time.Second, "longest a page's query may run")
	return cmd
}

func runServe(cmd *cobra.Command, o serveOptions) error {
	token, err := serveToken(o.tokenFile)
	if err != nil {
		return err
	}
	loopback, err := isLoopbackAddr(o.listen)
	if err != nil {
		return err
	}
	if !loopback && token == "" {
		return fmt.Errorf("serve: --listen %s is not a loopback address: a bearer token is required (--token-file or $%s)", o.listen, envServeToken)
	}
	if err := checkTraceURL(o.traceURL); err != nil {
		return err
	}
	ctx := cmd.Context()
	pool, err := openPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()

	srv := &viewer{pool: pool, table: tableName(), token: token, traceURL: o.traceURL,
		loopback: loopback, listen: o.listen, queryTimeout: o.queryTimeout, now: time.Now, log: cmd.ErrOrStderr()}
	srv.summaries.ctx = ctx
	srv.integrity = newIntegrityChecker(pool, tableName(), o.anchor)
	go srv.integrity.loop(ctx, o.verifyInterval)

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	hs := &http.Server{
		Handler:           srv.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      o.queryTimeout + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "otelaudit: serving the viewer on http://%s/\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		return nil
	}
}

func serveToken(file string) (string, error) {
	tok := os.Getenv(envServeToken)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("serve: --token-file: %w", err)
		}
		tok = string(b)
	}
	tok = strings.TrimSpace(tok)
	if tok != "" && len(tok) < minTokenLen {
		return "", fmt.Errorf("serve: the bearer token has %d characters, want at least %d", len(tok), minTokenLen)
	}
	return tok, nil
}

// isLoopbackAddr reports whether a listen address binds loopback only.
func isLoopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("serve: --listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

func checkTraceURL(tmpl string) error {
	if tmpl == "" {
		return nil
	}
	u, err := url.Parse(strings.NewReplacer("{trace_id}", "0", "{span_id}", "0").Replace(tmpl))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("serve: --trace-url %q: want an http or https URL with {trace_id}", tmpl)
	}
	if !strings.Contains(tmpl, "{trace_id}") {
		return fmt.Errorf("serve: --trace-url %q lacks {trace_id}", tmpl)
	}
	return nil
}

// viewer serves the page and its JSON API.
type viewer struct {
	pool         *pgxpool.Pool
	table        string
	token        string
	traceURL     string
	loopback     bool
	listen       string
	queryTimeout time.Duration
	integrity    *integrityChecker
	summaries    summaryCache
	now          func() time.Time
	log          io.Writer // where request failures are reported (stderr)
}

// contentSecurityPolicy allows the page's own script, style and API and
// nothing else: no inline script, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (v *viewer) handler() http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /", http.FileServerFS(assets))
	mux.HandleFunc("GET /api/config", v.api(v.config))
	mux.HandleFunc("GET /api/calls", v.api(v.calls))
	mux.HandleFunc("GET /api/summary", v.api(v.summary))
	mux.HandleFunc("GET /api/integrity", v.api(v.integrityState))
	return v.secure(mux)
}

// secure sets the security headers on every response and, on a loopback
// listener, refuses requests whose Host is not a loopback name (a DNS
// rebinding page cannot read the API).
func (v *viewer) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		if v.loopback && !loopbackHost(r.Host) {
			http.Error(w, "this viewer answers to localhost only", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(err error) error { return &apiError{status: http.StatusBadRequest, msg: err.Error()} }

// api wraps a JSON endpoint: bearer token check, query timeout, no caching,
// errors as {"error": "..."}.
func (v *viewer) api(f func(ctx context.Context, q url.Values) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "application/json; charset=utf-8")
		if v.token != "" && !v.authorized(r) {
			h.Set("WWW-Authenticate", `Bearer realm="otelaudit"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"a bearer token is required"}`))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), v.queryTimeout)
		defer cancel()
		res, err := f(ctx, r.URL.Query())
		if err != nil {
			status := http.StatusInternalServerError
			msg := "the query failed"
			var ae *apiError
			if errors.As(err, &ae) {
				status, msg = ae.status, ae.msg
			} else if errors.Is(err, context.DeadlineExceeded) {
				status, msg = http.StatusGatewayTimeout, "the query took longer than the query timeout; narrow the filters"
			}
			if status >= 500 && v.log != nil {
				// The page gets a generic message; the operator the cause.
				fmt.Fprintf(v.log, "otelaudit: serve: %s: %v\n", r.URL.Path, err)
			}
			w.WriteHeader(status)
			b, _ := json.Marshal(map[string]string{"error": msg})
			_, _ = w.Write(b)
			return
		}
		if raw, ok := res.(json.RawMessage); ok {
			_, _ = w.Write(raw)
			return
		}
		b, err := json.Marshal(res)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	}
}

func (v *viewer) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(v.token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (v *viewer) config(context.Context, url.Values) (any, error) {
	return map[string]any{"trace_url": v.traceURL, "table": v.table, "version": productVersion()}, nil
}

// filterFrom reads the query filters from URL parameters named like the
// command-line flags.
func (v *viewer) filterFrom(q url.Values) (auditquery.Filter, error) {
	ff := filterFlags{
		since: q.Get("since"), until: q.Get("until"), subject: q.Get("subject"), role: q.Get("role"),
		tool: q.Get("tool"), backend: q.Get("backend"), traceID: q.Get("trace_id"), session: q.Get("session"),
		requestID: q.Get("request_id"), text: q.Get("error"), args: q.Get("args"),
	}
	for _, s := range q["status"] {
		ff.statuses = append(ff.statuses, strings.Split(s, ",")...)
	}
	f, err := ff.filter(v.now())
	if err != nil {
		return f, badRequest(err)
	}
	return f, nil
}

// calls answers one keyset page: {"rows": [...], "next": cursor}.
func (v *viewer) calls(ctx context.Context, q url.Values) (any, error) {
	f, err := v.filterFrom(q)
	if err != nil {
		return nil, err
	}
	limit := 50
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 500 {
			return nil, badRequest(errors.New("limit: want 1 to 500"))
		}
	}
	after, err := auditquery.ParseCursor(q.Get("after"))
	if err != nil {
		return nil, badRequest(err)
	}
	rows, next, err := auditquery.Page(ctx, v.pool, v.table, auditquery.Query{Filter: f, After: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	b := append(make([]byte, 0, 1024*len(rows)+64), `{"rows":[`...)
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = rows[i].AppendJSON(b)
	}
	b = append(b, `],"next":`...)
	b = strconv.AppendQuote(b, next.String()) // digits and '-' only
	return json.RawMessage(append(b, '}')), nil
}

// summary answers the chart and the top lists of the filter's window.
func (v *viewer) summary(ctx context.Context, q url.Values) (any, error) {
	f, err := v.filterFrom(q)
	if err != nil {
		return nil, err
	}
	if f.Since.IsZero() {
		f.Since = v.now().Add(-time.Hour)
	}
	end := f.Until
	if end.IsZero() {
		end = v.now()
	}
	step := timelineStep(end.Sub(f.Since))
	// Align the buckets to the step so that a live refresh keeps them still.
	f.Since = f.Since.Truncate(step)

	sum, err := v.summaries.summarize(ctx, v.pool, v.table, summaryKey(q, step), f, step, v.now())
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"since": f.Since, "until": end, "step_seconds": step.Seconds(), "timeline": sum.Timeline,
		"top_tools": sum.Tools, "top_subjects": sum.Subjects, "top_errors": sum.Errors,
	}, nil
}

// summaryKey identifies a summary's filters (not its window) and step.
func summaryKey(q url.Values, step time.Duration) string {
	k := url.Values{}
	for name, vs := range q {
		if name != "since" && name != "until" {
			k[name] = vs
		}
	}
	return k.Encode() + "|" + step.String()
}

// A filter set's buckets are read once from the window and then kept up to
// date from what commits: new rows, late commits and replays of old
// records, each counted into its bucket by id (see auditquery.Follower).
// Once they are older than summaryTTL they are read again from the window,
// in the background while the kept counts go on being served, which also
// counts the rows of transactions that were still open when the buckets
// were read and committed later with a lower id. A filter set nobody asked
// for during summaryTTL is read again before it is served (catching up on
// everything committed since would cost more). At most summaryKeys filter
// sets are kept.
const (
	summaryTTL     = 5 * time.Minute
	summaryKeys    = 32
	summaryRefresh = time.Minute // the longest a background read may take
)

// summaryCache keeps the per-bucket counts of each filter set's window, so a
// live view reads only what was committed since its last refresh, not the
// window again.
type summaryCache struct {
	// ctx bounds the background reads (the server's lifetime); nil:
	// context.Background().
	ctx context.Context

	mu      sync.Mutex
	entries map[string]*cachedSummary
}

type cachedSummary struct {
	used time.Time // guarded by summaryCache.mu

	mu         sync.Mutex // held while the entry is read or brought up to date, not during a background read
	window                // what is served
	refreshing bool       // a background read of the window runs
}

// window is a filter set's counts and how they are kept current.
type window struct {
	buckets  map[time.Time]*auditquery.BucketCounts
	since    time.Time // the window start the buckets were read from
	until    time.Time // and its end; zero: open
	follower *auditquery.Follower
	read     time.Time // when the window was read
}

// entry returns the cache entry of key and when it was last asked for
// (zero for a new one), evicting the least recently used entry when the
// cache is full.
func (c *summaryCache) entry(key string, now time.Time) (e *cachedSummary, used time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*cachedSummary{}
	}
	e = c.entries[key]
	if e == nil {
		if len(c.entries) >= summaryKeys {
			var oldest string
			for k, v := range c.entries {
				if oldest == "" || v.used.Before(c.entries[oldest].used) {
					oldest = k
				}
			}
			delete(c.entries, oldest)
		}
		e = &cachedSummary{}
		c.entries[key] = e
	}
	used, e.used = e.used, now
	return e, used
}

// readWindow reads f's window up to the table's highest id and starts a
// follower of the ids above it: each row is counted once.
func readWindow(ctx context.Context, db auditquery.DB, table string, f auditquery.Filter, step time.Duration, now time.Time) (window, error) {
	start, err := auditquery.MaxID(ctx, db, table)
	if err != nil {
		return window{}, err
	}
	read, err := auditquery.SummarizeBucketsUpTo(ctx, db, table, f, step, start)
	if err != nil {
		return window{}, err
	}
	fl, err := auditquery.NewFollower(db, table, f, start)
	if err != nil {
		return window{}, err
	}
	return window{buckets: read, since: f.Since, until: f.Until, follower: fl, read: now}, nil
}

// catchUp counts into w's buckets what committed since its last call.
func (w *window) catchUp(ctx context.Context, db auditquery.DB, table string, f auditquery.Filter, step time.Duration) error {
	f.Since = w.since
	for {
		ids, more, err := w.follower.NextIDs(ctx)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			delta, err := auditquery.SummarizeBucketsOf(ctx, db, table, f, step, ids)
			if err != nil {
				return err
			}
			for t, counts := range delta {
				if b := w.buckets[t]; b != nil {
					b.Add(counts)
				} else {
					w.buckets[t] = counts
				}
			}
		}
		if !more {
			return nil
		}
	}
}

func (c *summaryCache) summarize(ctx context.Context, db auditquery.DB, table, key string, f auditquery.Filter, step time.Duration, now time.Time) (*auditquery.Summary, error) {
	e, used := c.entry(key, now)
	e.mu.Lock()
	defer e.mu.Unlock()

	if e.follower == nil || now.Sub(used) > summaryTTL || f.Since.Before(e.since) || !f.Until.Equal(e.until) {
		w, err := readWindow(ctx, db, table, f, step, now)
		if err != nil {
			return nil, err
		}
		e.window = w
	} else {
		if err := e.catchUp(ctx, db, table, f, step); err != nil {
			e.follower = nil // read the window again next time
			return nil, err
		}
		if now.Sub(e.read) > summaryTTL && !e.refreshing {
			e.refreshing = true
			go c.refresh(e, db, table, f, step, now)
		}
	}
	merged := make(map[time.Time]*auditquery.BucketCounts, len(e.buckets))
	for t, counts := range e.buckets {
		if t.Before(f.Since) {
			delete(e.buckets, t) // the window moved past it
			continue
		}
		merged[t] = counts
	}
	return auditquery.Merge(merged, 8), nil
}

// refresh reads e's window again in the background and then serves it; the
// new follower counts everything above the id the read stopped at.
func (c *summaryCache) refresh(e *cachedSummary, db auditquery.DB, table string, f auditquery.Filter, step time.Duration, now time.Time) {
	base := c.ctx
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithTimeout(base, summaryRefresh)
	defer cancel()
	w, err := readWindow(ctx, db, table, f, step, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refreshing = false
	if err != nil || e.read.After(now) || f.Since.Before(e.since) || !f.Until.Equal(e.until) {
		// Keep serving the kept counts (or the newer read that replaced
		// them); after an error the next request tries again.
		return
	}
	e.window = w
}

// timelineStep picks a bucket width giving at most about 100 bars.
func timelineStep(window time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour} {
		if window/s <= 100 {
			return s
		}
	}
	return 7 * 24 * time.Hour
}

func (v *viewer) integrityState(context.Context, url.Values) (any, error) {
	return v.integrity.state(), nil
}
