package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

func init() { rootCmd.AddCommand(newExportCmd()) }

var exportFormats = []string{"jsonl", "csv", "ocsf"}

func newExportCmd() *cobra.Command {
	var (
		ff     filterFlags
		format string
		output string
		after  string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Stream every matching call to JSON Lines, CSV or OCSF",
		Long: `export writes every call that matches the filters, oldest first, with no row
cap and in constant memory: it streams the rows in time windows, each one
statement that PostgreSQL answers from one partition's time index.

Formats: jsonl (one row per line, the column names as keys), csv (a header
line, then one row per line; JSON columns as JSON text), ocsf (one OCSF 1.3
API Activity event, class 6003, per line; the mapping is in the README).

When it ends, and when it is interrupted or fails, it prints on stderr the
cursor of the last row it wrote: run the same command with --after CURSOR
to continue (with --output, the file is appended to and a CSV header is not
repeated). A progress bar is shown on a terminal.`,
		Example: `  otelaudit export --since 2026-11-01 --until 2026-12-01 --format ocsf --output november.ocsf.jsonl
  otelaudit export --status denied --format csv > denied.csv
  otelaudit export --output all.jsonl --after 1764590400123456-81723   # resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			if format == "" {
				format = "jsonl"
			}
			if format, err = chooseFormat(cmd, format, exportFormats, "", ""); err != nil {
				return err
			}
			cur, err := auditquery.ParseCursor(after)
			if err != nil {
				return fmt.Errorf("--after: %w", err)
			}
			ctx := cmd.Context()
			pool, err := openPool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()

			var dst io.Writer = cmd.OutOrStdout()
			if output != "" && output != "-" {
				flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
				if !cur.IsZero() {
					flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
				}
				file, err := os.OpenFile(output, flags, 0o600)
				if err != nil {
					return fmt.Errorf("--output: %w", err)
				}
				defer func() {
					if cerr := file.Close(); cerr != nil && err == nil {
						err = fmt.Errorf("--output: %w", cerr)
					}
				}()
				dst = file
			}
			out := newRowWriter(format, dst)
			if cw, ok := out.(*csvWriter); ok && !cur.IsZero() {
				cw.header = true // resuming: the header is already there
			}

			var bar *progressbar.ProgressBar
			if pw := progress(cmd); pw != io.Discard {
				bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(pw),
					progressbar.OptionSetDescription("exporting"), progressbar.OptionShowCount(),
					progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
					progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
			}
			start := time.Now()
			var total int64
			written := cur // the last row handed to the writer
			flushed := cur // the last row the writer flushed
			report := func(err error) error {
				if bar != nil {
					_ = bar.Finish()
				}
				ferr := out.Close()
				rate := float64(total) / time.Since(start).Seconds()
				if err == nil && ferr != nil {
					err = ferr
				}
				if err != nil {
					if ferr != nil {
						written = flushed // the last chunk flushed completely
					}
					if !written.IsZero() {
						fmt.Fprintf(cmd.ErrOrStderr(), "otelaudit: export stopped after %d rows; resume with --after %s\n", total, written)
					}
					if ctx.Err() != nil {
						return exitCode(ExitFailure, errors.New("export interrupted"))
					}
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "otelaudit: exported %d rows in %s (%.0f rows/s)", total, time.Since(start).Round(time.Millisecond), rate)
				if !written.IsZero() {
					fmt.Fprintf(cmd.ErrOrStderr(), "; continue later with --after %s", written)
				}
				fmt.Fprintln(cmd.ErrOrStderr())
				return nil
			}
			// Reading and encoding overlap: one goroutine scans pages into
			// chunks of rows, this one encodes them (two cores, twice the
			// rows per second of doing both in turn). Memory stays constant:
			// a fixed number of chunks circulate.
			err = pipeline(ctx, func(ctx context.Context, emit func(*auditquery.Row) error) error {
				_, _, err := auditquery.Each(ctx, pool, tableName(),
					auditquery.Query{Filter: f, Order: auditquery.OldestFirst, After: cur, SkipExtracted: format != "ocsf"}, emit)
				return err
			}, func() error {
				if err := out.Flush(); err != nil {
					return err
				}
				flushed = written
				return nil
			}, func(r *auditquery.Row) error {
				if err := out.Write(r); err != nil {
					return err
				}
				written = r.Cursor()
				total++
				if bar != nil && total%1024 == 0 {
					_ = bar.Add(1024)
				}
				return nil
			})
			cur = written
			return report(err)
		},
	}
	ff.register(cmd.Flags(), "")
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format (jsonl, csv, ocsf)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	cmd.Flags().StringVar(&after, "after", "", "resume after this cursor (printed by an earlier export)")
	return cmd
}

// chunkRows is how many rows travel between the reading and the encoding
// goroutine at once; chunks in flight bounds the memory.
const (
	chunkRows      = 512
	chunksInFlight = 4
)

// pipeline runs produce on its own goroutine and hands every row it emits to
// consume on the calling goroutine, in order. It returns the first error of
// either; a consume error cancels produce. chunkDone runs after each chunk
// was consumed.
func pipeline(ctx context.Context, produce func(context.Context, func(*auditquery.Row) error) error, chunkDone func() error, consume func(*auditquery.Row) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan []auditquery.Row, chunksInFlight)
	free := make(chan []auditquery.Row, chunksInFlight)
	for range chunksInFlight {
		free <- make([]auditquery.Row, 0, chunkRows)
	}
	prodErr := make(chan error, 1)
	go func() {
		defer close(full)
		chunk := <-free
		err := produce(ctx, func(r *auditquery.Row) error {
			chunk = append(chunk, *r)
			if len(chunk) == chunkRows {
				full <- chunk
				select {
				case chunk = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
		if len(chunk) > 0 && err == nil {
			full <- chunk
		}
		prodErr <- err
	}()
	var consErr error
	for chunk := range full {
		if consErr == nil {
			for i := range chunk {
				if consErr = consume(&chunk[i]); consErr != nil {
					break
				}
			}
			if consErr == nil {
				consErr = chunkDone()
			}
			if consErr != nil {
				cancel()
			}
		}
		clear(chunk) // drop references to the rows' strings
		free <- chunk[:0]
	}
	if err := <-prodErr; consErr == nil && err != nil {
		return err
	}
	return consErr
}
