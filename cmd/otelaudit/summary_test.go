package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

// TestSummaryCacheFollowsCommits: a live summary, read from the window once,
// is kept up to date from what commits — new calls, the replay of an old call
// into an earlier bucket, a row whose transaction took its id before another
// and committed after it — and after each step equals a fresh Summarize of
// the same window, for an unfiltered and a filtered view; rows before the
// window count nowhere.
func TestSummaryCacheFollowsCommits(t *testing.T) {
	url, a := filledDB(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	since := time.Now().Add(-time.Hour).Truncate(time.Minute)
	views := map[string]auditquery.Filter{
		"all":   {Since: since},
		"alice": {Since: since, Subject: "alice"},
	}
	var c summaryCache
	check := func(step string) {
		t.Helper()
		for key, f := range views {
			got, err := c.summarize(ctx, pool, "audit_log", key, f, time.Minute, time.Now())
			if err != nil {
				t.Fatalf("%s, %s: %v", step, key, err)
			}
			if want := freshSummary(t, pool, f); fmt.Sprint(got) != want {
				t.Errorf("%s, %s view:\n got  %+v\n want %+v", step, key, got, want)
			}
		}
	}
	total := func(key string) int64 {
		t.Helper()
		got, err := c.summarize(ctx, pool, "audit_log", key, views[key], time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, b := range got.Timeline {
			n += b.Calls
		}
		return n
	}

	check("primed")
	before := total("all")

	now := time.Now()
	a.record(t,
		instrumentation.Call{Start: now, Subject: "alice", Role: "analyst", Tool: "search_docs", Backend: "docs", Latency: time.Millisecond},
		instrumentation.Call{Start: now, Subject: "bob", Role: "analyst", Tool: "fs.read_file", Backend: "fs", Latency: time.Millisecond},
	)
	check("two new calls")

	// A spool replaying an outage: an old call, into an earlier bucket.
	a.record(t, instrumentation.Call{Start: now.Add(-40 * time.Minute), Subject: "alice", Role: "analyst",
		Tool: "github.list_repos", Backend: "github", Latency: time.Millisecond})
	check("a replayed call")
	// And one older than the window.
	a.record(t, instrumentation.Call{Start: now.Add(-3 * time.Hour), Subject: "alice", Role: "analyst",
		Tool: "github.list_repos", Backend: "github", Latency: time.Millisecond})
	check("a call before the window")

	// Transaction A takes its id first and commits last.
	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txA.Rollback(ctx) }()
	if _, err := txA.Exec(ctx, `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name,
		backend_name, response_status, latency_ms) VALUES ('00000000-0000-7000-8000-00000000aaaa', now(), 'alice', 'r', 'late', 'b', 'error', 1)`); err != nil {
		t.Fatal(err)
	}
	a.record(t, instrumentation.Call{Start: time.Now(), Subject: "carol", Role: "analyst", Tool: "search_docs", Backend: "docs", Latency: time.Millisecond})
	check("a call committed while an earlier id is open")
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	check("the late commit")

	if got, want := total("all"), before+5; got != want {
		t.Errorf("calls in the window: %d, want %d (the %d before and five since)", got, want, before)
	}
}

// TestSummaryCacheRefreshesInTheBackground: a row whose transaction took its
// id before the window was read and committed after it is not among the ids
// the follower reports; once the counts are older than summaryTTL the window
// is read again in the background, the kept counts are served meanwhile
// (the request does not wait for the read), and then the row is counted.
func TestSummaryCacheRefreshesInTheBackground(t *testing.T) {
	url, a := filledDB(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	f := auditquery.Filter{Since: time.Now().Add(-time.Hour).Truncate(time.Minute)}
	fresh := func() string { return freshSummary(t, pool, f) }
	var c summaryCache
	t0 := time.Now()
	at := func(d time.Duration) string {
		t.Helper()
		got, err := c.summarize(ctx, pool, "audit_log", "all", f, time.Minute, t0.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(got)
	}

	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txA.Rollback(ctx) }()
	if _, err := txA.Exec(ctx, `INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name,
		backend_name, response_status, latency_ms) VALUES ('00000000-0000-7000-8000-00000000abcd', now(), 'dave', 'r', 'slow_tx', 'b', 'ok', 1)`); err != nil {
		t.Fatal(err)
	}
	a.record(t, instrumentation.Call{Start: time.Now(), Subject: "carol", Role: "analyst", Tool: "search_docs", Backend: "docs", Latency: time.Millisecond})
	if got := at(0); got != fresh() {
		t.Fatalf("primed: %s, want %s", got, fresh())
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if at(3*time.Minute) == fresh() {
		t.Fatal("the row committed after the read with a lower id was counted without a new read: the premise of this test no longer holds")
	}
	if at(summaryTTL+time.Minute) == fresh() {
		t.Fatal("the request that found the counts stale waited for the new read")
	}
	deadline := time.Now().Add(10 * time.Second)
	for at(summaryTTL+time.Minute+time.Second) != fresh() {
		if time.Now().After(deadline) {
			t.Fatalf("not counted 10 s after the background read began:\n got  %s\n want %s", at(summaryTTL+time.Minute+time.Second), fresh())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freshSummary is the summary of f read from the window now, with no cache.
func freshSummary(t *testing.T, pool *pgxpool.Pool, f auditquery.Filter) string {
	t.Helper()
	buckets, err := auditquery.SummarizeBuckets(context.Background(), pool, "audit_log", f, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(auditquery.Merge(buckets, 8))
}
