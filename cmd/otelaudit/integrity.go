package main

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// integrityReport is what the viewer shows about tamper evidence.
type integrityReport struct {
	// State: "checking", "not_sealed" (no seal tables or no seals: the
	// trail carries no tamper evidence), "intact", "unclosed" (intact, but
	// a stream has no close seal: its writer runs or was killed), "broken"
	// (tampering found), or "error" (verification could not run).
	State     string           `json:"state"`
	Message   string           `json:"message"`
	CheckedAt time.Time        `json:"checked_at,omitzero"`
	Streams   []integrityEntry `json:"streams"`
}

// integrityEntry is one writer stream's state.
type integrityEntry struct {
	Stream   string `json:"stream"`
	State    string `json:"state"`
	BrokenAt int64  `json:"broken_at,omitempty"`
	Seals    int64  `json:"seals"`
	Rows     int64  `json:"rows"`
}

// integrityChecker computes the report in the background: a verification
// reads every row, far too slow for a page request at millions of rows, so
// the page shows the last result and when it was computed.
type integrityChecker struct {
	pool   *pgxpool.Pool
	table  string
	anchor string // a checkpoint anchor file to verify against, if any

	mu     sync.Mutex
	report integrityReport
}

func newIntegrityChecker(pool *pgxpool.Pool, table, anchor string) *integrityChecker {
	return &integrityChecker{pool: pool, table: table, anchor: anchor,
		report: integrityReport{State: "checking", Message: "checking the integrity of the trail…", Streams: []integrityEntry{}}}
}

func (c *integrityChecker) state() integrityReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report
}

func (c *integrityChecker) loop(ctx context.Context, every time.Duration) {
	for {
		r := c.check(ctx)
		if ctx.Err() != nil {
			return
		}
		r.CheckedAt = time.Now().UTC()
		if r.Streams == nil {
			r.Streams = []integrityEntry{}
		}
		c.mu.Lock()
		c.report = r
		c.mu.Unlock()
		if every <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// check detects whether the trail is sealed: the seal table of the
// tamper-evidence migration exists and holds seals.
func (c *integrityChecker) check(ctx context.Context) integrityReport {
	var exists bool
	err := c.pool.QueryRow(ctx, "SELECT to_regclass(quote_ident($1)) IS NOT NULL", c.table+"_seals").Scan(&exists)
	if err != nil {
		return integrityReport{State: "error", Message: "could not read the seal table: " + err.Error()}
	}
	if !exists {
		return integrityReport{State: "not_sealed", Message: "not sealed: the tamper-evidence migration is not applied, so changes to rows cannot be detected"}
	}
	var seals int64
	if err := c.pool.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+quoteIdent(c.table+"_seals")+" LIMIT 1) s").Scan(&seals); err != nil {
		return integrityReport{State: "error", Message: "could not read the seal table: " + err.Error()}
	}
	if seals == 0 {
		return integrityReport{State: "not_sealed", Message: "not sealed: no writer has sealed a batch yet"}
	}
	return c.verify(ctx)
}
