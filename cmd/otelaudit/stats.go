package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

func init() { rootCmd.AddCommand(newStatsCmd()) }

var statsFormats = []string{"table", "json", "csv"}

func newStatsCmd() *cobra.Command {
	var (
		ff     filterFlags
		format string
		by     string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Calls, errors, denials and latency percentiles per tool, backend or subject",
		Long: `stats groups the calls that match the filters (over the last hour unless
--since says otherwise) by tool, backend, subject, status or error, and
prints for each group: calls, errors (status error), denials, timeouts, the
error rate, and p50/p99/max latency in milliseconds. Busiest group first.`,
		Example: `  otelaudit stats
  otelaudit stats --since 24h --by subject --limit 20
  otelaudit stats --since 7d --by backend --status error --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			g, err := auditquery.ParseGroupBy(by)
			if err != nil {
				return fmt.Errorf("--by: %w", err)
			}
			format, err := chooseFormat(cmd, format, statsFormats, "table", "json")
			if err != nil {
				return err
			}
			pool, err := openPool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			st, err := auditquery.Stats(cmd.Context(), pool, tableName(), f, g, limit)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch format {
			case "json":
				if st == nil {
					st = []auditquery.Stat{}
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			case "csv":
				cw := csv.NewWriter(w)
				_ = cw.Write([]string{by, "calls", "errors", "denials", "timeouts", "error_rate", "p50_ms", "p99_ms", "max_ms"})
				for _, s := range st {
					_ = cw.Write([]string{s.Key, itoa(s.Calls), itoa(s.Errors), itoa(s.Denials), itoa(s.Timeouts),
						strconv.FormatFloat(s.ErrorRate, 'f', 4, 64), ftoa(s.P50MS), ftoa(s.P99MS), itoa(s.MaxMS)})
				}
				cw.Flush()
				return cw.Error()
			default:
				// The numbers align right; the group's name, padded to one
				// width, reads left-aligned.
				head := map[auditquery.GroupBy]string{auditquery.ByTool: "TOOL", auditquery.ByBackend: "BACKEND",
					auditquery.BySubject: "SUBJECT", auditquery.ByStatus: "STATUS", auditquery.ByError: "ERROR"}[g]
				keys := make([]string, len(st))
				width := utf8.RuneCountInString(head)
				for i, s := range st {
					keys[i] = safe(s.Key, 40)
					width = max(width, utf8.RuneCountInString(keys[i]))
				}
				pad := func(k string) string { return k + strings.Repeat(" ", width-utf8.RuneCountInString(k)) }
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintf(tw, "%s\tCALLS\tERRORS\tDENIED\tTIMEOUT\tERROR %%\tP50 MS\tP99 MS\tMAX MS\t\n", pad(head))
				for i, s := range st {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%s\t%s\t%d\t\n", pad(keys[i]), s.Calls, s.Errors, s.Denials,
						s.Timeouts, 100*s.ErrorRate, ftoa(s.P50MS), ftoa(s.P99MS), s.MaxMS)
				}
				return tw.Flush()
			}
		},
	}
	ff.register(cmd.Flags(), "1h")
	formatFlag(cmd, &format, statsFormats, "output format")
	cmd.Flags().StringVar(&by, "by", "tool", "group by tool, backend, subject, status or error")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many groups, busiest first (0: all)")
	return cmd
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
