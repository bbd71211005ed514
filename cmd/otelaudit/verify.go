package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
	"github.com/sentinel-gateway/otelaudit/verify"
)

func init() { rootCmd.AddCommand(newVerifyCmd()) }

func newVerifyCmd() *cobra.Command {
	var (
		anchors   []string
		publicKey string
		since     string
		stream    string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Prove the trail was not tampered with: recompute row hashes, seal chains, checkpoints",
		Long: `verify streams every row and seal of the audit table in order, recomputes each
row's hash from its content, each sealed batch's hash, each seal's hash and its
link to the seal before it, and checks every signed checkpoint in the database
and in the anchors given with --anchor against the chain.

Without --anchor, deleting the last rows together with their seals, or
restoring the database from an older copy, cannot be detected: only
checkpoints kept outside the database catch those. Without --public-key,
checkpoint signatures are not checked.

Exit codes: 0 intact (warnings such as an unclosed stream, whose writer is
running or was killed, do not count), 1 tampering found (the first finding
names the row or seal, its stream and what is wrong), 2 could not run.`,
		Example: `  otelaudit verify --anchor /var/lib/otelaudit/checkpoints.jsonl --public-key audit.pub
  otelaudit verify --since 24h --json
  otelaudit verify --stream 0193f1de-7a0e-7c8b-9f3e-2b1d5c6a7e80`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var opts []verify.Option
			opts = append(opts, verify.WithTable(tableName()))
			for _, a := range anchors {
				opts = append(opts, verify.WithAnchorFile(a))
			}
			if publicKey != "" {
				k, err := integrity.LoadPublicKey(publicKey)
				if err != nil {
					return fmt.Errorf("--public-key: %w", err)
				}
				opts = append(opts, verify.WithPublicKey(k))
			}
			if since != "" {
				t, err := auditquery.ParseTime(since, time.Now())
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				opts = append(opts, verify.WithSince(t))
			}
			if stream != "" {
				id, err := uuid.Parse(stream)
				if err != nil {
					return fmt.Errorf("--stream: %w", err)
				}
				opts = append(opts, verify.WithStream(id))
			}
			pool, err := openPool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()

			var bar *progressbar.ProgressBar
			if pw := progress(cmd); pw != io.Discard {
				var estimate int64 = -1
				_ = pool.QueryRow(cmd.Context(), `SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::bigint FROM pg_class c
					WHERE c.oid = to_regclass($1) OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass($1))`,
					tableName()).Scan(&estimate)
				if estimate <= 0 {
					estimate = -1
				}
				bar = progressbar.NewOptions64(estimate, progressbar.OptionSetWriter(pw),
					progressbar.OptionSetDescription("verifying"), progressbar.OptionShowCount(),
					progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
					progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
				var last int64
				opts = append(opts, verify.WithProgress(func(n int64) {
					_ = bar.Add64(n - last)
					last = n
				}))
			}
			rep, err := verify.Run(cmd.Context(), pool, opts...)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(jsonReport{Report: rep, Intact: rep.Intact()}); err != nil {
					return fmt.Errorf("write report: %w", err)
				}
			} else if err := writeReport(out, rep); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if !rep.Intact() {
				return finding(nil) // the report says what was found
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&anchors, "anchor", nil, "JSON Lines file of checkpoints kept outside the database (repeatable); catches truncation and rollback")
	f.StringVar(&publicKey, "public-key", "", "Ed25519 public key (PEM or base64) that checks the checkpoints' signatures")
	f.StringVar(&since, "since", "", "check only rows and batches written at or after this: a duration back from now (24h, 7d) or an RFC 3339 time; chains and checkpoints are still checked whole")
	f.StringVar(&stream, "stream", "", "check only this writer stream (its id)")
	f.BoolVar(&asJSON, "json", false, "write the report as JSON")
	return cmd
}

// jsonReport is the --json output: the report and its verdict.
type jsonReport struct {
	Intact bool `json:"intact"`
	*verify.Report
}

func writeReport(w io.Writer, rep *verify.Report) error {
	var b strings.Builder
	verdict := "INTACT"
	if !rep.Intact() {
		verdict = "TAMPERING FOUND"
	}
	fmt.Fprintf(&b, "%s: %s — %d rows, %d seals, %d streams, %d checkpoints, %d anchor entries checked in %s (%.0f rows/s)\n",
		rep.Table, verdict, rep.Rows, rep.Seals, len(rep.Streams), rep.Checkpoints, rep.AnchorEntries,
		rep.Elapsed.Round(time.Millisecond), float64(rep.Rows)/max(rep.Elapsed.Seconds(), 1e-9))
	if rep.UnsealedRows > 0 {
		fmt.Fprintf(&b, "%d rows predate sealing and cannot be verified\n", rep.UnsealedRows)
	}
	if rep.RetainedSeals > 0 {
		fmt.Fprintf(&b, "%d batch seals lost rows to retention (not recomputed)\n", rep.RetainedSeals)
	}
	if !rep.Sealed() && rep.Rows > 0 {
		b.WriteString("the table is not sealed: no writer has sealing enabled\n")
	}
	if f := rep.First(); f != nil {
		fmt.Fprintf(&b, "\nfirst finding: %s\n", f)
		if len(rep.Findings) > 1 {
			b.WriteString("all findings:\n")
			for _, f := range rep.Findings {
				fmt.Fprintf(&b, "  %s\n", f)
			}
			if rep.MoreFindings > 0 {
				fmt.Fprintf(&b, "  ... and %d more\n", rep.MoreFindings)
			}
		}
	}
	for _, f := range rep.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", f)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if len(rep.Streams) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTREAM\tSTATE\tSEALS\tROWS\tLOST\tCHECKPOINTED\tLAST SEALED")
	for _, s := range rep.Streams {
		state := string(s.State)
		if s.State == verify.StateBroken {
			state = fmt.Sprintf("broken at seal %d", s.BrokenAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.ID, state, s.Seals, s.Rows, s.Lost, s.Checkpointed, s.LastSealedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
