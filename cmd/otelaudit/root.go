package main

// # Adding a subcommand
//
// Every subcommand lives in a file of its own and registers itself from that
// file's init function; nothing else needs to change:
//
//	func init() { rootCmd.AddCommand(newVerifyCmd()) }
//
//	func newVerifyCmd() *cobra.Command {
//		return &cobra.Command{
//			Use:     "verify",
//			Short:   "Verify the trail's seals and checkpoints",
//			Example: "  otelaudit verify --anchor checkpoints.jsonl",
//			Args:    cobra.NoArgs,
//			RunE: func(cmd *cobra.Command, _ []string) error {
//				pool, err := openPool(cmd.Context())   // --database-url, env fallbacks
//				if err != nil {
//					return err                       // exit 2
//				}
//				defer pool.Close()
//				...
//				return finding(fmt.Errorf("seal 17 of stream %s: ...", s)) // exit 1
//			},
//		}
//	}
//
// Package-level variables are initialised before any init function runs, so
// rootCmd is always ready there. The helpers every command uses:
//
//   - databaseURL() — the URL chosen by --database-url, $OTELAUDIT_DATABASE_URL
//     or "" (pgx then reads the libpq variables PGHOST, PGUSER, ...);
//     tableName() — the --table flag, already validated.
//   - openPool(ctx) — a small pgxpool.Pool on that URL.
//   - Exit codes: return nil (0); finding(err) or exitCode(ExitFinding, err)
//     for a finding such as tampering (1; a nil err prints nothing, for a
//     command that reported the finding on stdout itself); any other error
//     (2, could not run). main prints the error once, as "otelaudit: ...".
//   - Output: data on cmd.OutOrStdout(); progress(cmd) is a writer for
//     progress bars and status lines that is io.Discard unless stderr is a
//     terminal; isTerminal(w) for choosing a human format by default.

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// Exit codes of every otelaudit command.
const (
	// ExitOK: the command did what it was asked and found nothing wrong.
	ExitOK = 0
	// ExitFinding: the command ran and found something an operator must act
	// on (for example tampering).
	ExitFinding = 1
	// ExitFailure: the command could not run (bad flags, unreachable
	// database, I/O error).
	ExitFailure = 2
)

// envDatabaseURL is the environment variable read when --database-url is not
// given.
const envDatabaseURL = "OTELAUDIT_DATABASE_URL"

var globalFlags struct {
	databaseURL string
	table       string
}

var rootCmd = newRootCmd()

func init() {
	// A subcommand's own PersistentPreRunE runs after the root's, not
	// instead of it.
	cobra.EnableTraverseRunHooks = true
}

func newRootCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "otelaudit",
		Short: "Operate the otelaudit audit trail of MCP tool calls in PostgreSQL",
		Long: `otelaudit operates the audit trail that the otelaudit exporter and the
Collector's pgaudit exporter write to PostgreSQL: one row per MCP tool call.

The database is chosen by --database-url, else $` + envDatabaseURL + `, else
the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...).
Reading commands need only the otelaudit_reader role.

Exit codes: 0 done, 1 a finding (such as tampering), 2 could not run.
Data is written to stdout; progress goes to stderr, only on a terminal.`,
		Example: `  export OTELAUDIT_DATABASE_URL=postgres://otelaudit_reader@db/audit
  otelaudit query --since 1h --status error
  otelaudit tail -f --tool 'github.*'
  otelaudit export --format ocsf --since 2026-11-01T00:00:00Z --output november.jsonl
  otelaudit stats --since 24h --by tool
  otelaudit serve --listen 127.0.0.1:8080`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return migrations.ValidateTable(globalFlags.table)
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	pf := cmd.PersistentFlags()
	pf.StringVar(&globalFlags.databaseURL, "database-url", "",
		"PostgreSQL URL or keyword/value conninfo (default $"+envDatabaseURL+", then the libpq variables PGHOST, PGUSER, ...)")
	pf.StringVar(&globalFlags.table, "table", migrations.DefaultTable, "name of the audit table")
	return cmd
}

// databaseURL returns the database chosen for this run: --database-url, else
// $OTELAUDIT_DATABASE_URL, else "" (which pgx resolves from the libpq
// environment variables and their defaults).
func databaseURL() string {
	if f := rootCmd.PersistentFlags().Lookup("database-url"); f != nil && f.Changed {
		return globalFlags.databaseURL
	}
	return os.Getenv(envDatabaseURL)
}

// tableName returns the audit table's name (--table).
func tableName() string { return globalFlags.table }

// openPool connects to databaseURL() with a small pool (the CLI never needs
// many connections) and checks the connection.
func openPool(ctx context.Context) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if cfg.MaxConns > 4 {
		cfg.MaxConns = 4
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "otelaudit"
	}
	if cfg.ConnConfig.RuntimeParams["work_mem"] == "" {
		// Scans sort one time window at a time (internal/auditquery): let
		// a window's sort stay in memory rather than spill to disk.
		cfg.ConnConfig.RuntimeParams["work_mem"] = "32MB"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}

// exitError carries an exit code other than ExitFailure up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode returns an error that makes the process exit with code; main
// prints err unless it is nil.
func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// finding reports a finding (exit code 1), such as tampering.
func finding(err error) error { return exitCode(ExitFinding, err) }

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress returns where a command writes progress bars and status lines:
// stderr when it is a terminal, io.Discard otherwise (logs and pipes get no
// progress noise).
func progress(cmd *cobra.Command) io.Writer {
	if w := cmd.ErrOrStderr(); isTerminal(w) {
		return w
	}
	return io.Discard
}
