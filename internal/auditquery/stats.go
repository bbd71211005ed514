package auditquery

import (
	"context"
	"fmt"
	"time"
)

// GroupBy names the column stats are grouped by.
type GroupBy string

// The groupings of [Stats].
const (
	ByTool    GroupBy = "tool"
	ByBackend GroupBy = "backend"
	BySubject GroupBy = "subject"
	ByStatus  GroupBy = "status"
	ByError   GroupBy = "error"
)

var groupColumns = map[GroupBy]string{
	ByTool:    "tool_name",
	ByBackend: "backend_name",
	BySubject: "client_subject",
	ByStatus:  "response_status",
	ByError:   "coalesce(left(error_message, 120), attributes->>'error.type', response_status)",
}

// ParseGroupBy checks a grouping name.
func ParseGroupBy(s string) (GroupBy, error) {
	g := GroupBy(s)
	if _, ok := groupColumns[g]; !ok {
		return "", fmt.Errorf("auditquery: group by %q: want tool, backend, subject, status or error", s)
	}
	return g, nil
}

// Stat is one group's figures over the filter's window.
type Stat struct {
	Key       string  `json:"key"`
	Calls     int64   `json:"calls"`
	Errors    int64   `json:"errors"`
	Denials   int64   `json:"denials"`
	Timeouts  int64   `json:"timeouts"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     int64   `json:"max_ms"`
	ErrorRate float64 `json:"error_rate"`
}

// Stats returns per-group calls, errors (status error), denials, timeouts
// and latency percentiles of the rows f selects, the busiest group first,
// at most limit groups (0: all).
func Stats(ctx context.Context, db DB, table string, f Filter, by GroupBy, limit int) ([]Stat, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	col, ok := groupColumns[by]
	if !ok {
		return nil, fmt.Errorf("auditquery: group by %q", by)
	}
	var b builder
	b.filter(&f)
	where := b.clause()
	if by == ByError {
		if where == "" {
			where = " WHERE response_status <> 'ok'"
		} else {
			where += " AND response_status <> 'ok'"
		}
	}
	sql := `SELECT coalesce(` + col + `, ''), count(*),
  count(*) FILTER (WHERE response_status = 'error'),
  count(*) FILTER (WHERE response_status = 'denied'),
  count(*) FILTER (WHERE response_status = 'timeout'),
  coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), 0),
  coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms), 0),
  coalesce(max(latency_ms), 0)
FROM ` + ident(table) + where + ` GROUP BY 1 ORDER BY 2 DESC, 1`
	if limit > 0 {
		sql += " LIMIT " + b.arg(limit)
	}
	rows, err := db.Query(ctx, sql, b.args...)
	if err != nil {
		return nil, fmt.Errorf("auditquery: stats: %w", err)
	}
	defer rows.Close()
	var out []Stat
	for rows.Next() {
		var s Stat
		if err := rows.Scan(&s.Key, &s.Calls, &s.Errors, &s.Denials, &s.Timeouts, &s.P50MS, &s.P99MS, &s.MaxMS); err != nil {
			return nil, fmt.Errorf("auditquery: stats: %w", err)
		}
		if s.Calls > 0 {
			s.ErrorRate = float64(s.Errors) / float64(s.Calls)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditquery: stats: %w", err)
	}
	return out, nil
}

// Bucket is the number of calls of one status in one time bucket.
type Bucket struct {
	Start  time.Time `json:"start"`
	Status string    `json:"status"`
	Calls  int64     `json:"calls"`
}
