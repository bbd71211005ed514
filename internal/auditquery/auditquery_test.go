package auditquery

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

const hostile = `x' OR '1'='1'); DROP TABLE audit_log; --`

var base = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// testDB returns a pool on a fresh migrated database with rows: 20 ordinary
// ones (one second apart from base) and one whose every text field is the
// hostile string.
func testDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewMigratedDatabase(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	statuses := []string{"ok", "ok", "error", "denied", "timeout"}
	for i := 0; i < 20; i++ {
		var errMsg any
		if statuses[i%5] != "ok" {
			errMsg = fmt.Sprintf("Backend said No (%d)", i)
		}
		insert(t, pool, fmt.Sprintf("00000000-0000-7000-8000-%012d", i), base.Add(time.Duration(i)*time.Second),
			fmt.Sprintf("user%d", i%3), []string{"analyst", "admin,auditor"}[i%2], fmt.Sprintf("tool_%d", i%4),
			fmt.Sprintf("backend%d", i%2), fmt.Sprintf(`{"n": %d, "path": "/p/%d"}`, i, i%2), statuses[i%5], errMsg,
			int64(i*10), fmt.Sprintf("%032x", i), fmt.Sprintf(`{"mcp.session.id": "s%d", "error.type": "E%d"}`, i%2, i%5))
	}
	hostileJSON, _ := json.Marshal(map[string]string{"mcp.session.id": hostile, "q": hostile})
	insert(t, pool, "00000000-0000-7000-8000-999999999999", base.Add(-time.Hour), hostile, hostile, hostile, hostile,
		string(hostileJSON), hostile, hostile, 1, fmt.Sprintf("%032x", 999), string(hostileJSON))
	return pool
}

func insert(t *testing.T, pool *pgxpool.Pool, reqID string, ts time.Time, subject, role, tool, backend, args, status string, errMsg any, latency int64, trace, attrs string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role,
		tool_name, backend_name, request_args, response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes)
		VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8,$9,$10,$11,'00f067aa0ba902b7','gw',$12::jsonb)`,
		reqID, ts, subject, role, tool, backend, args, status, errMsg, latency, trace, attrs)
	if err != nil {
		t.Fatal(err)
	}
}

func collect(t *testing.T, pool *pgxpool.Pool, q Query) []Row {
	t.Helper()
	var out []Row
	_, _, err := Each(context.Background(), pool, "audit_log", q, func(r *Row) error {
		out = append(out, *r)
		return nil
	})
	if err != nil {
		t.Fatalf("Each(%+v): %v", q.Filter, err)
	}
	return out
}

func TestFilters(t *testing.T) {
	pool := testDB(t)
	cases := []struct {
		name string
		f    Filter
		want int
	}{
		{"none", Filter{}, 21},
		{"since", Filter{Since: base.Add(10 * time.Second)}, 10},
		{"until", Filter{Until: base.Add(5 * time.Second)}, 6}, // 5 + the hostile row an hour earlier
		{"since+until", Filter{Since: base.Add(2 * time.Second), Until: base.Add(4 * time.Second)}, 2},
		{"subject", Filter{Subject: "user1"}, 7},
		{"role exact", Filter{Role: "analyst"}, 10},
		{"role in list", Filter{Role: "auditor"}, 10},
		{"role partial is no match", Filter{Role: "audit"}, 0},
		{"tool exact", Filter{Tool: "tool_1"}, 5},
		{"tool glob *", Filter{Tool: "tool_*"}, 20},
		{"tool glob ?", Filter{Tool: "tool?1"}, 5},
		{"tool _ is literal", Filter{Tool: "tool__"}, 0},
		{"backend", Filter{Backend: "backend0"}, 10},
		{"status", Filter{Statuses: []string{"error"}}, 4},
		{"statuses", Filter{Statuses: []string{"error", "denied"}}, 8},
		{"trace", Filter{TraceID: fmt.Sprintf("%032X", 7)}, 1},
		{"session", Filter{Session: "s1"}, 10},
		{"request id", Filter{RequestID: "00000000-0000-7000-8000-000000000003"}, 1},
		{"error text, any case", Filter{Error: "said no"}, 12},
		{"error % is literal", Filter{Error: "%"}, 0},
		{"args containment", Filter{Args: json.RawMessage(`{"path": "/p/1"}`)}, 10},
		{"args containment two keys", Filter{Args: json.RawMessage(`{"path": "/p/1", "n": 3}`)}, 1},
		{"combined", Filter{Subject: "user0", Statuses: []string{"ok"}, Backend: "backend0"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := collect(t, pool, Query{Filter: c.f})
			if len(got) != c.want {
				t.Fatalf("%d rows, want %d", len(got), c.want)
			}
		})
	}
}

// TestSQLInjection puts the hostile string into every filter: each must
// match the one row that holds it literally (or nothing, or be refused by
// Validate), and the table must survive.
func TestSQLInjection(t *testing.T) {
	pool := testDB(t)
	hostileArgs, _ := json.Marshal(map[string]string{"q": hostile})
	cases := []struct {
		name    string
		f       Filter
		want    int
		invalid bool
	}{
		{"subject", Filter{Subject: hostile}, 1, false},
		{"role", Filter{Role: hostile}, 1, false},
		{"tool", Filter{Tool: hostile}, 1, false},
		{"backend", Filter{Backend: hostile}, 1, false},
		{"status", Filter{Statuses: []string{hostile}}, 1, false},
		{"statuses", Filter{Statuses: []string{hostile, "nope"}}, 1, false},
		{"session", Filter{Session: hostile}, 1, false},
		{"error", Filter{Error: hostile}, 1, false},
		{"args", Filter{Args: hostileArgs}, 1, false},
		{"trace", Filter{TraceID: hostile}, 0, true},
		{"request id", Filter{RequestID: hostile}, 0, true},
		{"args not JSON", Filter{Args: json.RawMessage(hostile)}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []Row
			_, _, err := Each(context.Background(), pool, "audit_log", Query{Filter: c.f}, func(r *Row) error {
				got = append(got, *r)
				return nil
			})
			if c.invalid {
				if err == nil {
					t.Fatal("hostile value accepted, want a validation error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.want {
				t.Fatalf("%d rows, want %d", len(got), c.want)
			}
			if got[0].RequestID != "00000000-0000-7000-8000-999999999999" {
				t.Fatalf("matched %s, want the hostile row", got[0].RequestID)
			}
		})
	}
	// A cursor and a table name cannot carry SQL either.
	if _, err := ParseCursor("1-2); DROP TABLE audit_log; --"); err == nil {
		t.Error("hostile cursor parsed")
	}
	_, _, err := Each(context.Background(), pool, `audit_log"; DROP TABLE audit_log; --`, Query{}, func(*Row) error { return nil })
	if err == nil {
		t.Error("hostile table name: want an error (no such table)")
	}
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 21 {
		t.Fatalf("audit_log after the attempts: %d rows, %v", n, err)
	}
}

func TestKeysetPaging(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	for _, order := range []Order{NewestFirst, OldestFirst} {
		all := collect(t, pool, Query{Order: order})
		var paged []Row
		q := Query{Order: order, Limit: 4}
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			rows, next, err := Page(ctx, pool, "audit_log", q)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, rows...)
			if next.IsZero() {
				break
			}
			c, err := ParseCursor(next.String())
			if err != nil || !c.Time.Equal(next.Time) || c.ID != next.ID {
				t.Fatalf("cursor %v does not round-trip: %v, %v", next, c, err)
			}
			q.After = c
		}
		if len(paged) != len(all) {
			t.Fatalf("order %d: paged %d rows, want %d", order, len(paged), len(all))
		}
		for i := range all {
			if paged[i].ID != all[i].ID {
				t.Fatalf("order %d: row %d is id %d, want %d", order, i, paged[i].ID, all[i].ID)
			}
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			less := a.Timestamp.Before(b.Timestamp) || (a.Timestamp.Equal(b.Timestamp) && a.ID < b.ID)
			if (order == OldestFirst) != less {
				t.Fatalf("order %d: rows %d and %d out of order", order, i-1, i)
			}
		}
	}
	sql, _ := (&Query{Limit: 5, After: Cursor{Time: base, ID: 3}}).SQL("audit_log")
	if want := `("timestamp", id) < ($1, $2)`; !strings.Contains(sql, want) || strings.Contains(sql, "OFFSET") {
		t.Fatalf("SQL %q: want keyset %q and no OFFSET", sql, want)
	}
}

// TestFollowerLateCommit: a row whose id is below one already reported
// (its transaction committed later) is still reported, once.
func TestFollowerLateCommit(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	start, err := MaxID(ctx, pool, "audit_log")
	if err != nil {
		t.Fatal(err)
	}
	fl, err := NewFollower(pool, "audit_log", Filter{Tool: "late_*"}, start)
	if err != nil {
		t.Fatal(err)
	}
	// Transaction A takes an id first and commits last.
	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx)
	if _, err := txA.Exec(ctx, `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name,
		backend_name, response_status, latency_ms) VALUES ('00000000-0000-7000-8000-00000000aaaa', now(), 'a', 'r', 'late_a', 'b', 'ok', 1)`); err != nil {
		t.Fatal(err)
	}
	insert(t, pool, "00000000-0000-7000-8000-00000000bbbb", base, "b", "r", "late_b", "b", `{}`, "ok", nil, 1, fmt.Sprintf("%032x", 1), `{}`)
	insert(t, pool, "00000000-0000-7000-8000-00000000cccc", base, "c", "r", "other", "b", `{}`, "ok", nil, 1, fmt.Sprintf("%032x", 1), `{}`)
	var seen []string
	poll := func() {
		t.Helper()
		if _, _, err := fl.Poll(ctx, func(r *Row) error { seen = append(seen, r.Tool); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	poll()
	if fmt.Sprint(seen) != "[late_b]" {
		t.Fatalf("first poll saw %v, want [late_b]", seen)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	poll()
	poll()
	if fmt.Sprint(seen) != "[late_b late_a]" {
		t.Fatalf("after the late commit saw %v, want [late_b late_a]", seen)
	}
	if len(fl.pending) != 0 {
		t.Fatalf("%d ids still pending", len(fl.pending))
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"15m":                  now.Add(-15 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"1d12h":                now.Add(-36 * time.Hour),
		"2026-11-30T08:00:00Z": time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		"2026-11-30":           time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "5x", "1.5d"} {
		if _, err := ParseTime(bad, now); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestStatsAndTimeline(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	st, err := Stats(ctx, pool, "audit_log", Filter{Since: base}, ByBackend, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Calls != 10 || st[0].Errors+st[1].Errors != 4 || st[0].Denials+st[1].Denials != 4 {
		t.Fatalf("stats by backend: %+v", st)
	}
	if st[0].P50MS <= 0 || st[0].P99MS < st[0].P50MS {
		t.Fatalf("percentiles: %+v", st[0])
	}
	buckets, err := SummarizeBuckets(ctx, pool, "audit_log", Filter{Since: base, Until: base.Add(time.Minute)}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range Merge(buckets, 3).Timeline {
		total += b.Calls
		if b.Start.Before(base) || b.Start.Sub(base)%(10*time.Second) != 0 {
			t.Fatalf("bucket %v not on the 10 s grid from %v", b.Start, base)
		}
	}
	if total != 20 {
		t.Fatalf("timeline counts %d calls, want 20", total)
	}
}

func TestOCSF(t *testing.T) {
	pool := testDB(t)
	rows := collect(t, pool, Query{Filter: Filter{Statuses: []string{"denied"}}, Limit: 1})
	ev := rows[0].OCSF("v1", "audit_log")
	b, _ := json.Marshal(ev)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["class_uid"].(float64) != 6003 || m["type_uid"].(float64) != 600399 || m["status_id"].(float64) != 2 {
		t.Fatalf("OCSF event: %s", b)
	}
	for _, k := range []string{"actor", "api", "src_endpoint", "time", "metadata", "status_id"} {
		if _, ok := m[k]; !ok {
			t.Errorf("OCSF event lacks %s: %s", k, b)
		}
	}
	api := m["api"].(map[string]any)
	if api["operation"] != rows[0].Tool || api["request"].(map[string]any)["uid"] != rows[0].RequestID {
		t.Fatalf("api: %v", api)
	}
	if m["actor"].(map[string]any)["session"].(map[string]any)["uid"] == "" {
		t.Fatal("no session uid")
	}
}

// summaryOracle is what a summary of f must say, counted in Go from the rows
// themselves: calls per bucket of width step from f.Since and status, and
// the top n tools, subjects and errors (an error is keyed by the first 120
// characters of its message, else its error.type, else its status).
func summaryOracle(t *testing.T, pool *pgxpool.Pool, f Filter, step time.Duration, n int) *Summary {
	t.Helper()
	type slot struct {
		start  time.Time
		status string
	}
	timeline := map[slot]int64{}
	tools, subjects, errs := map[string][2]int64{}, map[string][2]int64{}, map[string][2]int64{}
	count := func(m map[string][2]int64, k string, failed bool) {
		c := m[k]
		c[0]++
		if failed {
			c[1]++
		}
		m[k] = c
	}
	for _, r := range collect(t, pool, Query{Filter: f}) {
		start := f.Since.UTC().Add(r.Timestamp.Sub(f.Since) / step * step)
		timeline[slot{start, r.Status}]++
		failed := r.Status != "ok"
		count(tools, r.Tool, failed)
		count(subjects, r.Subject, failed)
		if failed {
			key := r.Status
			switch {
			case r.ErrorMessage != nil:
				key = string([]rune(*r.ErrorMessage)[:min(120, len([]rune(*r.ErrorMessage)))])
			case r.ErrorType != nil:
				key = *r.ErrorType
			}
			count(errs, key, true)
		}
	}
	s := &Summary{Timeline: []Bucket{}}
	for k, calls := range timeline {
		s.Timeline = append(s.Timeline, Bucket{Start: k.start, Status: k.status, Calls: calls})
	}
	slices.SortFunc(s.Timeline, func(a, b Bucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Status, b.Status))
	})
	top := func(m map[string][2]int64) []Stat {
		l := []Stat{}
		for k, v := range m {
			l = append(l, Stat{Key: k, Calls: v[0], Errors: v[1], ErrorRate: float64(v[1]) / float64(v[0])})
		}
		slices.SortFunc(l, func(a, b Stat) int { return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.Key, b.Key)) })
		return l[:min(len(l), n)]
	}
	s.Tools, s.Subjects, s.Errors = top(tools), top(subjects), top(errs)
	return s
}

// TestSummarize: the one-scan summary says what the rows say.
func TestSummarize(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	f := Filter{Since: base, Until: base.Add(time.Minute)}
	buckets, err := SummarizeBuckets(ctx, pool, "audit_log", f, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, want := Merge(buckets, 3), summaryOracle(t, pool, f, 10*time.Second, 3)
	if fmt.Sprint(s.Timeline) != fmt.Sprint(want.Timeline) {
		t.Fatalf("timeline\n got %v\nwant %v", s.Timeline, want.Timeline)
	}
	for by, got := range map[GroupBy][2][]Stat{ByTool: {s.Tools, want.Tools}, BySubject: {s.Subjects, want.Subjects}, ByError: {s.Errors, want.Errors}} {
		if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
			t.Errorf("top %s\n got %v\nwant %v", by, got[0], got[1])
		}
	}
	if len(s.Errors) == 0 || len(s.Tools) != 3 {
		t.Fatalf("summary: %+v", s)
	}
}

// TestSummarizeBuckets: merging per-bucket counts says what the rows say,
// also when the buckets come from two scans of adjacent ranges.
func TestSummarizeBuckets(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	f := Filter{Since: base, Until: base.Add(time.Minute)}
	want := summaryOracle(t, pool, f, 10*time.Second, 3)
	all, err := SummarizeBuckets(ctx, pool, "audit_log", f, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first, second := f, f
	first.Until, second.Since = base.Add(10*time.Second), base.Add(10*time.Second)
	a, err := SummarizeBuckets(ctx, pool, "audit_log", first, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SummarizeBuckets(ctx, pool, "audit_log", second, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range b {
		a[k] = v
	}
	for _, got := range []*Summary{Merge(all, 3), Merge(a, 3)} {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("merged\n got %+v\nwant %+v", got, want)
		}
	}
}
