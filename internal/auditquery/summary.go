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

// Summarize computes the [Summary] of the rows f selects in ONE scan
// (GROUPING SETS: the timeline, tools, subjects and errors are four
// groupings of the same rows), with buckets of width step from f.Since
// (which must be set) and the top n of each list. Errors are grouped by
// message (else error type, else status) over the calls that did not
// succeed.
func Summarize(ctx context.Context, db DB, table string, f Filter, step time.Duration, n int) (*Summary, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if f.Since.IsZero() {
		return nil, fmt.Errorf("auditquery: summary needs a since bound")
	}
	if step < time.Second {
		return nil, fmt.Errorf("auditquery: summary step %v: want at least 1s", step)
	}
	var b builder
	b.filter(&f)
	origin := b.arg(f.Since)
	width := b.arg(step.Seconds())
	sql := `SELECT GROUPING(bucket, response_status), GROUPING(tool_name), GROUPING(client_subject),
  bucket, response_status, tool_name, client_subject, errkey, count(*), count(*) FILTER (WHERE response_status <> 'ok')
FROM (SELECT ` + origin + `::timestamptz + floor(extract(epoch FROM "timestamp" - ` + origin + `::timestamptz) / ` + width +
		`::float8) * make_interval(secs => ` + width + `::float8) AS bucket,
    response_status, tool_name, client_subject,
    CASE WHEN response_status <> 'ok' THEN ` + groupColumns[ByError] + ` END AS errkey
  FROM ` + ident(table) + b.clause() + `) s
GROUP BY GROUPING SETS ((bucket, response_status), (tool_name), (client_subject), (errkey))`
	rows, err := db.Query(ctx, sql, b.args...)
	if err != nil {
		return nil, fmt.Errorf("auditquery: summary: %w", err)
	}
	defer rows.Close()
	s := &Summary{Timeline: []Bucket{}, Tools: []Stat{}, Subjects: []Stat{}, Errors: []Stat{}}
	for rows.Next() {
		var (
			gTime, gTool, gSubject int
			bucket                 *time.Time
			status, tool, subject  *string
			errkey                 *string
			calls, failed          int64
		)
		if err := rows.Scan(&gTime, &gTool, &gSubject, &bucket, &status, &tool, &subject, &errkey, &calls, &failed); err != nil {
			return nil, fmt.Errorf("auditquery: summary: %w", err)
		}
		st := Stat{Calls: calls, Errors: failed, ErrorRate: float64(failed) / float64(max(calls, 1))}
		switch {
		case gTime == 0:
			s.Timeline = append(s.Timeline, Bucket{Start: bucket.UTC(), Status: deref(status), Calls: calls})
		case gTool == 0:
			st.Key = deref(tool)
			s.Tools = append(s.Tools, st)
		case gSubject == 0:
			st.Key = deref(subject)
			s.Subjects = append(s.Subjects, st)
		case errkey != nil:
			st.Key = *errkey
			s.Errors = append(s.Errors, st)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditquery: summary: %w", err)
	}
	slices.SortFunc(s.Timeline, func(a, b Bucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Status, b.Status))
	})
	top := func(l []Stat) []Stat {
		slices.SortFunc(l, func(a, b Stat) int { return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.Key, b.Key)) })
		return l[:min(len(l), n)]
	}
	s.Tools, s.Subjects, s.Errors = top(s.Tools), top(s.Subjects), top(s.Errors)
	return s, nil
}
