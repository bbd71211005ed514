package auditquery

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Windowed scans.
//
// The schema indexes "timestamp" inside daily partitions (a B-tree on
// ("timestamp", tool_name) since migration 000005, a BRIN before) and has no
// index that yields rows in ("timestamp", id) order across partitions. One ORDER BY ... LIMIT over the whole table would
// sort every row of every partition. So a scan runs as a series of
// statements over adjacent time windows, in the scan's direction: each is
// narrowed by partition pruning and the time index and sorts only its own
// rows, and the scan stops as soon as it has Limit rows. A window's width
// adapts to what the previous one held (about windowTarget rows); an empty
// window is skipped by asking for the next timestamp that exists.
//
// The newest-first scan's first window is [upper bound - 1h, upper bound)
// — unbounded above when there is no upper bound, so rows from clocks set
// in the future are not missed; the oldest-first scan's last window is
// unbounded above for the same reason.
const (
	firstWindow = time.Hour
	// firstPageWindow is where a newest-first page starts looking: the
	// newest 5 s hold a page at any realistic rate (10k rows at 2,000
	// calls/s, a top-N sort of little cost), and a quiet trail
	// widens it fourfold per statement.
	firstPageWindow = 5 * time.Second
	minWindow       = time.Minute
	maxWindow       = 32 * 24 * time.Hour
	windowTarget    = 20_000
)

// windowed reports whether q runs as a windowed scan: not when it looks up
// rows by an id that has an index of its own.
func (q *Query) windowed() bool {
	f := &q.Filter
	return f.TraceID == "" && f.RequestID == "" && f.Session == ""
}

func adapt(width time.Duration, rows int) time.Duration {
	switch {
	case rows < windowTarget/2 && width < maxWindow:
		return min(width*2, maxWindow)
	case rows > windowTarget && width > minWindow:
		return max(width/2, minWindow)
	}
	return width
}

func eachWindowed(ctx context.Context, db DB, table string, q Query, fn func(*Row) error) (total int, last Cursor, err error) {
	var buf []Row
	step := func(lo, hi time.Time) (int, error) {
		sub := q
		sub.winLo, sub.winHi = lo, hi
		if q.Limit > 0 {
			// A page: PostgreSQL sorts and stops at the limit (a top-N
			// sort).
			sub.Limit = q.Limit - total
			n, l, err := eachOne(ctx, db, table, sub, fn)
			total += n
			if n > 0 {
				last = l
			}
			return n, err
		}
		// A stream: the window's rows come unsorted, so PostgreSQL sends
		// them as its scan finds them instead of sorting first, and are
		// sorted here. A window too large to hold is read again in halves.
		n, tooBig, err := unorderedWindow(ctx, db, table, sub, &buf, fn)
		if tooBig {
			mid := lo.Add(hi.Sub(lo) / 2)
			if hi.IsZero() || lo.IsZero() || hi.Sub(lo) <= minWindow {
				// Unbounded or already narrow: let PostgreSQL sort it.
				n, l, err := eachOne(ctx, db, table, sub, fn)
				total += n
				if n > 0 {
					last = l
				}
				return n, err
			}
			first, second := [2]time.Time{lo, mid}, [2]time.Time{mid, hi}
			if q.Order == NewestFirst {
				first, second = second, first
			}
			var n1 int
			for _, w := range [][2]time.Time{first, second} {
				sub2 := q
				sub2.winLo, sub2.winHi = w[0], w[1]
				k, l, err := eachOne(ctx, db, table, sub2, fn)
				n1 += k
				total += k
				if k > 0 {
					last = l
				}
				if err != nil {
					return n1, err
				}
			}
			return n1, nil
		}
		total += n
		if n > 0 {
			last = buf[n-1].Cursor()
		}
		return n, err
	}
	done := func() bool { return q.Limit > 0 && total >= q.Limit }
	f := &q.Filter
	width := firstWindow

	if q.Order == NewestFirst {
		if q.Limit > 0 {
			width = firstPageWindow
		}
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
		if q.Limit > 0 && q.Limit <= hintScan {
			// The newest rows by id are the newest by time, roughly: the
			// k-th newest timestamp among the k highest ids that match (a
			// backward scan of the primary key, index-only without
			// filters, at most hintScan rows) bounds a window that surely
			// holds the k newest matching rows (a subset's k-th largest is
			// at most the whole set's). With ids in time order it holds
			// little else.
			if lo, ok, err := newestHint(ctx, db, table, q, q.Limit); err != nil {
				return total, last, err
			} else if ok {
				if !f.Since.IsZero() && lo.Before(f.Since) {
					lo = f.Since
				}
				n, err := step(lo, hi)
				if err != nil || done() || (!f.Since.IsZero() && !lo.After(f.Since)) {
					return total, last, err
				}
				_ = n
				hi = lo
				ref = lo
			}
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
			if q.Limit > 0 {
				width = min(width*4, maxWindow) // fewer than a page so far: look further back, faster
			} else {
				width = adapt(width, n)
			}
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

// maxBuffered is the most rows an unordered window holds before it is read
// again in halves (a variable for tests).
var maxBuffered = 2 * windowTarget

// unorderedWindow reads the window of q without ORDER BY into *buf, sorts
// it in q.Order and hands the rows to fn. tooBig reports that the window had
// more than maxBuffered rows; then nothing was handed to fn.
func unorderedWindow(ctx context.Context, db DB, table string, q Query, buf *[]Row, fn func(*Row) error) (n int, tooBig bool, err error) {
	q.unordered = true
	sql, args := q.SQL(table)
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return 0, false, fmt.Errorf("auditquery: query: %w", err)
	}
	b := (*buf)[:0]
	for rows.Next() {
		if len(b) == maxBuffered {
			rows.Close()
			*buf = b[:0]
			return 0, true, nil
		}
		b = append(b, Row{})
		if err := scanRow(rows, &b[len(b)-1]); err != nil {
			rows.Close()
			return 0, false, fmt.Errorf("auditquery: scan: %w", err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, fmt.Errorf("auditquery: query: %w", err)
	}
	desc := q.Order == NewestFirst
	slices.SortFunc(b, func(x, y Row) int {
		c := cmp.Or(x.Timestamp.Compare(y.Timestamp), cmp.Compare(x.ID, y.ID))
		if desc {
			return -c
		}
		return c
	})
	*buf = b
	for i := range b {
		if err := fn(&b[i]); err != nil {
			return i, false, err
		}
	}
	return len(b), false, nil
}

// hintScan is the most rows (by id, newest first) newestHint reads.
const hintScan = 20_000

// newestHint returns the k-th newest timestamp among the rows of q that
// match, within the hintScan rows of q's time bounds (and cursor) with the
// highest ids; ok is false when fewer than k of them match.
func newestHint(ctx context.Context, db DB, table string, q Query, k int) (time.Time, bool, error) {
	var b builder
	bounds := Filter{Since: q.Filter.Since, Until: q.Filter.Until}
	b.filter(&bounds)
	if !q.After.IsZero() {
		b.add(`("timestamp", id) < (` + b.arg(q.After.Time) + `, ` + b.arg(q.After.ID) + `)`)
	}
	where := b.clause()
	rest := q.Filter
	rest.Since, rest.Until = time.Time{}, time.Time{}
	b.where = nil
	b.filter(&rest)
	var sql string
	if len(b.where) == 0 {
		sql = `SELECT "timestamp" FROM ` + ident(table) + where + ` ORDER BY id DESC LIMIT ` + b.arg(k)
	} else {
		sql = `SELECT "timestamp" FROM (SELECT "timestamp", (` + strings.Join(b.where, " AND ") + `) AS m FROM ` + ident(table) + where +
			` ORDER BY id DESC LIMIT ` + b.arg(hintScan) + `) s WHERE m LIMIT ` + b.arg(k)
	}
	rows, err := db.Query(ctx, sql, b.args...)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("auditquery: newest ids: %w", err)
	}
	defer rows.Close()
	var ts []time.Time
	for rows.Next() {
		var t time.Time
		if err := rows.Scan(&t); err != nil {
			return time.Time{}, false, fmt.Errorf("auditquery: newest ids: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("auditquery: newest ids: %w", err)
	}
	if len(ts) < k {
		return time.Time{}, false, nil
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return b.Compare(a) })
	return ts[k-1], true, nil
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
