package auditquery

import (
	"context"
	"fmt"
	"time"
)

// Windowed scans.
//
// The schema indexes "timestamp" with BRIN inside daily partitions (cheap
// to maintain at any ingest rate) and has no B-tree that yields rows in
// ("timestamp", id) order. One ORDER BY ... LIMIT over the whole table would
// sort every row of every partition. So a scan runs as a series of
// statements over adjacent time windows, in the scan's direction: each is
// narrowed by partition pruning and the BRIN index and sorts only its own
// rows, and the scan stops as soon as it has Limit rows. A window's width
// adapts to what the previous one held (about windowTarget rows); an empty
// window is skipped by asking for the next timestamp that exists.
//
// The newest-first scan's first window is [upper bound - 1h, upper bound)
// — unbounded above when there is no upper bound, so rows from clocks set
// in the future are not missed; the oldest-first scan's last window is
// unbounded above for the same reason.
const (
	firstWindow  = time.Hour
	minWindow    = time.Minute
	maxWindow    = 32 * 24 * time.Hour
	windowTarget = 20_000
)

// windowed reports whether q runs as a windowed scan: not when it looks up
// rows by an id that has an index of its own.
func (q *Query) windowed() bool {
	f := &q.Filter
	return f.TraceID == "" && f.RequestID == "" && f.Session == ""
}

func adapt(width time.Duration, rows int) time.Duration {
	switch {
	case rows < windowTarget/4 && width < maxWindow:
		return min(width*2, maxWindow)
	case rows > windowTarget && width > minWindow:
		return max(width/2, minWindow)
	}
	return width
}

func eachWindowed(ctx context.Context, db DB, table string, q Query, fn func(*Row) error) (total int, last Cursor, err error) {
	step := func(lo, hi time.Time) (int, error) {
		sub := q
		sub.winLo, sub.winHi = lo, hi
		if q.Limit > 0 {
			sub.Limit = q.Limit - total
		}
		n, l, err := eachOne(ctx, db, table, sub, fn)
		total += n
		if n > 0 {
			last = l
		}
		return n, err
	}
	done := func() bool { return q.Limit > 0 && total >= q.Limit }
	f := &q.Filter
	width := firstWindow

	if q.Order == NewestFirst {
		hi := f.Until
		if !q.After.IsZero() {
			if h := q.After.Time.Add(time.Microsecond); hi.IsZero() || h.Before(hi) {
				hi = h
			}
		}
		ref := hi
		if ref.IsZero() {
			ref = time.Now()
		}
		lo := ref.Add(-width)
		var floor time.Time
		floorKnown := false
		for {
			final := false
			// A sliver of window left before since is not worth a statement
			// of its own.
			if !f.Since.IsZero() && lo.Sub(f.Since) < width/4 {
				lo, final = f.Since, true
			}
			if floorKnown && !lo.After(floor) {
				lo, final = floor, true
			}
			n, err := step(lo, hi)
			if err != nil || done() || final {
				return total, last, err
			}
			width = adapt(width, n)
			hi = lo
			if !floorKnown && !f.Since.IsZero() {
				floor, floorKnown = f.Since, true
			}
			if !floorKnown {
				// How far back is there anything at all?
				t, ok, err := minTimestamp(ctx, db, table, f, time.Time{}, hi)
				if err != nil || !ok {
					return total, last, err
				}
				floor, floorKnown = t, true
			}
			lo = hi.Add(-width)
		}
	}

	lo := f.Since
	if !q.After.IsZero() && q.After.Time.After(lo) {
		lo = q.After.Time
	}
	if lo.IsZero() {
		t, ok, err := minTimestamp(ctx, db, table, f, time.Time{}, f.Until)
		if err != nil || !ok {
			return total, last, err
		}
		lo = t
	}
	for {
		hi := lo.Add(width)
		final := false
		switch {
		case !f.Until.IsZero() && !hi.Before(f.Until):
			hi, final = f.Until, true
		case hi.After(time.Now()):
			hi, final = time.Time{}, true // the last window: everything after lo
		}
		n, err := step(lo, hi)
		if err != nil || done() || final {
			return total, last, err
		}
		if n == 0 {
			// Skip the gap: the next window starts at the next row.
			t, ok, err := minTimestamp(ctx, db, table, f, hi, f.Until)
			if err != nil || !ok {
				return total, last, err
			}
			lo, width = t, firstWindow
			continue
		}
		width = adapt(width, n)
		lo = hi
	}
}

// minTimestamp returns the earliest "timestamp" of the rows f selects within
// [from, to) (zero: unbounded); ok is false when there is none.
func minTimestamp(ctx context.Context, db DB, table string, f *Filter, from, to time.Time) (time.Time, bool, error) {
	var b builder
	b.filter(f)
	if !from.IsZero() {
		b.add(`"timestamp" >= ` + b.arg(from))
	}
	if !to.IsZero() {
		b.add(`"timestamp" < ` + b.arg(to))
	}
	rows, err := db.Query(ctx, `SELECT min("timestamp") FROM `+ident(table)+b.clause(), b.args...)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("auditquery: first timestamp: %w", err)
	}
	defer rows.Close()
	var t *time.Time
	if rows.Next() {
		if err := rows.Scan(&t); err != nil {
			return time.Time{}, false, fmt.Errorf("auditquery: first timestamp: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("auditquery: first timestamp: %w", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}
