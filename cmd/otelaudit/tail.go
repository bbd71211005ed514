package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

func init() { rootCmd.AddCommand(newTailCmd()) }

var streamFormats = []string{"table", "jsonl", "csv", "ocsf"}

func newTailCmd() *cobra.Command {
	var (
		ff       filterFlags
		format   string
		lines    int
		follow   bool
		interval time.Duration
		settle   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the newest audited calls, and with -f follow new ones as they commit",
		Long: `tail prints the newest -n calls that match the filters, oldest of them first,
and with -f keeps printing matching calls as the writers commit them, until
interrupted.

Following polls with an index-only lookup of the ids committed since the
previous poll (every --interval, default 1s; nothing runs in between), so it
costs the database almost nothing and needs no trigger: the reader role is
enough. A batch that took its ids earlier but committed later still appears:
ids skipped over are looked for again for --settle (default 30s).`,
		Example: `  otelaudit tail
  otelaudit tail -f --status error,denied,timeout
  otelaudit tail -f --tool 'github.*' --format jsonl | jq .request_args`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			format, err := chooseFormat(cmd, format, streamFormats, "table", "jsonl")
			if err != nil {
				return err
			}
			if lines < 0 {
				return fmt.Errorf("-n %d: want 0 or more", lines)
			}
			if interval < 10*time.Millisecond {
				return fmt.Errorf("--interval %v: want at least 10ms", interval)
			}
			ctx := cmd.Context()
			pool, err := openPool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()

			// The follower starts at the highest id before the newest rows
			// are read, so a row committed in between is printed by one of
			// the two, and printed ids are skipped by the follower.
			start, err := auditquery.MaxID(ctx, pool, tableName())
			if err != nil {
				return err
			}
			out := newRowWriter(format, cmd.OutOrStdout())
			printed := map[int64]bool{}
			if lines > 0 {
				rows, _, err := auditquery.Page(ctx, pool, tableName(), auditquery.Query{Filter: f, Limit: lines})
				if err != nil {
					return err
				}
				slices.Reverse(rows)
				for i := range rows {
					if err := out.Write(&rows[i]); err != nil {
						return err
					}
					if rows[i].ID > start {
						printed[rows[i].ID] = true
					}
				}
			}
			if err := out.Flush(); err != nil {
				return err
			}
			if !follow {
				return out.Close()
			}
			fl, err := auditquery.NewFollower(pool, tableName(), f, start)
			if err != nil {
				return err
			}
			fl.Settle = settle
			timer := time.NewTimer(0)
			defer timer.Stop()
			for {
				select {
				case <-ctx.Done():
					_ = out.Close()
					return nil // interrupted: the normal end of tail -f
				case <-timer.C:
				}
				_, more, err := fl.Poll(ctx, func(r *auditquery.Row) error {
					if printed[r.ID] {
						delete(printed, r.ID)
						return nil
					}
					return out.Write(r)
				})
				if err != nil {
					if ctx.Err() != nil {
						_ = out.Close()
						return nil
					}
					return err
				}
				if err := out.Flush(); err != nil {
					return err
				}
				if more {
					timer.Reset(0)
				} else {
					timer.Reset(interval)
				}
			}
		},
	}
	ff.register(cmd.Flags(), "")
	formatFlag(cmd, &format, streamFormats, "output format")
	cmd.Flags().IntVarP(&lines, "lines", "n", 10, "print the newest N matching calls first")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new calls as they commit")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often -f looks for new calls")
	cmd.Flags().DurationVar(&settle, "settle", 30*time.Second, "how long -f waits for a skipped id to commit")
	return cmd
}
