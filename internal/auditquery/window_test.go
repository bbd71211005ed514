package auditquery

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestWindowedScan: the windowed scan returns exactly what one statement
// over the whole table returns, in the same order, for both directions,
// with and without bounds and cursors, across rows from skewed clocks
// (1970, 2100) and gaps of years.
func TestWindowedScan(t *testing.T) {
	pool := testDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for i, ts := range []time.Time{
		time.Unix(0, 0).UTC(), time.Date(2000, 6, 1, 0, 0, 0, 0, time.UTC), now.Add(-72 * time.Hour),
		now.Add(-2 * time.Hour), now.Add(-90 * time.Minute), now.Add(-time.Minute), now, now, now.Add(time.Hour),
		time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		insert(t, pool, fmt.Sprintf("00000000-0000-7000-9000-%012d", i), ts, "w", "r", "win", "b", `{}`, "ok", nil, 1,
			fmt.Sprintf("%032x", 5000+i), `{}`)
	}
	one := func(q Query) []int64 {
		var ids []int64
		if _, _, err := eachOne(ctx, pool, "audit_log", q, func(r *Row) error { ids = append(ids, r.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	windowed := func(q Query) []int64 {
		var ids []int64
		if !q.windowed() {
			t.Fatal("query would not be windowed")
		}
		if _, _, err := Each(ctx, pool, "audit_log", q, func(r *Row) error { ids = append(ids, r.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	filters := []Filter{
		{}, {Tool: "win"}, {Since: now.Add(-3 * time.Hour)}, {Until: now.Add(-time.Hour)},
		{Since: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), Until: now.Add(30 * time.Minute)}, {Subject: "nobody"},
	}
	for _, buffered := range []int{maxBuffered, 2} {
		maxBuffered = buffered // 2: every unordered window is too big, read again in halves
		for fi, f := range filters {
			for _, order := range []Order{NewestFirst, OldestFirst} {
				for _, limit := range []int{0, 1, 3, 7} {
					q := Query{Filter: f, Order: order, Limit: limit}
					want, got := one(q), windowed(q)
					if fmt.Sprint(want) != fmt.Sprint(got) {
						t.Fatalf("filter %d order %d limit %d:\n windowed %v\n     want %v", fi, order, limit, got, want)
					}
				}
				// Paging through with cursors gives the whole result.
				all := one(Query{Filter: f, Order: order})
				var paged []int64
				q := Query{Filter: f, Order: order, Limit: 4}
				for range 20 {
					rows, next, err := Page(ctx, pool, "audit_log", q)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range rows {
						paged = append(paged, r.ID)
					}
					if next.IsZero() {
						break
					}
					q.After = next
				}
				if fmt.Sprint(all) != fmt.Sprint(paged) {
					t.Fatalf("filter %d order %d: paged %v, want %v", fi, order, paged, all)
				}
			}
		}
	}
	maxBuffered = 2 * windowTarget
}
