package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

func init() { rootCmd.AddCommand(newMigrateCmd()) }

func newMigrateCmd() *cobra.Command {
	var (
		to     int
		status bool
		ahead  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the schema migrations (as the tables' owner) and create the coming partitions",
		Long: `migrate brings the audit schema to the latest version (or to --to), then
creates the partitions for the next --ahead. Run it as the user that owns
(or will own) the audit tables, with CREATEROLE the first time on a server
(it creates the shared roles otelaudit_writer and otelaudit_reader); the
exporter can then run as a writer with WithMigrate(false).

A v1 table is migrated in place: every row is copied into the partitioned
table in one transaction, which holds the table's lock throughout (writers
wait, and their spools fill, for that long: about 10 s per million rows on
a small machine). --to 1 migrates back down; it refuses, changing nothing,
when two rows share a request_id.`,
		Example: `  otelaudit migrate --database-url postgres://audit_owner@db/audit
  otelaudit migrate --status
  otelaudit migrate --to 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			url := databaseURL()
			opt := migrations.WithTable(tableName())
			before, dirty, err := migrations.Version(ctx, url, opt)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if status {
				fmt.Fprintf(out, "version %d of %d", before, migrations.Latest())
				if dirty {
					fmt.Fprint(out, " (dirty)")
				}
				fmt.Fprintln(out)
				return nil
			}
			start := time.Now()
			switch {
			case cmd.Flags().Changed("to"):
				if to < 0 || uint(to) > migrations.Latest() {
					return fmt.Errorf("--to %d: want 0 to %d", to, migrations.Latest())
				}
				err = migrations.Migrate(ctx, url, uint(to), opt)
			default:
				err = migrations.Up(ctx, url, opt)
			}
			if err != nil {
				return err
			}
			after, _, err := migrations.Version(ctx, url, opt)
			if err != nil {
				return err
			}
			if after == before {
				fmt.Fprintf(out, "version %d: up to date\n", after)
			} else {
				fmt.Fprintf(out, "version %d -> %d in %v\n", before, after, time.Since(start).Round(time.Millisecond))
			}
			if after < 2 {
				return nil
			}
			pool, err := openPool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			created, err := migrations.EnsurePartitions(ctx, pool, opt, migrations.WithAhead(ahead))
			if err != nil {
				return err
			}
			for _, name := range created {
				fmt.Fprintf(out, "created partition %s\n", name)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "migrate up or down to this version instead of the latest")
	cmd.Flags().BoolVar(&status, "status", false, "print the schema version and change nothing")
	cmd.Flags().DurationVar(&ahead, "ahead", migrations.DefaultAhead, "create partitions this far ahead of now")
	return cmd
}
