package exporter

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// maintain runs until Shutdown: it replays the spool, oldest batch first,
// whenever PostgreSQL takes writes, and probes PostgreSQL while it is down.
func (e *Exporter) maintain() {
	defer close(e.done)
	tick := time.NewTicker(e.cfg.probeInterval)
	defer tick.Stop()
	var appended <-chan struct{}
	if e.spool != nil {
		appended = e.spool.Appended()
	}
	for {
		select {
		case <-e.life.Done():
			return
		case <-tick.C:
		case <-appended:
		}
		if e.spool != nil && e.spool.Len() > 0 {
			e.replay()
		} else if e.down.Load() {
			e.probe()
		}
	}
}

func (e *Exporter) probe() {
	ctx, cancel := e.opContext(2 * time.Second)
	defer cancel()
	if err := e.pool.Ping(ctx); err == nil {
		e.down.Store(false)
	}
}

// opContext is a context that ends after d or at Shutdown.
func (e *Exporter) opContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.life, d)
}

// replay writes spooled batches until the spool is empty or a write fails.
func (e *Exporter) replay() {
	for {
		select {
		case <-e.life.Done():
			return
		default:
		}
		b, ok, err := e.spool.Oldest()
		if err != nil {
			otel.Handle(fmt.Errorf("otelaudit exporter: spool: %w", err))
			return
		}
		if !ok {
			e.down.Store(false)
			return
		}
		rows, err := auditrow.DecodeRows(b.Data)
		if err != nil {
			// The spool's checksum passed, so this is a bug or a spool
			// written by another version: report it, never loop on it.
			e.drop(context.Background(), 1, DropCorrupt)
			otel.Handle(fmt.Errorf("otelaudit exporter: spooled batch dropped (%s): %w", DropCorrupt, err))
		} else {
			ctx, cancel := e.opContext(30 * time.Second)
			res, err := e.writer.Write(ctx, rows)
			cancel()
			if err != nil {
				e.down.Store(true)
				return
			}
			e.count(context.Background(), res)
			e.stats.replayed.Add(int64(len(rows)))
			e.tel.replayed.Add(context.Background(), int64(len(rows)))
		}
		if err := e.spool.Ack(b); err != nil {
			otel.Handle(fmt.Errorf("otelaudit exporter: spool ack: %w", err))
			return
		}
		e.spoolFull.Store(false)
	}
}
