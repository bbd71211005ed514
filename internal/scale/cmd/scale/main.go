// Command scale fills a database with tens of millions of audit rows and
// measures issue 12's figures: Export on empty tables (v1 and the latest
// schema) and on the full one, side by side in one run; every auditor's
// lookup; removing the oldest day; bytes per row. It leaves the full
// database in place (-db, default otelaudit_scale) for other measurements.
//
//	go run ./internal/scale/cmd/scale            # make bench-scale
//	go run ./internal/scale/cmd/scale -per-day 66667 -days 30   # 2M rows, quick
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
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
	dbName := flag.String("db", "otelaudit_scale", "database to fill (dropped and created again unless -reuse)")
	reuse := flag.Bool("reuse", false, "measure the filled database -db as it is, without filling it again")
	perDay := flag.Int64("per-day", 666_667, "calls per day (666,667 × 30 days = 20M)")
	days := flag.Int("days", 30, "days of history that remain after the oldest extra day is dropped")
	rounds := flag.Int("rounds", 5, "Export rounds per table")
	batches := flag.Int("batches", 40, "batches of 1,024 records per Export round")
	runs := flag.Int("runs", 15, "timed runs per lookup")
	plans := flag.String("plans", "", "write each lookup's EXPLAIN ANALYZE to this file")
	v1Days := flag.Int("v1-days", 3, "also fill a v1 table with this many days of the same workload, for bytes per row and DELETE of a day (0: skip)")
	redrop := flag.String("redrop", "", "on the filled -db: migrate it to the latest version, fill again the workload's first two days (the workload began at this RFC 3339 time and ended at -end) and time dropping the oldest")
	endFlag := flag.String("end", "", "with -redrop: when the original workload ended (RFC 3339)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	ctx := context.Background()
	if *redrop != "" {
		redropDay(ctx, *admin, *dbName, *perDay, *redrop, *endFlag)
		return
	}

	// The oldest day is extra: dropping it is measured, and -days remain.
	now := time.Now().UTC()
	start := now.Truncate(24 * time.Hour).Add(-time.Duration(*days+1) * 24 * time.Hour)
	w := scale.NewWorkload(*perDay, start, now)

	out := os.Stdout
	fmt.Fprintf(out, "# scale run %s\n\nhost: %s; load average before: %s\n\n", now.Format(time.RFC3339), hostInfo(), benchutil.LoadAvg())
	df("before")

	emptyV1 := benchutil.FreshDB(ctx, *admin, *dbName+"_empty_v1", 1)
	emptyV2 := benchutil.FreshDB(ctx, *admin, *dbName+"_empty_v2", migrations.Latest())
	defer benchutil.DropDB(ctx, *admin, *dbName+"_empty_v1")
	defer benchutil.DropDB(ctx, *admin, *dbName+"_empty_v2")
	defer emptyV1.Close()
	defer emptyV2.Close()

	var full *pgxpool.Pool
	if *reuse {
		full = benchutil.Connect(ctx, benchutil.WithDB(*admin, *dbName))
	} else {
		full = benchutil.FreshDB(ctx, *admin, *dbName, migrations.Latest())
		log.Printf("filling %s: %d rows from %s to %s", *dbName, w.Rows, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
		fillStart := time.Now()
		err := scale.Fill(ctx, full, migrations.DefaultTable, w, 0, w.Rows, true, func(done int64, el time.Duration) {
			log.Printf("  %d rows (%.0f rows/s)", done, float64(done)/el.Seconds())
		})
		if err != nil {
			log.Fatal(err)
		}
		fill := time.Since(fillStart)
		vacStart := time.Now()
		if _, err := full.Exec(ctx, `VACUUM (ANALYZE) audit_log`); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(out, "fill: %d rows in %v (%.0f rows/s, INSERT ... SELECT generate_series, one day per statement, indexes in place); VACUUM ANALYZE %v\n\n",
			w.Rows, fill.Round(time.Second), float64(w.Rows)/fill.Seconds(), time.Since(vacStart).Round(time.Second))
	}
	df("after fill")

	// Lookups.
	log.Printf("lookups")
	lookups, err := scale.Lookups(ctx, full, migrations.DefaultTable, w)
	if err != nil {
		log.Fatal(err)
	}
	var planOut io.Writer = io.Discard
	if *plans != "" {
		f, err := os.Create(*plans)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		planOut = f
	}
	fmt.Fprintf(out, "## Lookups at full size (%d timed runs after one warm-up)\n\n| question | rows | median | p95 | max | index |\n| --- | ---: | ---: | ---: | ---: | --- |\n", *runs)
	for _, l := range lookups {
		t, err := scale.Time(ctx, full, l, *runs)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %v |\n", l.Name, t.Rows, benchutil.MS(t.Median), benchutil.MS(t.P95), benchutil.MS(t.Max), t.UsesIndex)
		fmt.Fprintf(planOut, "-- %s\n%s\n%s\n\n", l.Name, l.SQL, t.Plan)
	}
	fmt.Fprintln(out)

	// Export, side by side: the same fresh records into each table, round
	// after round.
	log.Printf("export rounds")
	rates := map[string][]float64{}
	names := []string{"empty v1 table", "empty v2 table", "v2 table at full size"}
	pools := []*pgxpool.Pool{emptyV1, emptyV2, full}
	for r := 0; r < *rounds; r++ {
		for i, p := range pools {
			recs := scale.Records(*batches, 1024)
			rate, err := scale.ExportRate(ctx, p, migrations.DefaultTable, recs)
			if err != nil {
				log.Fatal(err)
			}
			rates[names[i]] = append(rates[names[i]], rate)
		}
	}
	fmt.Fprintf(out, "## Export (batches of 1,024 records, %d rounds of %d batches, median; rounds interleaved)\n\n| table | rows/s | vs empty v2 | rounds |\n| --- | ---: | ---: | --- |\n", *rounds, *batches)
	base := benchutil.Median(rates[names[1]])
	for _, n := range names {
		fmt.Fprintf(out, "| %s | %.1fk | %.2f× | %s |\n", n, benchutil.Median(rates[n])/1000, benchutil.Median(rates[n])/base, benchutil.KList(rates[n]))
	}
	fmt.Fprintln(out)

	// Size before and after removing the oldest day.
	before, err := scale.Measure(ctx, full, migrations.DefaultTable)
	if err != nil {
		log.Fatal(err)
	}
	oldest, dayRows := oldestPartition(ctx, full)
	dropStart := time.Now()
	dropped, err := migrations.DropPartitions(ctx, full, oldest.To)
	dropTime := time.Since(dropStart)
	if err != nil {
		log.Fatal(err)
	}
	after, err := scale.Measure(ctx, full, migrations.DefaultTable)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(out, "## Retention and size\n\n")
	fmt.Fprintf(out, "- removing the oldest day (%s, %d rows) with migrations.DropPartitions: **%s** (%d partition(s))\n", oldest.Name, dayRows, benchutil.MS(dropTime), len(dropped))
	for _, s := range []struct {
		name string
		s    scale.Size
	}{{"before the drop", before}, {"after the drop", after}} {
		fmt.Fprintf(out, "- %s: %d rows in %d partitions; heap %s + indexes %s = %s, **%.0f bytes a row** (heap %.0f, indexes %.0f)\n",
			s.name, s.s.Rows, s.s.Partitions, benchutil.MiB(s.s.Heap), benchutil.MiB(s.s.Index), benchutil.MiB(s.s.Total), s.s.BytesPerRow(),
			float64(s.s.Heap)/float64(s.s.Rows), float64(s.s.Index)/float64(s.s.Rows))
	}
	if *v1Days > 0 {
		v1Compare(ctx, out, *admin, *dbName+"_v1", *perDay, *v1Days, now)
	}
	fmt.Fprintf(out, "\nload average after: %s\n", benchutil.LoadAvg())
	df("after")
	log.Printf("database %s left in place: %s", *dbName, benchutil.Redact(benchutil.WithDB(*admin, *dbName)))
}

func hostInfo() string {
	out, _ := exec.Command("nproc").Output()
	return strings.TrimSpace(string(out)) + " cores, PostgreSQL on the same machine, shared with other work"
}

func df(when string) {
	out, err := exec.Command("df", "-h", "/work").Output()
	if err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		log.Printf("df -h /work %s: %s", when, lines[len(lines)-1])
	}
}

// v1Compare fills a v1 table with days of the same workload and reports its
// bytes per row and how long DELETE of its oldest day takes; it drops the
// database afterwards.
func v1Compare(ctx context.Context, out io.Writer, admin, name string, perDay int64, days int, now time.Time) {
	start := now.Truncate(24 * time.Hour).Add(-time.Duration(days) * 24 * time.Hour)
	w := scale.NewWorkload(perDay, start, now)
	pool := benchutil.FreshDB(ctx, admin, name, 1)
	defer benchutil.DropDB(ctx, admin, name)
	defer pool.Close()
	log.Printf("v1 comparison: %d rows", w.Rows)
	if err := scale.Fill(ctx, pool, migrations.DefaultTable, w, 0, w.Rows, false, nil); err != nil {
		log.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) audit_log`); err != nil {
		log.Fatal(err)
	}
	var heap, idx, rows int64
	if err := pool.QueryRow(ctx, `SELECT pg_table_size('audit_log'), pg_indexes_size('audit_log'), (SELECT count(*) FROM audit_log)`).Scan(&heap, &idx, &rows); err != nil {
		log.Fatal(err)
	}
	delStart := time.Now()
	tag, err := pool.Exec(ctx, `DELETE FROM audit_log WHERE "timestamp" < $1`, start.Add(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	del := time.Since(delStart)
	fmt.Fprintf(out, "- the same workload in the v1 schema (%d days, %d rows): heap %s + indexes %s, **%.0f bytes a row** (heap %.0f, indexes %.0f); DELETE of its oldest day (%d rows) %s, leaving the space to VACUUM\n",
		days, rows, benchutil.MiB(heap), benchutil.MiB(idx), float64(heap+idx)/float64(rows), float64(heap)/float64(rows), float64(idx)/float64(rows), tag.RowsAffected(), benchutil.MS(del))
}

// redropDay refills the first two days of an existing workload (their
// partitions were dropped by an earlier run), then times DropPartitions of
// the oldest one, leaving the second.
func redropDay(ctx context.Context, admin, name string, perDay int64, startS, endS string) {
	start, err1 := time.Parse(time.RFC3339, startS)
	end, err2 := time.Parse(time.RFC3339, endS)
	if err1 != nil || err2 != nil {
		log.Fatalf("-redrop %q -end %q: want RFC 3339 times", startS, endS)
	}
	u := benchutil.WithDB(admin, name)
	if err := migrations.Up(ctx, u); err != nil {
		log.Fatal(err)
	}
	pool := benchutil.Connect(ctx, u)
	defer pool.Close()
	w := scale.NewWorkload(perDay, start, end)
	day := w.PerDay()
	log.Printf("refilling rows 0..%d", 2*day)
	if err := scale.Fill(ctx, pool, migrations.DefaultTable, w, 0, 2*day, true, nil); err != nil {
		log.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) audit_log`); err != nil {
		log.Fatal(err)
	}
	oldest, rows := oldestPartition(ctx, pool)
	t0 := time.Now()
	dropped, err := migrations.DropPartitions(ctx, pool, oldest.To)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("- removing the oldest day (%s, %d rows) with migrations.DropPartitions, schema v%d: **%s** in all (%d partition(s)); load average %s\n",
		oldest.Name, rows, migrations.Latest(), benchutil.MS(time.Since(t0)), len(dropped), benchutil.LoadAvg())
	size, err := scale.Measure(ctx, pool, migrations.DefaultTable)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("- left: %d rows in %d partitions, %.0f bytes a row\n", size.Rows, size.Partitions, size.BytesPerRow())
}

// oldestPartition returns the oldest partition of audit_log that is not the
// default one, and its rows.
func oldestPartition(ctx context.Context, pool *pgxpool.Pool) (migrations.Partition, int64) {
	parts, err := migrations.Partitions(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	var oldest migrations.Partition
	for _, p := range parts {
		if !p.Default {
			oldest = p
			break
		}
	}
	var rows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{oldest.Name}.Sanitize()).Scan(&rows); err != nil {
		log.Fatal(err)
	}
	return oldest, rows
}
