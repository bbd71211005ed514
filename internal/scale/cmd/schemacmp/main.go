// Command schemacmp compares the index set of the latest migration with the
// one before it, side by side in one run on the same rows: it fills one
// database at each version with the same generated rows (INSERT with the
// indexes in place), times each auditor's lookup on both in turn (with the
// indexes each plan reads), compares bytes per row, migrates the older
// database in place to time the upgrade, and times Export into an empty
// table of each version in interleaved rounds.
//
//	go run ./internal/scale/cmd/schemacmp -days 7.5 -plans schemacmp-plans.txt
//
// With -reuse it measures an existing filled database (such as make
// bench-scale's) at the previous version, migrates it in place and measures
// it again.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/internal/scale"
	"github.com/sentinel-gateway/otelaudit/internal/scale/cmd/internal/benchutil"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

func main() {
	admin := flag.String("admin", benchutil.EnvOr("OTELAUDIT_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "administrative connection URL of the server")
	dbName := flag.String("db", "otelaudit_schemacmp", "database to fill (dropped and created again; dropped at the end unless -keep)")
	keep := flag.Bool("keep", false, "leave the filled database in place")
	perDay := flag.Int64("per-day", 666_667, "calls per day")
	days := flag.Float64("days", 3, "days of history, ending now")
	rounds := flag.Int("rounds", 6, "Export rounds per table")
	batches := flag.Int("batches", 20, "batches of 1,024 records per Export round")
	runs := flag.Int("runs", 15, "timed runs per lookup")
	plans := flag.String("plans", "", "write each lookup's EXPLAIN ANALYZE (both versions) to this file")
	reuse := flag.String("reuse", "", "instead: measure the lookups and size of this existing database at the previous version, migrate it in place to the latest and measure again (with -start and -end of its workload)")
	startFlag := flag.String("start", "", "with -reuse: when the database's workload began (RFC 3339)")
	endFlag := flag.String("end", "", "with -reuse: when it ended (RFC 3339); \"the last hour\" ends here")
	flag.Parse()
	log.SetFlags(log.Ltime)
	ctx := context.Background()
	latest := migrations.Latest()
	prev := latest - 1

	now := time.Now().UTC()
	start := now.Add(-time.Duration(*days * float64(24*time.Hour)))
	w := scale.NewWorkload(*perDay, start, now)
	out := os.Stdout
	if *reuse != "" {
		start, err1 := time.Parse(time.RFC3339, *startFlag)
		end, err2 := time.Parse(time.RFC3339, *endFlag)
		if err1 != nil || err2 != nil {
			log.Fatalf("-reuse needs -start and -end (RFC 3339): %v %v", err1, err2)
		}
		reuseRun(ctx, out, benchutil.WithDB(*admin, *reuse), scale.NewWorkload(*perDay, start, end), *runs, *plans)
		return
	}
	fmt.Fprintf(out, "# schemacmp %s: v%d vs v%d, %d rows over %.1f days; load average before: %s\n\n", now.Format(time.RFC3339), prev, latest, w.Rows, *days, benchutil.LoadAvg())

	var planOut io.Writer = io.Discard
	if *plans != "" {
		f, err := os.Create(*plans)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		planOut = f
	}

	// Two databases, one per version, filled with the same rows (the
	// workload is deterministic) the way a writer fills them: by INSERT with
	// the indexes in place, so every index has the page splits it has in
	// production.
	dbs := []string{*dbName + "_prev", *dbName + "_latest"}
	pools := make([]*pgxpool.Pool, 2)
	for i, v := range []uint{prev, latest} {
		pools[i] = benchutil.FreshDB(ctx, *admin, dbs[i], v)
		if !*keep {
			defer benchutil.DropDB(ctx, *admin, dbs[i])
		}
		defer pools[i].Close()
		log.Printf("filling %s (v%d): %d rows", dbs[i], v, w.Rows)
		t0 := time.Now()
		if err := scale.Fill(ctx, pools[i], migrations.DefaultTable, w, 0, w.Rows, true, func(done int64, el time.Duration) {
			log.Printf("  %d rows (%.0f rows/s)", done, float64(done)/el.Seconds())
		}); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(out, "fill v%d: %v (%.0f rows/s, INSERT ... SELECT generate_series, one day per statement, indexes in place)\n", v, time.Since(t0).Round(time.Second), float64(w.Rows)/time.Since(t0).Seconds())
		vacuum(ctx, pools[i])
	}
	fmt.Fprintln(out)

	lookups, err := scale.Lookups(ctx, pools[0], migrations.DefaultTable, w)
	if err != nil {
		log.Fatal(err)
	}
	lookups = append(lookups, extraLookups(w)...)

	// Lookups: each one on v-prev then on v-latest, so load drift hits both.
	log.Printf("lookups")
	timings := [2][]scale.Timing{}
	for _, l := range lookups {
		for i, v := range []uint{prev, latest} {
			t, err := scale.Time(ctx, pools[i], l, *runs)
			if err != nil {
				log.Fatal(err)
			}
			timings[i] = append(timings[i], t)
			fmt.Fprintf(planOut, "-- v%d: %s\n%s\n%s\n\n", v, l.Name, l.SQL, t.Plan)
		}
	}
	fmt.Fprintf(out, "## Lookups (median of %d runs after one warm-up, the two versions in turn; the indexes each plan reads)\n\n| question | rows | v%d median | v%d p95 | v%d index | v%d median | v%d p95 | v%d index |\n| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |\n",
		*runs, prev, prev, prev, latest, latest, latest)
	for i := range lookups {
		a, b := timings[0][i], timings[1][i]
		if a.Rows != b.Rows {
			log.Fatalf("%s: %d rows on v%d, %d on v%d", a.Name, a.Rows, prev, b.Rows, latest)
		}
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", a.Name, b.Rows, benchutil.MS(a.Median), benchutil.MS(a.P95), indexes(a.Plan), benchutil.MS(b.Median), benchutil.MS(b.P95), indexes(b.Plan))
	}

	sizes := make([]scale.Size, 2)
	idx := make([][]string, 2)
	for i := range pools {
		if sizes[i], err = scale.Measure(ctx, pools[i], migrations.DefaultTable); err != nil {
			log.Fatal(err)
		}
		idx[i] = indexSizes(ctx, pools[i], sizes[i].Rows)
	}
	// The upgrade: the v-prev database migrated in place (its new indexes
	// are then built in bulk, denser than the INSERT-filled ones above).
	log.Printf("migrating %s to v%d", dbs[0], latest)
	t0 := time.Now()
	if err := migrations.Migrate(ctx, benchutil.WithDB(*admin, dbs[0]), latest); err != nil {
		log.Fatal(err)
	}
	upgrade := time.Since(t0)
	upSize, err := scale.Measure(ctx, pools[0], migrations.DefaultTable)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(out, "\n## Size (%d rows, %d partitions; filled by INSERT with the indexes in place)\n\n| | heap | indexes | bytes a row (heap + indexes) |\n| --- | ---: | ---: | ---: |\n", sizes[1].Rows, sizes[1].Partitions)
	for i, v := range []uint{prev, latest} {
		s := sizes[i]
		fmt.Fprintf(out, "| v%d | %s | %s | **%.0f** (%.0f + %.0f) |\n", v, benchutil.MiB(s.Heap), benchutil.MiB(s.Index), s.BytesPerRow(),
			float64(s.Heap)/float64(s.Rows), float64(s.Index)/float64(s.Rows))
	}
	fmt.Fprintf(out, "| v%d migrated to v%d (new indexes built in bulk) | %s | %s | %.0f (%.0f + %.0f) |\n", prev, latest, benchutil.MiB(upSize.Heap), benchutil.MiB(upSize.Index), upSize.BytesPerRow(),
		float64(upSize.Heap)/float64(upSize.Rows), float64(upSize.Index)/float64(upSize.Rows))
	fmt.Fprintf(out, "\nv%d indexes: %s\n\nv%d indexes: %s\n\n", prev, strings.Join(idx[0], ", "), latest, strings.Join(idx[1], ", "))
	fmt.Fprintf(out, "migration v%d -> v%d in place on %d rows: %v (one transaction; writers wait on the table's lock meanwhile)\n\n", prev, latest, upSize.Rows, upgrade.Round(time.Millisecond))

	// Export into empty tables, rounds interleaved so load drift hits both.
	log.Printf("export rounds")
	e4 := benchutil.FreshDB(ctx, *admin, *dbName+"_empty_prev", prev)
	e5 := benchutil.FreshDB(ctx, *admin, *dbName+"_empty_latest", latest)
	defer benchutil.DropDB(ctx, *admin, *dbName+"_empty_prev")
	defer benchutil.DropDB(ctx, *admin, *dbName+"_empty_latest")
	defer e4.Close()
	defer e5.Close()
	rates := [2][]float64{}
	for r := 0; r < *rounds; r++ {
		for i, p := range []*pgxpool.Pool{e4, e5} {
			if r%2 == 1 {
				p = []*pgxpool.Pool{e5, e4}[i]
				i = 1 - i
			}
			rate, err := scale.ExportRate(ctx, p, migrations.DefaultTable, scale.Records(*batches, 1024))
			if err != nil {
				log.Fatal(err)
			}
			rates[i] = append(rates[i], rate)
		}
	}
	fmt.Fprintf(out, "## Export into an empty table (batches of 1,024, %d rounds of %d batches interleaved, order alternating; median)\n\n| schema | rows/s | vs v%d | rounds |\n| --- | ---: | ---: | --- |\n", *rounds, *batches, prev)
	for i, v := range []uint{prev, latest} {
		fmt.Fprintf(out, "| v%d | %.1fk | %.2f× | %s |\n", v, benchutil.Median(rates[i])/1000, benchutil.Median(rates[i])/benchutil.Median(rates[0]), benchutil.KList(rates[i]))
	}
	fmt.Fprintf(out, "\nload average after: %s\n", benchutil.LoadAvg())
}

// indexSizes lists each index of audit_log with its size over all
// partitions and per row.
func indexSizes(ctx context.Context, p *pgxpool.Pool, n int64) []string {
	rows, err := p.Query(ctx, `SELECT c.relname || ' ' || pg_size_pretty(sum(pg_relation_size(t.relid))) ||
			' (' || round(sum(pg_relation_size(t.relid))::numeric / $1, 1) || ' B/row)'
		FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
		CROSS JOIN LATERAL pg_partition_tree(c.oid) t
		WHERE i.indrelid = 'audit_log'::regclass GROUP BY c.relname ORDER BY c.relname`, n)
	if err != nil {
		log.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		log.Fatal(err)
	}
	return names
}

// extraLookups are the viewer's tool glob over the last hour, and the
// aggregate over an hour bounded on both sides (the same as "the last hour"
// on a freshly filled table; on a table written to after its workload's
// end, the open-ended questions also read those later rows).
func extraLookups(w scale.Workload) []scale.Lookup {
	return []scale.Lookup{
		{Name: "a tool glob's (`list_*`) last 100 calls in the last hour",
			SQL:  `SELECT * FROM audit_log WHERE tool_name LIKE $1 ESCAPE '\' AND "timestamp" >= $2 ORDER BY "timestamp" DESC LIMIT 100`,
			Args: []any{`list\_%`, w.End.Add(-time.Hour)}},
		{Name: "calls per tool in the workload's last hour [end - 1h, end)",
			SQL:  `SELECT tool_name, count(*) FROM audit_log WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY tool_name`,
			Args: []any{w.End.Add(-time.Hour), w.End}},
	}
}

// reuseRun measures an existing database at the previous version, migrates
// it in place to the latest and measures it again: the same rows, one run.
func reuseRun(ctx context.Context, out io.Writer, u string, w scale.Workload, runs int, plans string) {
	latest := migrations.Latest()
	prev := latest - 1
	if v, dirty, err := migrations.Version(ctx, u); err != nil || dirty || v != prev {
		log.Fatalf("-reuse: database at version %d (dirty %v, %v), want %d", v, dirty, err, prev)
	}
	pool := benchutil.Connect(ctx, u)
	defer pool.Close()
	var planOut io.Writer = io.Discard
	if plans != "" {
		f, err := os.Create(plans)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		planOut = f
	}
	lookups, err := scale.Lookups(ctx, pool, migrations.DefaultTable, w)
	if err != nil {
		log.Fatal(err)
	}
	lookups = append(lookups, extraLookups(w)...)
	measure := func(v uint) ([]scale.Timing, scale.Size, []string) {
		log.Printf("measuring v%d", v)
		var ts []scale.Timing
		for _, l := range lookups {
			t, err := scale.Time(ctx, pool, l, runs)
			if err != nil {
				log.Fatal(err)
			}
			ts = append(ts, t)
			fmt.Fprintf(planOut, "-- v%d: %s\n%s\n%s\n\n", v, l.Name, l.SQL, t.Plan)
		}
		size, err := scale.Measure(ctx, pool, migrations.DefaultTable)
		if err != nil {
			log.Fatal(err)
		}
		return ts, size, indexSizes(ctx, pool, size.Rows)
	}
	fmt.Fprintf(out, "# schemacmp -reuse %s: v%d, then migrated in place to v%d; load average before: %s\n\n", time.Now().UTC().Format(time.RFC3339), prev, latest, benchutil.LoadAvg())
	before, sizeBefore, idxBefore := measure(prev)
	log.Printf("migrating to v%d", latest)
	t0 := time.Now()
	if err := migrations.Migrate(ctx, u, latest); err != nil {
		log.Fatal(err)
	}
	upgrade := time.Since(t0)
	after, sizeAfter, idxAfter := measure(latest)
	fmt.Fprintf(out, "migration v%d -> v%d in place on %d rows: %v (one transaction; writers wait on the table's lock meanwhile)\n\n", prev, latest, sizeAfter.Rows, upgrade.Round(time.Millisecond))
	fmt.Fprintf(out, "## Lookups (median of %d runs after one warm-up; the indexes each plan reads)\n\n| question | rows | v%d median | v%d p95 | v%d index | v%d median | v%d p95 | v%d index |\n| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |\n",
		runs, prev, prev, prev, latest, latest, latest)
	for i := range lookups {
		a, b := before[i], after[i]
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", a.Name, b.Rows, benchutil.MS(a.Median), benchutil.MS(a.P95), indexes(a.Plan), benchutil.MS(b.Median), benchutil.MS(b.P95), indexes(b.Plan))
	}
	fmt.Fprintf(out, "\n## Size (%d rows, %d partitions)\n\n| | heap | indexes | bytes a row (heap + indexes) |\n| --- | ---: | ---: | ---: |\n", sizeAfter.Rows, sizeAfter.Partitions)
	for _, x := range []struct {
		v uint
		s scale.Size
	}{{prev, sizeBefore}, {latest, sizeAfter}} {
		fmt.Fprintf(out, "| v%d | %s | %s | **%.0f** (%.0f + %.0f) |\n", x.v, benchutil.MiB(x.s.Heap), benchutil.MiB(x.s.Index), x.s.BytesPerRow(),
			float64(x.s.Heap)/float64(x.s.Rows), float64(x.s.Index)/float64(x.s.Rows))
	}
	fmt.Fprintf(out, "\nv%d indexes: %s\n\nv%d indexes: %s\n\nload average after: %s\n", prev, strings.Join(idxBefore, ", "), latest, strings.Join(idxAfter, ", "), benchutil.LoadAvg())
}

var scanRE = regexp.MustCompile(`(?:Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\S+)`)
var partRE = regexp.MustCompile(`_p\d{8}_`)

// indexes names the index kinds a plan reads (partition suffixes removed).
func indexes(plan string) string {
	var names []string
	for _, m := range scanRE.FindAllStringSubmatch(plan, -1) {
		n := partRE.ReplaceAllString(m[1], "_")
		if strings.Contains(m[0], "Only") {
			n += " (index only)"
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if strings.Contains(plan, "Seq Scan") {
		names = append(names, "seq scan")
	}
	return strings.Join(names, ", ")
}

func vacuum(ctx context.Context, p *pgxpool.Pool) {
	t0 := time.Now()
	if _, err := p.Exec(ctx, `VACUUM (ANALYZE) audit_log`); err != nil {
		log.Fatal(err)
	}
	log.Printf("VACUUM ANALYZE %v", time.Since(t0).Round(time.Second))
}
