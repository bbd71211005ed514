package auditquery

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// Summary is what the viewer shows above the calls: the calls per time
// bucket and status, and the busiest tools, subjects and errors.
type Summary struct {
	Timeline []Bucket `json:"timeline"`
	Tools    []Stat   `json:"top_tools"`
	Subjects []Stat   `json:"top_subjects"`
	Errors   []Stat   `json:"top_errors"`
}

// BucketCounts are one time bucket's counts, per status and per tool,
// subject and error: what [SummarizeBuckets] returns so that a caller can
// keep closed buckets and merge them (see [Merge]).
type BucketCounts struct {
	Status   map[string]int64
	Tools    map[string][2]int64 // calls, failed
	Subjects map[string][2]int64
	Errors   map[string][2]int64
}

// SummarizeBuckets is [Summarize] per bucket: one scan of the rows f selects
// (GROUPING SETS per bucket), buckets of width step counted from f.Since.
func SummarizeBuckets(ctx context.Context, db DB, table string, f Filter, step time.Duration) (map[time.Time]*BucketCounts, error) {
	return summarizeBuckets(ctx, db, table, f, step, nil)
}

// SummarizeBucketsUpTo is [SummarizeBuckets] of the rows with an id of at
// most maxID: with a [Follower] started at maxID, which reports the rows
// above it, every row is counted once.
func SummarizeBucketsUpTo(ctx context.Context, db DB, table string, f Filter, step time.Duration, maxID int64) (map[time.Time]*BucketCounts, error) {
	return summarizeBuckets(ctx, db, table, f, step, func(b *builder) { b.add(`id <= ` + b.arg(maxID)) })
}

// SummarizeBucketsOf is [SummarizeBuckets] of the rows among ids (as
// [Follower.NextIDs] returns them) that f selects.
func SummarizeBucketsOf(ctx context.Context, db DB, table string, f Filter, step time.Duration, ids []int64) (map[time.Time]*BucketCounts, error) {
	if len(ids) == 0 {
		return map[time.Time]*BucketCounts{}, nil
	}
	return summarizeBuckets(ctx, db, table, f, step, func(b *builder) { b.add(`id = ANY(` + b.arg(ids) + `::bigint[])`) })
}

// Add adds the counts of c to b.
func (b *BucketCounts) Add(c *BucketCounts) {
	for k, v := range c.Status {
		b.Status[k] += v
	}
	add := func(dst, src map[string][2]int64) {
		for k, v := range src {
			d := dst[k]
			dst[k] = [2]int64{d[0] + v[0], d[1] + v[1]}
		}
	}
	add(b.Tools, c.Tools)
	add(b.Subjects, c.Subjects)
	add(b.Errors, c.Errors)
}

// NewBucketCounts returns empty counts.
func NewBucketCounts() *BucketCounts {
	return &BucketCounts{Status: map[string]int64{}, Tools: map[string][2]int64{}, Subjects: map[string][2]int64{}, Errors: map[string][2]int64{}}
}

func summarizeBuckets(ctx context.Context, db DB, table string, f Filter, step time.Duration, extra func(*builder)) (map[time.Time]*BucketCounts, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if f.Since.IsZero() || step < time.Second {
		return nil, fmt.Errorf("auditquery: summary needs a since bound and a step of at least 1s")
	}
	var b builder
	b.filter(&f)
	if extra != nil {
		extra(&b)
	}
	origin := b.arg(f.Since)
	width := b.arg(step.Seconds())
	sql := `SELECT GROUPING(response_status), GROUPING(tool_name), GROUPING(client_subject),
  bucket, response_status, tool_name, client_subject, errkey, count(*), count(*) FILTER (WHERE response_status <> 'ok')
FROM (SELECT ` + origin + `::timestamptz + floor(extract(epoch FROM "timestamp" - ` + origin + `::timestamptz) / ` + width +
		`::float8) * make_interval(secs => ` + width + `::float8) AS bucket,
    response_status, tool_name, client_subject,
    CASE WHEN response_status <> 'ok' THEN ` + groupColumns[ByError] + ` END AS errkey
  FROM ` + ident(table) + b.clause() + `) s
GROUP BY GROUPING SETS ((bucket, response_status), (bucket, tool_name), (bucket, client_subject), (bucket, errkey))`
	rows, err := db.Query(ctx, sql, b.args...)
	if err != nil {
		return nil, fmt.Errorf("auditquery: summary: %w", err)
	}
	defer rows.Close()
	out := map[time.Time]*BucketCounts{}
	for rows.Next() {
		var (
			gStatus, gTool, gSubject int
			bucket                   time.Time
			status, tool, subject    *string
			errkey                   *string
			calls, failed            int64
		)
		if err := rows.Scan(&gStatus, &gTool, &gSubject, &bucket, &status, &tool, &subject, &errkey, &calls, &failed); err != nil {
			return nil, fmt.Errorf("auditquery: summary: %w", err)
		}
		bucket = bucket.UTC()
		c := out[bucket]
		if c == nil {
			c = NewBucketCounts()
			out[bucket] = c
		}
		switch {
		case gStatus == 0:
			c.Status[deref(status)] += calls
		case gTool == 0:
			c.Tools[deref(tool)] = [2]int64{calls, failed}
		case gSubject == 0:
			c.Subjects[deref(subject)] = [2]int64{calls, failed}
		case errkey != nil:
			c.Errors[*errkey] = [2]int64{calls, failed}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditquery: summary: %w", err)
	}
	return out, nil
}

// Merge adds buckets up into a [Summary] with the top n of each list.
func Merge(buckets map[time.Time]*BucketCounts, n int) *Summary {
	s := &Summary{Timeline: []Bucket{}}
	all := NewBucketCounts()
	for start, c := range buckets {
		for status, calls := range c.Status {
			s.Timeline = append(s.Timeline, Bucket{Start: start, Status: status, Calls: calls})
		}
		all.Add(c)
	}
	tools, subjects, errs := all.Tools, all.Subjects, all.Errors
	slices.SortFunc(s.Timeline, func(a, b Bucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Status, b.Status))
	})
	top := func(m map[string][2]int64) []Stat {
		l := make([]Stat, 0, len(m))
		for k, v := range m {
			l = append(l, Stat{Key: k, Calls: v[0], Errors: v[1], ErrorRate: float64(v[1]) / float64(max(v[0], 1))})
		}
		slices.SortFunc(l, func(a, b Stat) int { return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.Key, b.Key)) })
		return l[:min(len(l), n)]
	}
	s.Tools, s.Subjects, s.Errors = top(tools), top(subjects), top(errs)
	return s
}
