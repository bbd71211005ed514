// Package scale fills an audit table with tens of millions of rows inside
// PostgreSQL (INSERT ... SELECT over generate_series: no row crosses the
// network) and measures what issue 12 asks of the schema at that size:
// Export's ingest rate against an empty table, every auditor's lookup, the
// removal of the oldest day and the bytes a row costs with its indexes.
//
// cmd/scale runs it (make bench-scale); BENCHMARKS.md has the figures.
package scale

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// Workload is the shape of the generated history.
type Workload struct {
	// Rows is how many rows Fill writes in all, evenly spread over
	// [Start, End) in time order, as a gateway writes them.
	Rows       int64
	Start, End time.Time
	// Subjects, Tools: distinct callers and tools (at most 20).
	Subjects, Tools int
	// CallsPerTrace and CallsPerSession group consecutive calls.
	CallsPerTrace, CallsPerSession int64
}

// NewWorkload is perDay calls a day from start to end: 5,000 subjects, 20
// tools, 4 calls per trace, 200 per session, 94 % ok, 4 % error, 1 %
// denied, 1 % timeout.
func NewWorkload(perDay int64, start, end time.Time) Workload {
	rows := int64(float64(perDay) * end.Sub(start).Hours() / 24)
	return Workload{Rows: rows, Start: start.UTC(), End: end.UTC(), Subjects: 5000, Tools: 20,
		CallsPerTrace: 4, CallsPerSession: 200}
}

func (w Workload) step() time.Duration { return time.Duration(int64(w.End.Sub(w.Start)) / w.Rows) }

// PerDay is how many rows a day holds.
func (w Workload) PerDay() int64 { return int64(24*time.Hour) / int64(w.step()) }

// TimeOf is the timestamp of row i (0-based).
func (w Workload) TimeOf(i int64) time.Time { return w.Start.Add(time.Duration(i) * w.step()) }

// fillSQL generates rows [$1, $2) of the workload. The values look like the
// exporter's: a UUIDv7-shaped request id (time-ordered, as the middleware
// makes them), the benchmark's arguments and attributes, a 32-hex trace id.
const fillSQL = `
INSERT INTO %[1]s (request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
                   request_args, response_status, error_message, latency_ms, trace_id, span_id,
                   service_name, attributes)
SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
       ts,
       'user-' || (i %% $4) || '@example.com',
       CASE WHEN i %% 10 = 0 THEN 'admin' ELSE 'analyst' END,
       (ARRAY['search_docs','read_file','write_file','list_issues','create_issue','get_pull_request',
              'run_query','send_message','fetch_url','list_files','get_weather','translate_text',
              'summarize','create_event','list_events','lookup_customer','refund_order','deploy_service',
              'rotate_key','transfer_funds'])[1 + (i %% $5) %% 20] || CASE WHEN $5 > 20 THEN '_' || (i %% $5) ELSE '' END,
       (ARRAY['docs','github','db','chat'])[1 + i %% 4],
       jsonb_build_object('query', 'quarterly report ' || (i %% 1000), 'limit', 10, 'fuzzy', i %% 2 = 0),
       st,
       CASE st WHEN 'error' THEN 'backend returned 502 Bad Gateway' WHEN 'timeout' THEN 'context deadline exceeded' END,
       (i * 7) %% 2000,
       md5('t' || (i / $6)),
       substr(h, 17, 16),
       'gateway',
       jsonb_build_object('gen_ai.operation.name', 'execute_tool', 'mcp.method.name', 'tools/call',
                          'mcp.session.id', md5('s' || (i / $7))::uuid::text, 'jsonrpc.request.id', (i %% 1000)::text)
FROM (SELECT i, $3::timestamptz + (i * $8::bigint) * interval '1 microsecond' AS ts, md5(i::text) AS h,
             CASE WHEN i %% 100 < 94 THEN 'ok' WHEN i %% 100 < 98 THEN 'error' WHEN i %% 100 < 99 THEN 'denied' ELSE 'timeout' END AS st
      FROM generate_series($1::bigint, $2::bigint - 1) i) x`

// Fill writes rows [from, to) of w into table, one day of rows per
// statement, creating the partitions of a v2 table first; progress is
// called after each statement.
func Fill(ctx context.Context, pool *pgxpool.Pool, table string, w Workload, from, to int64, partitioned bool, progress func(done int64, elapsed time.Duration)) error {
	if partitioned {
		if _, err := migrations.EnsurePartitionsRange(ctx, pool, w.TimeOf(from), w.TimeOf(to-1).Add(time.Microsecond), migrations.WithTable(table)); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	perDay := w.PerDay()
	q := fmt.Sprintf(fillSQL, pgx.Identifier{table}.Sanitize())
	start := time.Now()
	for lo := from; lo < to; lo += perDay {
		hi := min(lo+perDay, to)
		if _, err := pool.Exec(ctx, q, lo, hi, w.Start, w.Subjects, w.Tools, w.CallsPerTrace, w.CallsPerSession, w.step().Microseconds()); err != nil {
			return fmt.Errorf("scale: fill rows %d..%d: %w", lo, hi, err)
		}
		if progress != nil {
			progress(hi-from, time.Since(start))
		}
	}
	return nil
}

// Lookup is one auditor's question, with the parameters Lookups picks.
type Lookup struct {
	Name string
	SQL  string
	Args []any
}

// Lookups returns the questions of issue 12 against table, with parameters
// that exist in the workload (a row in the middle of the history).
func Lookups(ctx context.Context, pool *pgxpool.Pool, table string, w Workload) ([]Lookup, error) {
	t := pgx.Identifier{table}.Sanitize()
	mid := w.Rows / 2
	var requestID, traceID, session, subject, tool string
	var ts time.Time
	err := pool.QueryRow(ctx, `SELECT request_id::text, "timestamp", trace_id, attributes->>'mcp.session.id', client_subject, tool_name
		FROM `+t+` WHERE "timestamp" >= $1 ORDER BY "timestamp" LIMIT 1`, w.TimeOf(mid)).Scan(&requestID, &ts, &traceID, &session, &subject, &tool)
	if err != nil {
		return nil, fmt.Errorf("scale: pick lookup parameters: %w", err)
	}
	hourAgo := w.End.Add(-time.Hour)
	return []Lookup{
		{"row by request_id", `SELECT * FROM ` + t + ` WHERE request_id = $1`, []any{requestID}},
		{"row by request_id and timestamp", `SELECT * FROM ` + t + ` WHERE request_id = $1 AND "timestamp" = $2`, []any{requestID, ts}},
		{"rows of one trace_id", `SELECT * FROM ` + t + ` WHERE trace_id = $1 ORDER BY "timestamp"`, []any{traceID}},
		{"rows of one mcp.session.id", `SELECT * FROM ` + t + ` WHERE (attributes->>'mcp.session.id') = $1 ORDER BY "timestamp"`, []any{session}},
		{"a subject's last 100 calls", `SELECT * FROM ` + t + ` WHERE client_subject = $1 ORDER BY "timestamp" DESC LIMIT 100`, []any{subject}},
		{"a subject's calls in one day", `SELECT * FROM ` + t + ` WHERE client_subject = $1 AND "timestamp" >= $2 AND "timestamp" < $3 ORDER BY "timestamp"`, []any{subject, ts.Add(-12 * time.Hour), ts.Add(12 * time.Hour)}},
		{"a tool's last 100 calls in the last hour", `SELECT * FROM ` + t + ` WHERE tool_name = $1 AND "timestamp" >= $2 ORDER BY "timestamp" DESC LIMIT 100`, []any{tool, hourAgo}},
		{"errors in the last hour (last 100)", `SELECT * FROM ` + t + ` WHERE response_status = 'error' AND "timestamp" >= $1 ORDER BY "timestamp" DESC LIMIT 100`, []any{hourAgo}},
		{"denied calls in one day", `SELECT count(*) FROM ` + t + ` WHERE response_status = 'denied' AND "timestamp" >= $1 AND "timestamp" < $2`, []any{ts.Add(-12 * time.Hour), ts.Add(12 * time.Hour)}},
		{"calls per tool in the last hour", `SELECT tool_name, count(*) FROM ` + t + ` WHERE "timestamp" >= $1 GROUP BY tool_name`, []any{hourAgo}},
	}, nil
}

// Timing is how long a lookup took over its runs.
type Timing struct {
	Lookup
	Rows             int
	Median, P95, Max time.Duration
	Runs             int
	UsesIndex        bool
	Plan             string
}

// Time runs l once to warm up, then runs times more, and returns the
// timings and whether its plan reads an index.
func Time(ctx context.Context, pool *pgxpool.Pool, l Lookup, runs int) (Timing, error) {
	res := Timing{Lookup: l, Runs: runs}
	plan, err := explain(ctx, pool, l)
	if err != nil {
		return res, err
	}
	res.Plan = plan
	// Every partition that holds rows is read through an index: a Seq Scan
	// that filtered rows out read a partition with rows (empty partitions,
	// such as the ones ahead, are scanned for free).
	res.UsesIndex = strings.Contains(plan, "Index")
	lines := strings.Split(plan, "\n")
	for i, line := range lines {
		if !strings.Contains(line, "Seq Scan on") {
			continue
		}
		for _, next := range lines[i+1 : min(i+4, len(lines))] {
			if strings.Contains(next, "Rows Removed by Filter") {
				res.UsesIndex = false
			}
		}
	}
	var d []time.Duration
	for i := 0; i <= runs; i++ {
		start := time.Now()
		rows, err := pool.Query(ctx, l.SQL, l.Args...)
		if err != nil {
			return res, fmt.Errorf("scale: %s: %w", l.Name, err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("scale: %s: %w", l.Name, err)
		}
		if i > 0 {
			d = append(d, time.Since(start))
		}
		res.Rows = n
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	res.Median, res.P95, res.Max = d[len(d)/2], d[(len(d)*95+99)/100-1], d[len(d)-1]
	return res, nil
}

func explain(ctx context.Context, pool *pgxpool.Pool, l Lookup) (string, error) {
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+l.SQL, l.Args...)
	if err != nil {
		return "", fmt.Errorf("scale: explain %s: %w", l.Name, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("scale: explain %s: %w", l.Name, err)
	}
	return strings.Join(lines, "\n"), nil
}

// Size is what the table and its indexes take on disk.
type Size struct {
	Rows               int64
	Heap, Index, Total int64 // bytes; heap includes TOAST
	Partitions         int
}

// BytesPerRow is Total / Rows.
func (s Size) BytesPerRow() float64 { return float64(s.Total) / float64(s.Rows) }

// Measure returns the table's size (all partitions) and row count.
func Measure(ctx context.Context, pool *pgxpool.Pool, table string) (Size, error) {
	var s Size
	t := pgx.Identifier{table}.Sanitize()
	err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE relkind = 'r'),
			COALESCE(sum(pg_table_size(relid)), 0), COALESCE(sum(pg_indexes_size(relid)), 0)
		FROM pg_partition_tree($1::regclass) p JOIN pg_class c ON c.oid = p.relid`, t).Scan(&s.Partitions, &s.Heap, &s.Index)
	if err != nil {
		return s, fmt.Errorf("scale: size of %s: %w", table, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+t).Scan(&s.Rows); err != nil {
		return s, fmt.Errorf("scale: count %s: %w", table, err)
	}
	s.Total = s.Heap + s.Index
	return s, nil
}
