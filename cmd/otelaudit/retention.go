package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

func init() { rootCmd.AddCommand(newRetentionCmd()) }

// retentionHooks run, in order, inside the transaction of each partition
// drop, before it (see migrations.DropHook), after DropPartitions has
// recorded each seal stream's last seal in the range. None by default; a
// file of this command can add one (for example to archive the day).
var retentionHooks []migrations.DropHook

func runRetentionHooks(ctx context.Context, tx pgx.Tx, p migrations.Partition) error {
	for _, h := range retentionHooks {
		if err := h(ctx, tx, p); err != nil {
			return err
		}
	}
	return nil
}

func newRetentionCmd() *cobra.Command {
	var (
		keep   string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Drop the audit partitions older than --keep",
		Long: `retention removes the audit rows older than --keep in whole partitions: a
partition is dropped (O(1), no dead rows, nothing for VACUUM) once all of its
range is older than now minus --keep; the default partition's expired rows
(skewed clocks) are deleted. Before each drop the trail records what goes,
so that verify excuses the missing rows.

As the tables' owner any --keep is allowed; as otelaudit_writer only data
older than the database's min_retention (7 days unless the owner changes it).
Take the backup that must keep these rows before running it.`,
		Example: `  otelaudit retention --keep 90d
  otelaudit retention --keep 30d --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := parseKeep(keep)
			if err != nil {
				return fmt.Errorf("--keep: %w", err)
			}
			ctx := cmd.Context()
			pool, err := openPool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			opt := migrations.WithTable(tableName())
			cut := time.Now().Add(-d)
			out := cmd.OutOrStdout()
			if dryRun {
				parts, err := migrations.Partitions(ctx, pool, opt)
				if err != nil {
					return err
				}
				for _, p := range parts {
					if !p.Default && !p.To.After(cut) {
						fmt.Fprintf(out, "would drop %s [%s, %s)\n", p.Name, p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
					}
				}
				fmt.Fprintf(out, "would delete the default partition's rows older than %s\n", cut.UTC().Format(time.RFC3339))
				return nil
			}
			start := time.Now()
			dropped, err := migrations.DropPartitions(ctx, pool, cut, opt, migrations.WithBeforeDrop(runRetentionHooks))
			for _, p := range dropped {
				if p.Default {
					fmt.Fprintf(out, "deleted the default partition's rows older than %s\n", p.To.Format(time.RFC3339))
					continue
				}
				fmt.Fprintf(out, "dropped %s [%s, %s)\n", p.Name, p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d removed in %v\n", len(dropped), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&keep, "keep", "", "keep this much history: a Go duration (720h) or days (90d); required")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be dropped and change nothing")
	_ = cmd.MarkFlagRequired("keep")
	return cmd
}

// parseKeep parses a retention period: "90d" (days) or a Go duration.
func parseKeep(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("%q: want days such as 90d or a duration such as 720h", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want days such as 90d or a duration such as 720h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: want a positive period", s)
	}
	return d, nil
}
