package exporter

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/delivery"
)

// What the exporter hands the delivery besides the writer and the spool.

// corruptSink takes the spool's reports of damaged records: the ones Open
// finds arrive before the delivery exists and are handed over once it does.
type corruptSink struct {
	mu    sync.Mutex
	d     *delivery.Delivery
	early []corruptReport
}

type corruptReport struct {
	records int
	err     error
}

func (c *corruptSink) report(records int, err error) {
	c.mu.Lock()
	d := c.d
	if d == nil {
		c.early = append(c.early, corruptReport{records, err})
	}
	c.mu.Unlock()
	if d != nil {
		d.Corrupt(records, err)
	}
}

func (c *corruptSink) attach(d *delivery.Delivery) {
	c.mu.Lock()
	c.d = d
	early := c.early
	c.early = nil
	c.mu.Unlock()
	for _, r := range early {
		d.Corrupt(r.records, r.err)
	}
}

// insertProbe checks that the audit table exists and takes inserts, with an
// INSERT that inserts nothing (the writer role may not SELECT).
func insertProbe(pool *pgxpool.Pool, table string) func(context.Context) error {
	sql := `INSERT INTO ` + pgx.Identifier{table}.Sanitize() + ` (request_id) SELECT NULL::uuid WHERE false`
	return func(ctx context.Context) error {
		_, err := pool.Exec(ctx, sql)
		return err
	}
}
