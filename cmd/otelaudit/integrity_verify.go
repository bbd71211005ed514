package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sentinel-gateway/otelaudit/verify"
)

// verify runs the tamper-evidence verification of package verify over the
// whole trail and turns its report into what the page shows.
func (c *integrityChecker) verify(ctx context.Context) integrityReport {
	opts := []verify.Option{verify.WithTable(c.table), verify.WithMaxFindings(10)}
	if c.anchor != "" {
		opts = append(opts, verify.WithAnchorFile(c.anchor))
	}
	rep, err := verify.Run(ctx, c.pool, opts...)
	if errors.Is(err, verify.ErrNotMigrated) {
		return integrityReport{State: "not_sealed", Message: "not sealed: the tamper-evidence migration is not applied"}
	}
	if err != nil {
		return integrityReport{State: "error", Message: "verification could not run: " + err.Error()}
	}
	return fromVerify(rep)
}

func fromVerify(rep *verify.Report) integrityReport {
	out := integrityReport{State: "intact"}
	for _, s := range rep.Streams {
		e := integrityEntry{Stream: s.ID.String(), State: string(s.State), BrokenAt: s.BrokenAt, Seals: s.Seals, Rows: s.Rows}
		out.Streams = append(out.Streams, e)
		if s.State == verify.StateUnclosed && out.State == "intact" {
			out.State = "unclosed"
		}
	}
	switch {
	case !rep.Intact():
		out.State = "broken"
		out.Message = fmt.Sprintf("tampering found (%d findings): %s", len(rep.Findings)+rep.MoreFindings, rep.First())
	case !rep.Sealed():
		out.State = "not_sealed"
		out.Message = "not sealed: no writer has sealed a batch yet"
	default:
		out.Message = fmt.Sprintf("verified %d rows and %d seals in %s", rep.Rows, rep.Seals, rep.Elapsed.Round(1e6))
		if rep.UnsealedRows > 0 {
			out.Message += fmt.Sprintf("; %d rows predate sealing and cannot be verified", rep.UnsealedRows)
		}
	}
	return out
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }
