package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

func init() { rootCmd.AddCommand(newQueryCmd()) }

var rowFormats = []string{"table", "json", "jsonl", "csv", "ocsf"}

func newQueryCmd() *cobra.Command {
	var (
		ff          filterFlags
		format      string
		limit       int
		after       string
		oldestFirst bool
	)
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Find audited tool calls",
		Long: `query prints the audited tool calls that match every filter given, newest
first, --limit at most. When more rows match, it prints on stderr the
--after cursor that continues where it stopped (keyset paging: page N costs
what page 1 costs).

--format table is the default on a terminal, jsonl otherwise.`,
		Example: `  otelaudit query --since 1h --status error,denied
  otelaudit query --subject alice --tool 'github.*' --since 2026-11-30T00:00:00Z --until 2026-12-01T00:00:00Z
  otelaudit query --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --format json
  otelaudit query --args '{"path":"/etc/passwd"}' --format csv > passwd.csv
  otelaudit query --session 7c0e... --limit 500 --after 1764590400123456-81723`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			format, err := chooseFormat(cmd, format, rowFormats, "table", "jsonl")
			if err != nil {
				return err
			}
			if limit < 0 {
				return fmt.Errorf("--limit %d: want 0 (no limit) or more", limit)
			}
			cur, err := auditquery.ParseCursor(after)
			if err != nil {
				return fmt.Errorf("--after: %w", err)
			}
			pool, err := openPool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()

			q := auditquery.Query{Filter: f, After: cur}
			if oldestFirst {
				q.Order = auditquery.OldestFirst
			}
			out := newRowWriter(format, cmd.OutOrStdout())
			left := limit
			for {
				q.Limit = 1000
				if limit > 0 && left < q.Limit {
					q.Limit = left
				}
				rows, next, err := auditquery.Page(cmd.Context(), pool, tableName(), q)
				if err != nil {
					return err
				}
				for i := range rows {
					if err := out.Write(&rows[i]); err != nil {
						return err
					}
				}
				left -= len(rows)
				if next.IsZero() {
					break
				}
				if limit > 0 && left == 0 {
					if err := out.Close(); err != nil {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "otelaudit: more rows match; continue with --after %s\n", next)
					return nil
				}
				q.After = next
			}
			return out.Close()
		},
	}
	ff.register(cmd.Flags(), "")
	formatFlag(cmd, &format, rowFormats, "output format")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many rows (0: all)")
	cmd.Flags().StringVar(&after, "after", "", "continue after this cursor (printed by an earlier query or export)")
	cmd.Flags().BoolVar(&oldestFirst, "oldest-first", false, "oldest first instead of newest first")
	return cmd
}
